"""The in-process ``memory://`` store: a dict of rows folded with the one merge rule.

Stores with the same URL and namespace share their rows (and their waiters) inside the process,
so the embedded demo's relay and its readers see the same data. The rows live as long as at
least one store of that URL and namespace is connected.
"""

from __future__ import annotations

import asyncio
import builtins
import heapq
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from uuid import UUID

from tacoq.contracts.broker import Health, check_not_connected
from tacoq.contracts.cursors import decode_cursor, encode_cursor, micros
from tacoq.contracts.store import (
    BatchResult,
    DeadLetterFilter,
    DeadLetterPage,
    DeadLetterRecord,
    Store,
    TaskFilter,
    TaskPage,
    dead_letter_matches,
    kinds_named,
    merge_dead_letter,
)
from tacoq.errors import StoreUnavailable
from tacoq.model.merge import fold_batch, merge
from tacoq.model.task import Phase, Task, TaskEvent
from tacoq.model.workers import Heartbeat, WorkerRecord

# The cursor codec lived here; it is the stores' shared contract now (tacoq.contracts.cursors).
__all__ = ["MemoryStore", "decode_cursor", "encode_cursor", "micros", "wake"]


def _position(row: Task) -> tuple[int, int, int]:
    """A row's place in :meth:`Store.list` order; greater comes first."""
    if row.created_at is None:
        return (0, 0, row.id.int)
    return (1, micros(row.created_at), row.id.int)


def _dead_position(record: DeadLetterRecord) -> tuple[int, int]:
    """A dead letter's place in :meth:`Store.list_dead_letters` order; greater comes first."""
    return (micros(record.last_seen), record.id.int)


def _matches(row: Task, filters: TaskFilter) -> bool:
    return (
        (filters.status is None or row.status == filters.status)
        and (filters.task_kind is None or row.task_kind == filters.task_kind)
        and (filters.worker_kind is None or row.worker_kind == filters.worker_kind)
    )


def wake(waiters: set[asyncio.Future[None]]) -> None:
    """Resolve waiter futures, from whichever loop (or thread) they belong to."""
    for future in waiters:
        loop = future.get_loop()
        if loop.is_closed():
            continue
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if loop is running:
            if not future.done():
                future.set_result(None)
        else:
            loop.call_soon_threadsafe(_resolve, future)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


@dataclass(eq=False)
class _Shared:
    """The rows and waiters of one ``(url, namespace)``, shared by its stores."""

    rows: dict[UUID, Task] = field(default_factory=dict)
    dead: dict[UUID, DeadLetterRecord] = field(default_factory=dict)
    waiters: dict[UUID, set[asyncio.Future[None]]] = field(default_factory=dict)
    workers: dict[str, WorkerRecord] = field(default_factory=dict)
    users: int = 0


_REGISTRY: dict[tuple[str, str], _Shared] = {}


