"""The plugin's hooks. Import-light: watchfiles is imported only when a reload runner runs."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tacoq.contracts.hookspecs import hookimpl

if TYPE_CHECKING:
    from tacoq.contracts.runner import WorkerRunner, WorkerRunRequest


@hookimpl
def tacoq_worker_runner(request: WorkerRunRequest) -> WorkerRunner | None:
    """Answer ``--reload`` with the reloading runner; decline otherwise."""
    if not request.reload:
        return None
    from tacoq_hotreload.runner import ReloadRunner

    return ReloadRunner()
