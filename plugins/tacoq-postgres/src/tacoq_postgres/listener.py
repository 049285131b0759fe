"""One LISTEN connection per store, shared by all of its waiters.

The connection is dedicated (outside the pool) and autocommit. Every batch that completes
tasks sends one NOTIFY per chunk of completed ids on the schema's channel, inside its
transaction, so Postgres delivers it at commit. The listener wakes the futures registered for
those ids; the waiter then reads the row itself.

No completion is missed across a reconnect: a waiter registers its future, waits until the
listener is LISTENing, and only then reads the row. When the connection drops, the listener
reconnects with backoff, LISTENs again, and then wakes *every* waiter, so each one re-reads its
row and sees a completion that was committed while nobody was listening.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from uuid import UUID

import psycopg
from psycopg import sql

from tacoq_postgres.sql import parse_payload

__all__ = ["Listener"]

log = logging.getLogger("tacoq_postgres")


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class Listener:
    """LISTENs on ``channel`` and wakes the waiters of the ids each notification carries."""

    #: Seconds without notifications after which the connection is checked with a query.
    heartbeat: float = 30.0
    #: Reconnect backoff: first delay and cap, in seconds.
    backoff_first: float = 0.05
    backoff_max: float = 2.0

    def __init__(self, conninfo: str, channel: str, *, display: str) -> None:
        self._conninfo = conninfo
        self.channel = channel
        self._display = display
        self._waiters: dict[UUID, set[asyncio.Future[None]]] = {}
        self._ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        #: How many times LISTEN has been established (1 + reconnects).
        self.connects = 0
        #: The backend pid of the current LISTEN connection (``None`` while disconnected).
        self.backend_pid: int | None = None

    @property
    def waiting(self) -> int:
        """How many futures are registered."""
        return sum(len(futures) for futures in self._waiters.values())

    def start(self) -> None:
        """Start listening in the background (once)."""
        if self._task is None and not self._closed:
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name=f"tacoq-postgres listener {self.channel}"
            )

    def register(self, task_id: UUID) -> asyncio.Future[None]:
        """A future resolved when ``task_id`` completes, the listener reconnects, or closes."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self._closed:
            future.set_result(None)
        else:
            self._waiters.setdefault(task_id, set()).add(future)
        return future

    def discard(self, task_id: UUID, future: asyncio.Future[None]) -> None:
        """Forget a registered future."""
        futures = self._waiters.get(task_id)
        if futures is not None:
            futures.discard(future)
            if not futures:
                del self._waiters[task_id]

    async def wait_ready(self, timeout: float) -> bool:
        """Wait until LISTEN is active (True), or ``timeout`` seconds (False)."""
        if self._ready.is_set():
            return True
        if timeout <= 0:
            return False
        try:
            await asyncio.wait_for(self._ready.wait(), timeout)
        except TimeoutError:
            return False
        return True

    def wake(self, ids: list[UUID]) -> None:
        """Resolve the futures registered for ``ids``."""
        if not self._waiters:
            return
        for task_id in ids:
            futures = self._waiters.pop(task_id, None)
            if futures:
                for future in futures:
                    _resolve(future)

    def wake_all(self) -> None:
        """Resolve every registered future (each waiter then re-reads its row)."""
        waiters, self._waiters = self._waiters, {}
        for futures in waiters.values():
            for future in futures:
                _resolve(future)

    async def close(self) -> None:
        """Stop listening, close the connection and wake every waiter."""
        self._closed = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._ready.set()  # release waiters still waiting for a connection; they see closed
        self.wake_all()

    def _is_closed(self) -> bool:
        # A method, not an attribute read: close() may run during any await of the loop.
        return self._closed

    async def _run(self) -> None:
        delay = self.backoff_first
        listen = sql.SQL("LISTEN {}").format(sql.Identifier(self.channel))
        while not self._closed:
            conn: psycopg.AsyncConnection[object] | None = None
            try:
                conn = await psycopg.AsyncConnection.connect(self._conninfo, autocommit=True)
                await conn.execute(listen)
                self.backend_pid = conn.info.backend_pid
                self.connects += 1
                self._ready.set()
                self.wake_all()  # re-read everything: a completion in the gap is not missed
                delay = self.backoff_first
                while True:
                    async for note in conn.notifies(timeout=self.heartbeat):
                        self.wake(parse_payload(note.payload))
                    await conn.execute("SELECT 1")  # a silently dead connection fails here
            except (psycopg.Error, OSError) as exc:
                self._ready.clear()
                self.backend_pid = None
                first_line = (str(exc).strip().splitlines() or [""])[0]
                log.warning(
                    "Postgres listener for %s on %s lost its connection (%s: %s); "
                    "reconnecting in %.2fs",
                    self.channel,
                    self._display,
                    type(exc).__name__,
                    first_line,
                    delay,
                )
            finally:
                if conn is not None:
                    with contextlib.suppress(Exception):
                        await conn.close()
            if self._is_closed():
                break
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.backoff_max)
