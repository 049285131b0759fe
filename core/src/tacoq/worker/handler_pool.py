"""The thread pool that runs a worker's sync handlers.

It is the worker's own (never the loop's default executor, never a library's), sized by the
worker's concurrency, and its threads are daemon threads: a sync handler that never returns
cannot keep the process alive after shutdown — Python cannot kill a thread, but it does not have
to wait for one. (``concurrent.futures.ThreadPoolExecutor`` joins its threads at interpreter
exit, which is exactly what a stuck handler must not be able to cause.)
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["DaemonThreadPool"]

log = logging.getLogger("tacoq.worker")

_Work = tuple[Callable[[], Any], asyncio.Future[Any], asyncio.AbstractEventLoop]


class DaemonThreadPool:
    """At most ``max_workers`` daemon threads, started on demand, running callables for a loop."""

    def __init__(self, max_workers: int, *, name: str = "tacoq-sync") -> None:
        if max_workers < 1:
            raise ValueError("max_workers must be at least 1")
        self.max_workers = max_workers
        self.name = name
        self._work: queue.SimpleQueue[_Work | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._idle = 0  # threads waiting for work and not reserved by a submit
        self._backlog = 0  # submitted callables no thread has been reserved for
        self._lock = threading.Lock()
        self._counter = itertools.count(1)
        self._closed = False

    @property
    def busy(self) -> int:
        """Threads running a callable right now (timed-out handlers included)."""
        with self._lock:
            return len(self._threads) - self._idle

    def submit(self, fn: Callable[[], Any]) -> asyncio.Future[Any]:
        """Run ``fn`` on a pool thread; the returned future (of the running loop) gets its result.

        Cancelling the future does not stop the thread; the result is then dropped.
        """
        if self._closed:
            raise RuntimeError("the handler pool is shut down")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        with self._lock:
            if self._idle > 0:
                self._idle -= 1
            elif len(self._threads) < self.max_workers:
                thread = threading.Thread(
                    target=self._serve, name=f"{self.name}-{next(self._counter)}", daemon=True
                )
                self._threads.append(thread)
                thread.start()
            else:
                self._backlog += 1
        self._work.put((fn, future, loop))
        return future

    def shutdown(self) -> None:
        """Stop idle threads; busy ones finish their callable and stop (nobody waits for them)."""
        self._closed = True
        with self._lock:
            count = len(self._threads)
        for _ in range(count):
            self._work.put(None)

    def _serve(self) -> None:
        while True:
            item = self._work.get()
            if item is None:
                with self._lock:
                    self._threads.remove(threading.current_thread())
                return
            fn, future, loop = item
            try:
                result, error = fn(), None
            except BaseException as exc:  # handed to the awaiting coroutine, never lost here
                result, error = None, exc
            with self._lock:
                if self._backlog > 0:
                    self._backlog -= 1  # this thread takes a waiting callable next
                else:
                    self._idle += 1
            with contextlib.suppress(RuntimeError):  # a closed loop: the process is exiting
                loop.call_soon_threadsafe(_settle, future, result, error)


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():  # cancelled: the handler timed out or the worker stopped
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
