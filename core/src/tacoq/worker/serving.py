"""Serving a worker app in this process until a signal: the first SIGINT or SIGTERM stops it
gracefully, a second one exits at once.

Signals: the first SIGINT or SIGTERM stops the worker gracefully (running tasks get the grace
period, the rest go back to the queue) and the process exits 0. A second one exits at once:
whatever updates can be confirmed within a second are flushed, then ``os._exit(128 + signal)``,
so no running handler thread can keep the process alive. Used by ``tacoq worker`` (the built-in
runner) and by ``WorkerApp.run()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from typing import TYPE_CHECKING

from tacoq.contracts.runner import WorkerRunRequest

if TYPE_CHECKING:
    from tacoq.worker.app import WorkerApp

__all__ = ["HARD_EXIT_AFTER", "serve_until_signalled"]

log = logging.getLogger("tacoq.worker")

#: After a second signal, how long the worker may take to flush before the process exits anyway.
HARD_EXIT_AFTER = 2.0


async def serve_until_signalled(
    app: WorkerApp, request: WorkerRunRequest, *, refuse_in_process: bool
) -> int:
    """Serve ``app`` with ``request``'s settings until SIGINT or SIGTERM; 0, or never returns
    after a second signal (the process exits with ``128 + signal``)."""
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
            heartbeat_interval=request.heartbeat_interval,
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