class MemoryStore(Store):
    """A store kept in this process's memory (``memory://``); real, fast, and not durable."""

    in_process = True

    def __init__(self, url: str, *, namespace: str) -> None:
        super().__init__(url, namespace=namespace)
        self._shared: _Shared | None = None
        self._mine: set[asyncio.Future[None]] = set()

    @property
    def _state(self) -> _Shared:
        if self._shared is None:
            raise StoreUnavailable(f"the memory store of namespace {self.namespace!r} is closed")
        return self._shared

    async def connect(self) -> None:
        """Join (or start) the rows shared by stores of this URL and namespace."""
        if self._shared is not None:
            return
        key = (self.url, self.namespace)
        shared = _REGISTRY.get(key)
        if shared is None:
            shared = _REGISTRY[key] = _Shared()
        shared.users += 1
        self._shared = shared

    async def apply_batch(self, events: Sequence[TaskEvent]) -> BatchResult:
        """Fold the batch onto the rows (atomically: nothing else runs meanwhile)."""
        shared = self._state
        if not events:
            return BatchResult()
        rows = shared.rows
        changed, counts = fold_batch(events, rows)
        completed: list[UUID] = []
        for task_id, row in changed.items():
            if row.is_completed:
                before = rows.get(task_id)
                if before is None or not before.is_completed:
                    completed.append(task_id)
        rows.update(changed)
        stats = self.stats
        stats.batches += 1
        stats.events += len(events)
        stats.duplicate_completions += counts.duplicate_completions
        stats.conflicting_completions += counts.conflicting_completions
        if shared.waiters:
            for task_id in completed:
                waiting = shared.waiters.pop(task_id, None)
                if waiting:
                    wake(waiting)
        return BatchResult(counts=counts, completed=completed)

    async def insert_if_absent(self, event: TaskEvent) -> bool:
        """Create the row of an ASSIGNED event unless the id exists; True when it was new."""
        if event.phase is not Phase.ASSIGNED:
            raise ValueError(f"insert_if_absent takes an ASSIGNED event, not {event.phase.name}")
        rows = self._state.rows
        if event.id in rows:
            return False
        rows[event.id] = merge(None, event)[0]
        return True

    async def delete(self, task_id: UUID) -> bool:
        """Delete one task's row; True if it existed."""
        return self._state.rows.pop(task_id, None) is not None

    async def get(self, task_id: UUID) -> Task | None:
        """The task's row, or ``None``."""
        return self._state.rows.get(task_id)

    async def wait(self, task_id: UUID, timeout: float) -> Task | None:
        """Wait (without polling) until the task completes or ``timeout`` passes; its row."""
        shared = self._state
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        shared.waiters.setdefault(task_id, set()).add(future)
        self._mine.add(future)
        try:
            row = shared.rows.get(task_id)
            if row is not None and row.is_completed:
                return row
            await asyncio.wait((future,), timeout=max(timeout, 0.0))
            return shared.rows.get(task_id)
        finally:
            self._mine.discard(future)
            waiting = shared.waiters.get(task_id)
            if waiting is not None:
                waiting.discard(future)
                if not waiting:
                    del shared.waiters[task_id]

    async def list(
        self, filters: TaskFilter | None = None, *, cursor: str | None = None, limit: int = 50
    ) -> TaskPage:
        """Tasks matching ``filters``, newest ``created_at`` first (ties by id, descending)."""
        rows: Iterable[Task] = self._state.rows.values()
        if filters is not None:
            rows = [row for row in rows if _matches(row, filters)]
        if cursor is not None:
            created, after_id = decode_cursor(cursor)
            bound = (0, 0, after_id.int) if created is None else (1, created, after_id.int)
            rows = [row for row in rows if _position(row) < bound]
        page = heapq.nlargest(max(limit, 0) + 1, rows, key=_position)
        return TaskPage.of(page, limit)

    async def cleanup(self, now: datetime, limit: int = 1000) -> int:
        """Delete up to ``limit`` completed tasks whose ``completed_at + ttl`` is not after now."""
        rows = self._state.rows
        expired: list[UUID] = []
        for row in rows.values():
            if len(expired) >= limit:
                break
            expires = row.expires_at
            if row.is_completed and expires is not None and expires <= now:
                expired.append(row.id)
        for task_id in expired:
            del rows[task_id]
        self.stats.deleted += len(expired)
        return len(expired)

    async def record_dead_letters(self, letters: Sequence[DeadLetterRecord]) -> None:
        """Insert or update dead-letter records (the rule of :func:`merge_dead_letter`)."""
        dead = self._state.dead
        for letter in letters:
            dead[letter.id] = merge_dead_letter(dead.get(letter.id), letter)
        self.stats.dead_letters_recorded += len(letters)

    async def get_dead_letter(self, letter_id: UUID) -> DeadLetterRecord | None:
        """The dead letter of that id, or ``None``."""
        return self._state.dead.get(letter_id)

    async def list_dead_letters(
        self,
        filters: DeadLetterFilter | None = None,
        *,
        cursor: str | None = None,
        limit: int = 50,
    ) -> DeadLetterPage:
        """Dead letters matching ``filters``, newest ``last_seen`` first (ties by id)."""
        found = [r for r in self._state.dead.values() if dead_letter_matches(r, filters)]
        if cursor is not None:
            seen, after_id = decode_cursor(cursor)
            bound = (seen or 0, after_id.int)
            found = [r for r in found if _dead_position(r) < bound]
        page = heapq.nlargest(max(limit, 0) + 1, found, key=_dead_position)
        return DeadLetterPage.of(page, limit)

    async def remove_dead_letter(self, letter_id: UUID, *, count: int | None = None) -> bool:
        """Delete one dead letter (only while its count is ``count``, when given)."""
        dead = self._state.dead
        record = dead.get(letter_id)
        if record is None or (count is not None and record.count != count):
            return False
        del dead[letter_id]
        return True

    async def purge_dead_letters(self, filters: DeadLetterFilter | None = None) -> int:
        """Delete every dead letter matching ``filters``."""
        dead = self._state.dead
        doomed = [key for key, record in dead.items() if dead_letter_matches(record, filters)]
        for key in doomed:
            del dead[key]
        return len(doomed)

    async def save_worker(self, record: WorkerRecord) -> None:
        """Keep ``record`` as its worker's state."""
        self._state.workers[record.name] = record

    async def touch_worker(self, heartbeat: Heartbeat, seen_at: datetime) -> bool:
        """Set the worker's last heartbeat; False when no such worker is kept."""
        workers = self._state.workers
        record = workers.get(heartbeat.name)
        if record is None:
            return False
        workers[heartbeat.name] = record.with_heartbeat(heartbeat, seen_at)
        return True

    async def remove_worker(self, name: str) -> bool:
        """Forget the worker ``name``."""
        return self._state.workers.pop(name, None) is not None

    async def list_workers(self) -> builtins.list[WorkerRecord]:
        """Every worker kept, by worker kind then name."""
        return sorted(self._state.workers.values(), key=lambda r: (r.worker_kind, r.name))

    async def prune_workers(self, seen_before: datetime) -> int:
        """Forget the workers last heard from before ``seen_before``."""
        workers = self._state.workers
        gone = [name for name, record in workers.items() if record.seen_at < seen_before]
        for name in gone:
            del workers[name]
        return len(gone)

    async def worker_kinds(self) -> builtins.list[str]:
        """The worker kinds of the namespace's rows, dead letters and workers (none while no
        store of this URL and namespace is connected: the rows went with the last one)."""
        shared = self._shared or _REGISTRY.get((self.url, self.namespace))
        if shared is None:
            return []
        tasks = [row.worker_kind for row in shared.rows.values()]
        tasks += [record.worker_kind for record in shared.workers.values()]
        return kinds_named(tasks, (record.origin for record in shared.dead.values()))

    async def delete_namespace(self) -> builtins.list[str]:
        """Drop the namespace's rows, dead letters and workers (those other connected stores
        of this URL and namespace share too; their waiters wake). Nothing when no store holds
        them."""
        check_not_connected(self._shared is not None, f"the memory store {self.url!r}")
        shared = _REGISTRY.pop((self.url, self.namespace), None)
        if shared is None:
            return []
        shared.rows.clear()
        shared.dead.clear()
        shared.workers.clear()
        for waiting in shared.waiters.values():
            wake(waiting)
        shared.waiters.clear()
        return [f"namespace {self.namespace} of {self.url}"]

    async def health(self) -> Health:
        """Healthy while connected."""
        if self._shared is None:
            return Health(False, "memory store is not connected")
        return Health(True, f"memory store, {len(self._shared.rows)} tasks")

    async def close(self) -> None:
        """Leave the shared rows (dropped with the last store) and wake this store's waiters."""
        shared, self._shared = self._shared, None
        wake(self._mine)
        self._mine.clear()
        if shared is None:
            return
        shared.users -= 1
        key = (self.url, self.namespace)
        if shared.users <= 0 and _REGISTRY.get(key) is shared:  # not one made after a delete
            del _REGISTRY[key]
