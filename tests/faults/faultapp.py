"""The worker app the fault scenarios run (``tacoq worker faultapp:worker``).

Every execution of ``work`` appends a ``start`` and an ``end`` record to a trace file of its
own process (``$FAULTS_TRACE_DIR/<pid>.jsonl``) and returns an output naming the worker, the
pid and a fresh run id, so the stored output identifies exactly one execution in the trace.
The worker kind comes from ``FAULTS_WORKER_KIND`` (default ``faults``).
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from typing import Any

from pydantic import BaseModel, Field

import tacoq

worker = tacoq.WorkerApp(os.environ.get("FAULTS_WORKER_KIND", "faults"))


class Job(BaseModel):
    """The input of ``work``: a number to echo and how long to sleep."""

    n: int = Field(ge=0)
    sleep: float = Field(default=0.0, ge=0, le=60)


def trace(record: dict[str, Any]) -> None:
    """Append one record to this process's trace file (written through at once)."""
    path = os.path.join(os.environ["FAULTS_TRACE_DIR"], f"{os.getpid()}.jsonl")
    with open(path, "a", encoding="utf-8") as file:
        file.write(json.dumps(record) + "\n")


@worker.task
async def work(job: Job, ctx: tacoq.TaskContext) -> dict[str, Any]:
    """Sleep ``job.sleep`` seconds; return ``n`` with the worker, pid and run id."""
    run = uuid.uuid4().hex
    base = {
        "task": str(ctx.id),
        "attempt": ctx.attempt,
        "worker": ctx.worker_name,
        "pid": os.getpid(),
        "run": run,
    }
    trace({**base, "event": "start"})
    await asyncio.sleep(job.sleep)
    trace({**base, "event": "end"})
    return {"n": job.n, "worker": ctx.worker_name, "pid": os.getpid(), "run": run}
