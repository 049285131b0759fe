"""A whole TacoQ system in the test's event loop: a relay, a publisher and workers, all in-process.

``async with in_process_system("rt") as system:`` starts a
:class:`~tacoq.relay.engine.RelayEngine` whose broker and store are both
``memory://<fresh namespace>``, opens a :class:`~tacoq.publishing.publisher.Publisher` on that
server, and yields an :class:`InProcessSystem`. Workers join the same server in one of two ways:

- :meth:`InProcessSystem.runtime` makes a :class:`~tacoq.worker.runtime.WorkerRuntime` the test
  runs and stops itself (to look at its stats, or to stop it halfway);
  :meth:`InProcessSystem.serving` runs one for the length of an ``async with``;
- :meth:`InProcessSystem.serve` runs ``app.serve`` (the app's own settings) until the system
  closes.

Leaving the block stops the workers started by :meth:`~InProcessSystem.serve`, closes the
publisher and stops the relay. :meth:`InProcessSystem.wait` and :meth:`InProcessSystem.status`
read the relay's store.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID

from tacoq.model.task import Task, TaskStatus
from tacoq.plugins import get_plugin_host
from tacoq.publishing.publisher import Publisher
from tacoq.relay.engine import RelayEngine
from tacoq.testing.eventually import fresh_namespace
from tacoq.worker.app import WorkerApp
from tacoq.worker.runtime import WorkerRuntime

__all__ = ["InProcessSystem", "in_process_system"]

#: The default bound, in seconds, of :meth:`InProcessSystem.wait`.
WAIT = 15.0
#: Seconds the relay has to get ready, and each part to stop.
START_TIMEOUT = 5.0
STOP_TIMEOUT = 10.0
#: What :meth:`InProcessSystem.runtime` passes to :class:`WorkerRuntime` unless told otherwise.
RUNTIME_DEFAULTS: dict[str, Any] = {"concurrency": 1, "prefetch": None, "name": "worker"}


class InProcessSystem:
    """A running relay and publisher on one ``memory://`` server; workers to add.

    Made by :func:`in_process_system`. ``url`` is the server (the broker and store URL of
    every part), ``ns`` the namespace, ``relay`` the engine (its ``store`` has the rows) and
    ``pub`` a connected publisher.
    """

    def __init__(
        self,
        relay: RelayEngine,
        pub: Publisher,
        url: str,
        ns: str,
        runtime_defaults: dict[str, Any] | None = None,
    ) -> None:
        self.relay = relay
        self.pub = pub
        self.url = url
        self.ns = ns
        #: The options :meth:`runtime` starts from (:data:`RUNTIME_DEFAULTS`, then overrides).
        self.runtime_defaults = {**RUNTIME_DEFAULTS, **(runtime_defaults or {})}
        self._stop_workers = asyncio.Event()
        self._workers: list[asyncio.Task[None]] = []

    async def wait(self, task_id: UUID, timeout: float = WAIT) -> Task:
        """The task's row once it completed (successfully or not); fails if it does not
        complete within ``timeout`` seconds."""
        row = await self.relay.store.wait(task_id, timeout)
        assert row is not None, f"task {task_id} never reached the store"
        assert row.is_completed, f"task {task_id} did not complete within {timeout}s: {row}"
        return row

    async def status(self, task_id: UUID) -> TaskStatus | None:
        """The task's status in the store right now (``None`` while it has no row)."""
        row = await self.relay.store.get(task_id)
        return None if row is None else row.status

    def runtime(self, app: WorkerApp, **options: Any) -> WorkerRuntime:
        """A worker runtime of ``app`` on this system's server, not started.

        ``options`` go to :class:`~tacoq.worker.runtime.WorkerRuntime` over
        :attr:`runtime_defaults`. Run it with ``runtime.run(stop)`` and stop it yourself.
        """
        broker = get_plugin_host().create_broker(self.url, namespace=self.ns)
        return WorkerRuntime(app, broker, **{**self.runtime_defaults, **options})

    @contextlib.asynccontextmanager
    async def serving(self, app: WorkerApp, **options: Any) -> AsyncIterator[WorkerRuntime]:
        """Run :meth:`runtime` ``(app, **options)`` for the length of the block; yields it."""
        runtime = self.runtime(app, **options)
        stop = asyncio.Event()
        job = asyncio.create_task(runtime.run(stop))
        try:
            yield runtime
        finally:
            stop.set()
            await asyncio.wait_for(job, STOP_TIMEOUT)

    def serve(self, app: WorkerApp, **options: Any) -> asyncio.Task[None]:
        """Start ``app.serve`` on this system's server until the system closes.

        ``options`` are those of :meth:`~tacoq.worker.app.WorkerApp.serve` (``concurrency``,
        ``name``...; the app's settings otherwise). Returns the serving task.
        """
        job = asyncio.create_task(
            app.serve(self._stop_workers, broker_url=self.url, namespace=self.ns, **options)
        )
        self._workers.append(job)
        return job

    async def _close_workers(self) -> None:
        self._stop_workers.set()
        await asyncio.wait_for(asyncio.gather(*self._workers), STOP_TIMEOUT)


@contextlib.asynccontextmanager
async def in_process_system(
    prefix: str = "test", **runtime_defaults: Any
) -> AsyncIterator[InProcessSystem]:
    """A relay and a publisher on ``memory://<fresh namespace>`` (namespace from ``prefix``).

    ``runtime_defaults`` are the :class:`~tacoq.worker.runtime.WorkerRuntime` options every
    :meth:`InProcessSystem.runtime` of this system starts from (over :data:`RUNTIME_DEFAULTS`).
    On leaving, the workers of :meth:`InProcessSystem.serve` stop first, then the publisher
    closes and the relay stops.
    """
    ns = fresh_namespace(prefix)
    url = f"memory://{ns}"
    relay = RelayEngine(url, url, namespace=ns, cleanup=False)
    stop = asyncio.Event()
    job = asyncio.create_task(relay.run(stop))
    try:
        await asyncio.wait_for(relay.ready.wait(), START_TIMEOUT)
        async with Publisher(url, namespace=ns) as pub:
            system = InProcessSystem(relay, pub, url, ns, runtime_defaults)
            try:
                yield system
            finally:
                await system._close_workers()
    finally:
        stop.set()
        await asyncio.wait_for(job, STOP_TIMEOUT)
