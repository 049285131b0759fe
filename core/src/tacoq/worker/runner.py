"""Running a worker app from ``tacoq worker MODULE:ATTR``: the built-in runner (the request and
the runner protocol are the contract, :mod:`tacoq.contracts.runner`).

The built-in runner is registered (``trylast``) through the ``tacoq_worker_runner`` hook like
any plugin's; it declines ``--reload``, which the ``tacoq-hotreload`` plugin answers.

Signals: the first SIGINT or SIGTERM stops the worker gracefully (running tasks get the grace
period, the rest go back to the queue) and the process exits 0. A second one exits at once:
whatever updates can be confirmed within a second are flushed, then ``os._exit(128 + signal)``,
so no running handler thread can keep the process alive.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import os
import signal
import sys
from typing import TYPE_CHECKING

from tacoq.contracts.runner import WorkerRunRequest
from tacoq.errors import ConfigError

if TYPE_CHECKING:
    from tacoq.worker.app import WorkerApp

__all__ = ["BuiltinRunner", "load_worker_app"]

log = logging.getLogger("tacoq.worker")

#: After a second signal, how long the worker may take to flush before the process exits anyway.
HARD_EXIT_AFTER = 2.0


def load_worker_app(app_ref: str) -> WorkerApp:
    """Import ``MODULE:ATTR`` and check it is a :class:`~tacoq.worker.WorkerApp`."""
    from tacoq.worker.app import WorkerApp

    module_name, sep, attr = app_ref.partition(":")
    if not sep or not module_name or not attr:
        raise ConfigError(f"{app_ref!r} is not MODULE:ATTR (for example myapp.tasks:worker)")
    if "" not in sys.path and "." not in sys.path:
        sys.path.insert(0, "")  # like `python -m`, find modules in the current directory
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise ConfigError(f"cannot import module {module_name!r}: {exc}") from None
        raise ConfigError(f"importing {module_name!r} failed: {exc}") from exc
    try:
        app = getattr(module, attr)
    except AttributeError:
        raise ConfigError(f"module {module_name!r} has no attribute {attr!r}") from None
    if not isinstance(app, WorkerApp):
        raise ConfigError(f"{app_ref} is a {type(app).__name__}, not a tacoq.WorkerApp")
    return app


class BuiltinRunner:
    """Runs the worker in this process on asyncio; stops cleanly on SIGINT or SIGTERM."""

    def run(self, request: WorkerRunRequest) -> int:
        """Import the app, serve until a signal arrives, return 0."""
        app = load_worker_app(request.app_ref)
        return asyncio.run(self._serve(app, request, refuse_in_process=True))

    def serve_app(self, app: WorkerApp) -> int:
        """Serve an already-imported app with its own settings (``WorkerApp.run``)."""
        return asyncio.run(self._serve(app, WorkerRunRequest(app_ref=""), refuse_in_process=False))

    async def _serve(
        self, app: WorkerApp, request: WorkerRunRequest, *, refuse_in_process: bool
    ) -> int:
        stop = asyncio.Event()
        abort = asyncio.Event()
        loop = asyncio.get_running_loop()
        received: list[int] = []

        def on_signal(signum: int) -> None:
            received.append(signum)
            if len(received) == 1:
                log.info(
                    "%s received: stopping gracefully (send it again to exit at once)",
                    signal.Signals(signum).name,
                )
                stop.set()
                return
            if not abort.is_set():
                log.warning("%s received again: exiting now", signal.Signals(signum).name)
                abort.set()
                # even if the loop cannot finish the flush, the process goes
                loop.call_later(HARD_EXIT_AFTER, _hard_exit, 128 + signum)

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, on_signal, int(sig))
        try:
            await app.serve(
                stop,
                abort=abort,
                broker_url=request.broker_url,
                namespace=request.namespace,
                concurrency=request.concurrency,
                prefetch=request.prefetch,
                name=request.name,
                grace=request.grace,
                refuse_in_process=refuse_in_process,
            )
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
        if abort.is_set():
            _hard_exit(128 + received[-1])
        return 0


def _hard_exit(code: int) -> None:
    """Leave now: flush what Python buffers, then exit without waiting for any thread."""
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(code)
