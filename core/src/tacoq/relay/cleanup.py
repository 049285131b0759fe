"""The cleanup job: delete completed tasks whose ttl has passed, in bounded batches, and forget
workers not heard from for :data:`FORGET_WORKERS_AFTER` (docs/workers.md)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from tacoq.contracts.store import Store
from tacoq.errors import ConfigError, StoreUnavailable

__all__ = ["FORGET_WORKERS_AFTER", "CleanupJob"]

log = logging.getLogger("tacoq.relay")

#: A worker gone (no heartbeat) this long is forgotten; until then ``GET /workers?all=true``
#: shows it as gone.
FORGET_WORKERS_AFTER = timedelta(days=1)


class CleanupJob:
    """Every ``interval`` seconds, delete expired tasks ``limit`` at a time until none are left.

    ``clock`` is injectable so tests can move time forward.
    """

    def __init__(
        self,
        store: Store,
        *,
        interval: float = 60.0,
        limit: int = 1000,
        clock: Callable[[], datetime],
    ) -> None:
        self.store = store
        self.interval = interval
        self.limit = limit
        self.clock = clock
        self.deleted = 0
        #: Workers forgotten (gone longer than :data:`FORGET_WORKERS_AFTER`).
        self.forgotten = 0
        self._workers = True

    async def run_once(self) -> int:
        """Delete every expired task now, in batches of ``limit``; return how many."""
        total = 0
        while True:
            deleted = await self.store.cleanup(self.clock(), self.limit)
            total += deleted
            if deleted < self.limit:
                break
            await asyncio.sleep(0)  # let other work run between batches
        self.deleted += total
        if self._workers:
            try:
                self.forgotten += await self.store.prune_workers(
                    self.clock() - FORGET_WORKERS_AFTER
                )
            except ConfigError:  # a store plugin without workers online
                self._workers = False
        return total

    async def run(self, stop: asyncio.Event) -> None:
        """Run :meth:`run_once` every ``interval`` seconds until ``stop`` is set."""
        while not stop.is_set():
            try:
                deleted = await self.run_once()
                if deleted:
                    log.info("cleanup deleted %d expired tasks", deleted)
            except StoreUnavailable as exc:
                log.warning("cleanup skipped: store unavailable (%s)", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.interval)
