"""The JSON shapes of the relay's worker routes: ``GET /workers`` and ``GET /kinds``
(docs/http-api.md, "Workers and task kinds")."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, Field

from tacoq.model.workers import MISSED_HEARTBEATS, WorkerRecord
from tacoq.relay.workers_online import KindView

__all__ = [
    "ContractOut",
    "KindOut",
    "KindsOut",
    "PayloadContractOut",
    "WorkerOut",
    "WorkersOut",
    "kind_out",
    "worker_out",
]


class WorkerOut(BaseModel):
    """One worker: what it announced, its last heartbeat, and whether it is online."""

    name: str
    worker_kind: str
    state: Literal["online", "gone"] = Field(
        description=f"online: heard from within {MISSED_HEARTBEATS} heartbeat intervals."
    )
    seen_at: datetime = Field(description="When the relay last heard from it.")
    expires_at: datetime = Field(description="When it leaves unless the relay hears from it.")
    heartbeat_interval: float
    announced: bool = Field(
        description="False when the relay has its heartbeats but not its announcement yet."
    )
    task_kinds: list[str]
    host: str | None
    pid: int | None
    tacoq_version: str | None
    python_version: str | None
    concurrency: int | None
    prefetch: int | None
    started_at: datetime | None
    running: int | None = Field(description="Tasks running at its last heartbeat.")
    succeeded: int | None
    failed: int | None
    retried: int | None
    running_ids: list[UUID] = Field(description="Up to 100 ids of the tasks it runs.")


class WorkersOut(BaseModel):
    """``GET /workers``: the workers online (with ``all``, also those gone but not forgotten)."""

    workers: list[WorkerOut]


class PayloadContractOut(BaseModel):
    """A task's input or output: its content type and, for JSON, its JSON Schema."""

    content_type: str
    json_schema: dict[str, Any] | None = Field(
        description="null: not JSON (raw bytes), or a type without a schema."
    )


class ContractOut(BaseModel):
    """One contract of a task kind, and the live workers that announced it."""

    digest: str = Field(description="Equal digests, equal contracts.")
    input: PayloadContractOut
    output: PayloadContractOut
    workers: list[str]


class KindOut(BaseModel):
    """A task kind of a worker kind, as the live workers announced it."""

    worker_kind: str
    task_kind: str
    conflict: bool = Field(
        description="True while live workers announce different contracts (a deploy); an "
        "input matching any of them is valid."
    )
    contracts: list[ContractOut]


class KindsOut(BaseModel):
    """``GET /kinds``: every task kind the live workers announced."""

    kinds: list[KindOut]


def worker_out(record: WorkerRecord, now: datetime) -> WorkerOut:
    """The API shape of a worker record at ``now``."""
    a, h = record.announcement, record.heartbeat
    return WorkerOut(
        name=record.name,
        worker_kind=record.worker_kind,
        state="online" if record.live(now) else "gone",
        seen_at=record.seen_at,
        expires_at=record.expires_at,
        heartbeat_interval=record.heartbeat_interval,
        announced=a is not None,
        task_kinds=[] if a is None else list(a.task_kinds),
        host=None if a is None else a.host,
        pid=None if a is None else a.pid,
        tacoq_version=None if a is None else a.tacoq_version,
        python_version=None if a is None else a.python_version,
        concurrency=None if a is None else a.concurrency,
        prefetch=None if a is None else a.prefetch,
        started_at=None if a is None else a.started_at,
        running=None if h is None else h.running,
        succeeded=None if h is None else h.succeeded,
        failed=None if h is None else h.failed,
        retried=None if h is None else h.retried,
        running_ids=[] if h is None else list(h.running_ids),
    )


def kind_out(view: KindView) -> KindOut:
    """The API shape of a task kind's view."""
    return KindOut(
        worker_kind=view.worker_kind,
        task_kind=view.task_kind,
        conflict=view.conflict,
        contracts=[
            ContractOut(
                digest=c.digest,
                input=PayloadContractOut(**c.contract.input.model_dump()),
                output=PayloadContractOut(**c.contract.output.model_dump()),
                workers=list(c.workers),
            )
            for c in view.contracts
        ],
    )
