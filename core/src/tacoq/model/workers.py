"""Workers online: what a worker says about itself on the control channel, and what is kept.

A worker sends three control messages to the relay (docs/workers.md; their wire form is in
docs/wire-format.md, "Control messages"):

- :class:`Announcement` at start (and again after it lost the broker, and every
  :data:`REANNOUNCE_EVERY` heartbeats): who it is, what it runs and each task kind's contract
  (:class:`TaskContract`: the JSON Schema of its input and output);
- :class:`Heartbeat` every ``heartbeat_interval`` seconds: what it is doing;
- :class:`Goodbye` when it stops cleanly.

The store keeps a :class:`WorkerRecord` per worker name: the last announcement, the last
heartbeat and when the relay last heard from it. A worker is *live* while the relay heard from
it within :data:`MISSED_HEARTBEATS` heartbeat intervals (:meth:`WorkerRecord.live`).

Pydantic models, not the slotted dataclasses of :mod:`tacoq.model.task`: these messages are
rare (seconds apart), come from other processes, and must be refused with the field named when
malformed.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal
from uuid import UUID

import pydantic
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

__all__ = [
    "DEFAULT_HEARTBEAT_INTERVAL",
    "MAX_HEARTBEAT_INTERVAL",
    "MAX_RUNNING_IDS",
    "MIN_HEARTBEAT_INTERVAL",
    "MISSED_HEARTBEATS",
    "REANNOUNCE_EVERY",
    "Announcement",
    "ControlMessage",
    "Goodbye",
    "Heartbeat",
    "PayloadContract",
    "TaskContract",
    "WorkerRecord",
    "contract_digest",
]

#: Seconds between two heartbeats of a worker, unless it is told otherwise.
DEFAULT_HEARTBEAT_INTERVAL = 5.0
#: The shortest heartbeat interval a worker may announce (s).
MIN_HEARTBEAT_INTERVAL = 0.1
#: The longest heartbeat interval a worker may announce (s).
MAX_HEARTBEAT_INTERVAL = 3600.0
#: A worker not heard from for this many of its heartbeat intervals has left.
MISSED_HEARTBEATS = 3
#: A worker announces itself again every this many heartbeats (a relay that lost the
#: announcement, or a store that was emptied, learns it again within minutes).
REANNOUNCE_EVERY = 60
#: A heartbeat lists at most this many ids of the tasks the worker is running.
MAX_RUNNING_IDS = 100

#: A worker name, worker kind, task kind, host or version: 1-255 characters, no control
#: characters (they end up in tables and terminals).
Name = Annotated[
    str, StringConstraints(min_length=1, max_length=255, pattern=r"^[^\x00-\x1f\x7f-\x9f]+$")
]
Count = Annotated[int, Field(ge=0, le=2**63 - 1)]

_STRICT = ConfigDict(frozen=True, extra="ignore", strict=True, allow_inf_nan=False)
# extra="ignore": a newer worker may add fields; this relay keeps what it knows.
# strict=True, but timestamps and UUIDs arrive as JSON text: model_validate_json parses them.


class PayloadContract(BaseModel):
    """What a task's input or output is: its content type and, for JSON, its JSON Schema.

    ``json_schema`` is ``None`` when the payload is not JSON (raw bytes) or its type has no
    schema; ``{}`` means any JSON value.
    """

    model_config = _STRICT

    content_type: Name
    json_schema: dict[str, Any] | None = None


class TaskContract(BaseModel):
    """One task kind's contract: the input it takes and the output it returns."""

    model_config = _STRICT

    input: PayloadContract
    output: PayloadContract


class Announcement(BaseModel):
    """A worker says who it is and what it runs (at start; persistent on the broker)."""

    model_config = _STRICT

    type: Literal["announce"] = "announce"
    name: Name
    worker_kind: Name
    task_kinds: list[Name] = Field(max_length=10_000)
    contracts: dict[Name, TaskContract] = Field(default_factory=dict, max_length=10_000)
    host: Name
    pid: Count
    tacoq_version: Name
    python_version: Name
    concurrency: Annotated[int, Field(ge=1, le=1_000_000)]
    prefetch: Annotated[int, Field(ge=1, le=1_000_000)]
    started_at: AwareDatetime
    heartbeat_interval: Annotated[
        float, Field(ge=MIN_HEARTBEAT_INTERVAL, le=MAX_HEARTBEAT_INTERVAL)
    ]
    sent_at: AwareDatetime


