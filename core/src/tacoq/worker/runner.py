"""The built-in runner of ``tacoq worker``: import the app, serve it until a signal.

Registered (``trylast``) through the ``tacoq_worker_runner`` hook like any plugin's runner
(:mod:`tacoq.contracts.runner`); it declines ``--reload``, which the ``tacoq-hotreload`` plugin
answers. Signals are :mod:`tacoq.worker.serving`'s.
"""

from __future__ import annotations

import asyncio
from typing import Any

from tacoq.contracts.runner import WorkerRunRequest

__all__ = ["BuiltinRunner"]


class BuiltinRunner:
    """Runs the worker in this process on asyncio; stops cleanly on SIGINT or SIGTERM."""

    def run(self, request: WorkerRunRequest) -> int:
        """Import the app, serve until a signal arrives, return 0."""
        # Imported here: every process registers this runner, few run a worker.
        from tacoq.worker.app import load_worker_app
        from tacoq.worker.serving import serve_until_signalled

        app = load_worker_app(request.app_ref)
        return asyncio.run(serve_until_signalled(app, request, refuse_in_process=True))


def __getattr__(name: str) -> Any:
    if name == "load_worker_app":  # its place before tacoq.worker.app (kept for one release)
        from tacoq.worker.app import load_worker_app

        return load_worker_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
