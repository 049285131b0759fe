"""The cleanup job: delete completed tasks whose ttl has passed, in bounded batches."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import datetime

from tacoq.contracts.store import Store
from tacoq.errors import StoreUnavailable

__all__ = ["CleanupJob"]

log = logging.getLogger("tacoq.relay")


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
