"""The built-in runner of ``tacoq worker``: import the app, serve it until a signal.

Registered (``trylast``) through the ``tacoq_worker_runner`` hook like any plugin's runner
(:mod:`tacoq.contracts.runner`); it declines ``--reload``, which the ``tacoq-hotreload`` plugin
answers. Signals are :mod:`tacoq.worker.serving`'s.
"""

from __future__ import annotations

import asyncio

from tacoq.contracts.runner import WorkerRunRequest
from tacoq.worker.app import load_worker_app
from tacoq.worker.serving import serve_until_signalled

__all__ = ["BuiltinRunner", "load_worker_app"]


class BuiltinRunner:
    """Runs the worker in this process on asyncio; stops cleanly on SIGINT or SIGTERM."""

    def run(self, request: WorkerRunRequest) -> int:
        """Import the app, serve until a signal arrives, return 0."""
        app = load_worker_app(request.app_ref)
        return asyncio.run(serve_until_signalled(app, request, refuse_in_process=True))