class Heartbeat(BaseModel):
    """A worker says it is alive and what it is doing (every interval; transient)."""

    model_config = _STRICT

    type: Literal["heartbeat"] = "heartbeat"
    name: Name
    worker_kind: Name
    #: Tasks running now.
    running: Count
    #: Attempts since start that completed the task successfully, with an error, and that
    #: were retried.
    succeeded: Count
    failed: Count
    retried: Count
    #: Ids of tasks running now, at most :data:`MAX_RUNNING_IDS` of them.
    running_ids: list[UUID] = Field(default_factory=list, max_length=MAX_RUNNING_IDS)
    heartbeat_interval: Annotated[
        float, Field(ge=MIN_HEARTBEAT_INTERVAL, le=MAX_HEARTBEAT_INTERVAL)
    ]
    sent_at: AwareDatetime


class Goodbye(BaseModel):
    """A worker that stops cleanly says so: it leaves the live set at once (persistent)."""

    model_config = _STRICT

    type: Literal["goodbye"] = "goodbye"
    name: Name
    worker_kind: Name
    sent_at: AwareDatetime


#: Any control message.
ControlMessage = Announcement | Heartbeat | Goodbye


class WorkerRecord(BaseModel):
    """What a store keeps of one worker: its last announcement (``None`` when the relay heard
    a heartbeat before any announcement), its last heartbeat, and when the relay last heard
    from it (``seen_at``, the relay's clock)."""

    model_config = ConfigDict(frozen=True)

    name: str
    worker_kind: str
    announcement: Announcement | None = None
    heartbeat: Heartbeat | None = None
    seen_at: datetime

    @property
    def heartbeat_interval(self) -> float:
        """The worker's heartbeat interval, from its latest message (s)."""
        if self.heartbeat is not None:
            return self.heartbeat.heartbeat_interval
        if self.announcement is not None:
            return self.announcement.heartbeat_interval
        return DEFAULT_HEARTBEAT_INTERVAL

    @property
    def expires_at(self) -> datetime:
        """When the worker leaves the live set unless the relay hears from it again."""
        return self.seen_at + timedelta(seconds=MISSED_HEARTBEATS * self.heartbeat_interval)

    def live(self, now: datetime) -> bool:
        """True while the relay heard from the worker within :data:`MISSED_HEARTBEATS`
        heartbeat intervals of ``now``."""
        return now <= self.expires_at

    def with_heartbeat(self, heartbeat: Heartbeat, seen_at: datetime) -> WorkerRecord:
        """This record after ``heartbeat`` arrived at ``seen_at``."""
        seen_at = max(seen_at, self.seen_at)  # two relays may commit out of order
        return self.model_copy(update={"heartbeat": heartbeat, "seen_at": seen_at})

    def to_json(self) -> str:
        """The record as JSON text (what stores keep)."""
        return self.model_dump_json()

    @classmethod
    def from_json(cls, text: str | bytes) -> WorkerRecord:
        """A record from :meth:`to_json`'s text."""
        return cls.model_validate_json(text)


def contract_digest(contract: TaskContract) -> str:
    """A short digest of a contract's canonical JSON: two workers announce the same contract
    exactly when the digests are equal."""
    canonical = json.dumps(contract.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def describe_invalid(exc: pydantic.ValidationError) -> str:
    """One line naming each failing field of a control message."""
    parts = []
    for err in exc.errors(include_url=False, include_input=False)[:5]:
        loc = ".".join(str(p) for p in err["loc"]) or "(message)"
        parts.append(f"{loc}: {err['msg']}")
    more = exc.error_count() - len(parts)
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")
