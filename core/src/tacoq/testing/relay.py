"""A relay serving on an event loop of its own thread, for synchronous tests and tools.

``with RelayThread(broker, store, namespace=ns, token="t") as relay:`` starts a
:class:`~tacoq.relay.service.RelayService` on port 0 (every option is passed on), waits until it
serves, and stops it on leaving. ``relay.url`` is its address and ``relay.call(coro)`` runs a
coroutine on the relay's loop (to reach its store or broker) and returns its result.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, TypeVar

if TYPE_CHECKING:
    from tacoq.relay.service import RelayService

__all__ = ["RelayThread"]

T = TypeVar("T")


class RelayThread:
    """A :class:`~tacoq.relay.service.RelayService` on a thread's event loop (port 0 default)."""

    def __init__(
        self,
        broker: str,
        store: str,
        *,
        namespace: str,
        start_timeout: float = 30.0,
        **options: Any,
    ) -> None:
        options.setdefault("port", 0)
        self._args = (broker, store)
        self._namespace = namespace
        self._options = options
        self._start_timeout = start_timeout
        self._loop = asyncio.new_event_loop()
        self._thread: threading.Thread | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._service: RelayService | None = None
        self._error: BaseException | None = None

    @property
    def service(self) -> RelayService:
        """The running service."""
        if self._service is None:
            raise RuntimeError("the relay is not running")
        return self._service

    @property
    def url(self) -> str:
        """The relay's base URL (``http://127.0.0.1:PORT``)."""
        return self.service.url

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        """Run ``coro`` on the relay's loop and return its result."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def start(self) -> None:
        """Start the relay and wait until every part serves; raise its start-up error."""
        from tacoq.relay.service import RelayService

        async def main() -> None:
            self._stop = asyncio.Event()
            try:
                service = RelayService(*self._args, namespace=self._namespace, **self._options)
                self._service = service
                job = asyncio.create_task(service.run(self._stop))
                ready = asyncio.ensure_future(service.ready.wait())
                await asyncio.wait([job, ready], return_when=asyncio.FIRST_COMPLETED)
                ready.cancel()
                if job.done():
                    await job
                    return
                self._ready.set()
                await job
            except BaseException as exc:  # handed to the starting thread, or kept for stop()
                self._error = exc
            finally:
                self._ready.set()

        self._thread = threading.Thread(
            target=self._loop.run_until_complete, args=(main(),), name="tacoq-relay-thread"
        )
        self._thread.start()
        if not self._ready.wait(self._start_timeout):
            raise TimeoutError(f"the relay did not start within {self._start_timeout}s")
        if self._error is not None:
            self._thread.join(5)
            raise self._error

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the relay and its thread."""
        if self._thread is None:
            return
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout)
        self._thread = None
        if not self._loop.is_running():
            self._loop.close()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
