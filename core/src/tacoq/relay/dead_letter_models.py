"""The JSON shapes of the relay's dead-letter routes (``docs/http-api.md``, "Dead letters").

Pydantic only (no FastAPI), so :class:`~tacoq.client.RelayClient` reads them too.
"""

from __future__ import annotations

from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from tacoq.models import Payload
from tacoq.relay.api_models import PayloadOut, TaskId, payload_to_api
from tacoq.store import DeadLetterRecord
from tacoq.wire import format_timestamp

__all__ = [
    "MAX_LIST_LIMIT",
    "MAX_REQUEUE_IDS",
    "DeadLetterOut",
    "DeadLetterPageOut",
    "DeletedOut",
    "RequeueIn",
    "RequeueOut",
    "RequeueSkipped",
    "dead_letter_out",
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
