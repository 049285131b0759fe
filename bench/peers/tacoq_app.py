"""The TacoQ app of the peer scenarios: one async no-op task (``tacoq worker
bench.peers.tacoq_app:app``). The run's namespace comes from ``--namespace``; the relay stores
every state in Postgres."""

from __future__ import annotations

from typing import Any

from tacoq.worker import WorkerApp

#: The worker kind the peer scenarios publish to.
KIND = "bench-peer"

app = WorkerApp(KIND, name="bench-peer")


@app.task(kind="noop")
async def noop(value: Any) -> None:
    """Do nothing, on the event loop."""
