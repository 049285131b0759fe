"""Built-in plugin: the plain worker runner (declines ``--reload``)."""

from __future__ import annotations

from tacoq.contracts.hookspecs import hookimpl
from tacoq.contracts.runner import WorkerRunner, WorkerRunRequest
from tacoq.worker.runner import BuiltinRunner


@hookimpl(trylast=True)
def tacoq_worker_runner(request: WorkerRunRequest) -> WorkerRunner | None:
    """Run the worker in this process, unless reload was asked for."""
    if request.reload:
        return None
    return BuiltinRunner()
