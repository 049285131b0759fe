"""Worker apps for the drain scenario: one no-op handler, async or sync (``tacoq worker``)."""

from __future__ import annotations

from typing import Any

from bench.rabbit_common import BENCH_KIND
from tacoq.worker import WorkerApp

async_app = WorkerApp(BENCH_KIND, name="bench-async")
sync_app = WorkerApp(BENCH_KIND, name="bench-sync")


@async_app.task(kind="noop")
async def noop_async(value: Any) -> None:
    """Do nothing, on the event loop."""


@sync_app.task(kind="noop")
def noop_sync(value: Any) -> None:
    """Do nothing, in the worker's thread pool."""
