"""The worker: declaring handlers (``WorkerApp``, ``TaskDef``) and running them.

- :mod:`~tacoq.worker.app`: ``WorkerApp`` and ``TaskDef``, what a user writes;
- :mod:`~tacoq.worker.runtime`: ``WorkerRuntime``, the engine that consumes and runs;
- :mod:`~tacoq.worker.report`, :mod:`~tacoq.worker.updates`: the events a worker sends, batched
  and confirmed before the assignments are acked;
- :mod:`~tacoq.worker.handler_call`, :mod:`~tacoq.worker.handler_pool`,
  :mod:`~tacoq.worker.context`, :mod:`~tacoq.worker.retry`, :mod:`~tacoq.worker.shutdown`:
  calling one handler, its threads, its context, retries, stopping;
- :mod:`~tacoq.worker.runner`: the built-in runner of ``tacoq worker``.

May import: :mod:`tacoq.publishing` (a handler publishes follow-up tasks), the host, config,
guard, serialization, the contracts and the model. Not the relay or the built-ins.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tacoq.worker.app import TaskDef as TaskDef
    from tacoq.worker.app import WorkerApp as WorkerApp

__all__ = ["TaskDef", "WorkerApp"]


def __getattr__(name: str) -> Any:
    # Imported on first use: importing a light part (the runner's hook, the context) must not
    # load the engine (``tacoq --help`` stays fast).
    if name in __all__:
        from tacoq.worker import app

        value = getattr(app, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'tacoq.worker' has no attribute {name!r}")
