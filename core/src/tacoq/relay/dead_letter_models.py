"""The JSON shapes of the relay's dead-letter routes (``docs/http-api.md``, "Dead letters").

Pydantic only (no FastAPI), so :class:`~tacoq.relay.client.RelayClient` reads them too.
"""

from __future__ import annotations

from typing import Annotated, Literal
from uuid import UUID

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator
from pydantic.json_schema import SkipJsonSchema

from tacoq.contracts.store import DeadLetterRecord
from tacoq.model.task import Payload
from tacoq.model.wire import format_timestamp
from tacoq.relay.api_models import NO_NUL_PATTERN, PayloadOut, TaskId, payload_to_api

__all__ = [
    "MAX_LIST_LIMIT",
    "MAX_REQUEUE_IDS",
    "DeadLetterOut",
    "DeadLetterPageOut",
    "DeletedOut",
    "PurgeIn",
    "RequeueIn",
    "RequeueOut",
    "RequeueSkipped",
    "dead_letter_out",
]


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain the NUL character (\\u0000)")
    return value


#: Text to match, 1-1000 characters, no NUL (no store column can hold it).
NoNul = Annotated[
    str,
    Field(min_length=1, max_length=1000, json_schema_extra={"pattern": NO_NUL_PATTERN}),
    AfterValidator(_no_nul),
]

#: The most ids one ``POST /dead-letters/requeue`` takes.
MAX_REQUEUE_IDS = 500
#: The largest page ``GET /dead-letters`` returns.
MAX_LIST_LIMIT = 500


class DeadLetterOut(BaseModel):
    """One dead letter as the store keeps it (``body`` only on ``GET /dead-letters/{id}``)."""

    id: UUID
    origin: str = Field(description="The queue it came from: relay, or worker:<kind>.")
    reason: str
    task_id: UUID | None = Field(description="The tacoq-id header, when it is a task id.")
    count: int = Field(description="Times dead-lettered (requeued and set aside again).")
    first_seen: str = Field(description="RFC 3339 UTC ending in Z.")
    last_seen: str
    headers: dict[str, str]
    content_type: str
    body_size: int = Field(description="Bytes of the whole body.")
    body_complete: bool = Field(description="False when the body was cut: not requeueable.")
    body: PayloadOut | None = None


class DeadLetterPageOut(BaseModel):
    """One page of ``GET /dead-letters``: newest ``last_seen`` first."""

    dead_letters: list[DeadLetterOut]
    next_cursor: str | None


class RequeueIn(BaseModel):
    """Dead letters to requeue, each once."""

    model_config = ConfigDict(extra="forbid")

    ids: list[TaskId] = Field(min_length=1, max_length=MAX_REQUEUE_IDS)


class RequeueSkipped(BaseModel):
    """A dead letter that was not requeued, and why."""

    id: UUID
    reason: str


class RequeueOut(BaseModel):
    """What ``POST /dead-letters/requeue`` did."""

    requeued: list[UUID]
    skipped: list[RequeueSkipped]


class PurgeIn(BaseModel):
    """What ``POST /dead-letters/purge`` deletes: the dead letters matching every filter
    given, or every one with ``"all": true``; at least one of them."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"minProperties": 1})

    # ``SkipJsonSchema[None]``: absent is fine, ``null`` is not (the schema has no null branch).
    origin: NoNul | SkipJsonSchema[None] = Field(None, description="The queue they came from.")
    reason: NoNul | SkipJsonSchema[None] = Field(None, description="Text their reason contains.")
    task_id: TaskId | SkipJsonSchema[None] = Field(None, description="Their task.")
    all: Literal[True] | SkipJsonSchema[None] = Field(None, description="Every dead letter.")

    @model_validator(mode="after")
    def _something(self) -> PurgeIn:
        if not self.model_fields_set:
            raise ValueError("give a filter (origin, reason, task_id), or all: true")
        for name in self.model_fields_set:
            if getattr(self, name) is None:
                raise ValueError(f"{name} must not be null (leave it out)")
        return self


class DeletedOut(BaseModel):
    """How many dead letters were deleted."""

    deleted: int


def dead_letter_out(record: DeadLetterRecord, *, with_body: bool = False) -> DeadLetterOut:
    """The API shape of a dead-letter record."""
    body = payload_to_api(Payload(record.content_type, record.body)) if with_body else None
    return DeadLetterOut(
        id=record.id,
        origin=record.origin,
        reason=record.reason,
        task_id=record.task_id,
        count=record.count,
        first_seen=format_timestamp(record.first_seen),
        last_seen=format_timestamp(record.last_seen),
        headers=record.headers,
        content_type=record.content_type,
        body_size=record.body_size,
        body_complete=record.body_complete,
        body=body,
    )
