"""The store contract: what every store plugin implements (docs/architecture.md, "Contracts").

A store keeps the latest state of every task, folding events with the one merge rule of
:mod:`tacoq.model.merge`. All methods are coroutines; a store that cannot be reached raises
:class:`~tacoq.errors.StoreUnavailable` so the relay stops acknowledging and backs off.
Namespace maintenance (:meth:`Store.worker_kinds`, :meth:`Store.delete_namespace`) works on a
store that is not connected: it opens what it needs, creates nothing, and closes it.
"""

from __future__ import annotations

import abc
import builtins
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from types import TracebackType
from typing import Protocol, Self
from uuid import UUID

from tacoq.contracts.broker import Health, worker_kind_of
from tacoq.contracts.cursors import encode_cursor
from tacoq.errors import ConfigError
from tacoq.model.merge import MergeCounts
from tacoq.model.task import Task, TaskEvent, TaskStatus
from tacoq.model.workers import Heartbeat, WorkerRecord

__all__ = [
    "BatchResult",
    "DeadLetterFilter",
    "DeadLetterPage",
    "DeadLetterRecord",
    "Store",
    "StoreFactory",
    "StoreStats",
    "TaskFilter",
    "TaskPage",
    "dead_letter_matches",
    "kinds_named",
    "merge_dead_letter",
]


@dataclass(slots=True)
class BatchResult:
    """What one :meth:`Store.apply_batch` did."""

    counts: MergeCounts = field(default_factory=MergeCounts)
    #: Ids of the tasks that this batch completed (for waking waiters and metrics).
    completed: list[UUID] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class TaskFilter:
    """Filters for :meth:`Store.list`; ``None`` means "any"."""

    status: TaskStatus | None = None
    task_kind: str | None = None
    worker_kind: str | None = None


@dataclass(frozen=True, slots=True)
class TaskPage:
    """One page of :meth:`Store.list`: tasks, newest first, and the cursor of the next page."""

    tasks: list[Task]
    next_cursor: str | None

    @classmethod
    def of(cls, rows: Sequence[Task], limit: int) -> TaskPage:
        """The page of ``limit`` tasks from up to ``limit + 1`` fetched in order (one more
        than the page says there is a next page)."""
        page = list(rows[: max(limit, 0)])
        more = len(rows) > limit and page
        return cls(page, encode_cursor(page[-1].created_at, page[-1].id) if more else None)


@dataclass(frozen=True, slots=True)
class DeadLetterRecord:
    """A dead-lettered message as the store keeps it (the relay consumes the dead-letter queue
    into the store: the store owns dead letters).

    ``id`` comes from the message's ``tacoq-dead-letter-id``; a message dead-lettered again
    after a requeue keeps it, so ``count`` (times dead-lettered) grows on one record.
    ``headers`` are the message's headers as text; ``body`` is at most the relay's limit, and
    ``body_size`` the size of the whole body (a cut body cannot be requeued). ``task_id`` is
    the ``tacoq-id`` header when it is a task id.
    """

    id: UUID
    origin: str
    reason: str
    headers: dict[str, str]
    content_type: str
    body: bytes
    body_size: int
    task_id: UUID | None
    first_seen: datetime
    last_seen: datetime
    count: int = 1

    @property
    def body_complete(self) -> bool:
        """True when :attr:`body` is the whole body (the record can be requeued)."""
        return self.body_size == len(self.body)


def merge_dead_letter(old: DeadLetterRecord | None, new: DeadLetterRecord) -> DeadLetterRecord:
    """The record a store keeps when ``new`` arrives for ``old``'s id (the rule every store
    applies: earliest ``first_seen``, latest ``last_seen``, greatest ``count``, and the other
    fields of whichever was seen last)."""
    if old is None:
        return new
    latest = new if new.last_seen >= old.last_seen else old
    return replace(
        latest,
        first_seen=min(old.first_seen, new.first_seen),
        last_seen=max(old.last_seen, new.last_seen),
        count=max(old.count, new.count),
    )


def dead_letter_matches(record: DeadLetterRecord, filters: DeadLetterFilter | None) -> bool:
    """Whether ``record`` passes ``filters`` (for stores that filter in Python)."""
    return filters is None or (
        (filters.origin is None or record.origin == filters.origin)
        and (filters.reason is None or filters.reason in record.reason)
        and (filters.task_id is None or record.task_id == filters.task_id)
    )


def kinds_named(task_kinds: Iterable[str], origins: Iterable[str]) -> list[str]:
    """The worker kinds a namespace's store names, sorted and distinct: the ``worker_kind`` of
    each task (``task_kinds``) and the kind of each dead letter's ``worker:<kind>`` origin (the
    relay's queue names none)."""
    found = set(task_kinds)
    found.update(kind for origin in origins if (kind := worker_kind_of(origin)) is not None)
    return sorted(found)


@dataclass(frozen=True, slots=True)
class DeadLetterFilter:
    """Filters for :meth:`Store.list_dead_letters`; ``None`` means "any"."""

    #: The logical queue it came from (``relay``, ``worker:<kind>``).
    origin: str | None = None
    #: Text the reason contains (case-sensitive).
    reason: str | None = None
    task_id: UUID | None = None


@dataclass(frozen=True, slots=True)
class DeadLetterPage:
    """One page of :meth:`Store.list_dead_letters`: newest ``last_seen`` first."""

    dead_letters: list[DeadLetterRecord]
    next_cursor: str | None

    @classmethod
    def of(cls, records: Sequence[DeadLetterRecord], limit: int) -> DeadLetterPage:
        """The page of ``limit`` dead letters from up to ``limit + 1`` fetched in order."""
        page = list(records[: max(limit, 0)])
        more = len(records) > limit and page
        return cls(page, encode_cursor(page[-1].last_seen, page[-1].id) if more else None)


@dataclass(slots=True)
class StoreStats:
    """Counters a store keeps since it was opened (by this process)."""

    batches: int = 0
    events: int = 0
    duplicate_completions: int = 0
    conflicting_completions: int = 0
    deleted: int = 0
    dead_letters_recorded: int = 0


class Store(abc.ABC):
    """A connection to a task store."""

    #: True when the store lives inside this process (``memory://``).
    in_process: bool = False

    def __init__(self, url: str, *, namespace: str) -> None:
        self.url = url
        self.namespace = namespace
        self.stats = StoreStats()

    @abc.abstractmethod
    async def connect(self) -> None:
        """Open connections and make sure the schema exists."""

    @abc.abstractmethod
    async def apply_batch(self, events: Sequence[TaskEvent]) -> BatchResult:
        """Fold a batch of events (of many tasks, in arrival order) in one transaction.

        Retry-safe: applying the same batch twice changes no row. Raises
        :class:`~tacoq.errors.StoreUnavailable` when nothing could be committed.
        """

    @abc.abstractmethod
    async def insert_if_absent(self, event: TaskEvent) -> bool:
        """Create the row of an ASSIGNED event unless the id exists; True when it was new.

        Safe under concurrency: of two calls with one id, exactly one returns True.
        """

    @abc.abstractmethod
    async def delete(self, task_id: UUID) -> bool:
        """Delete one task's row (a REST publish that the broker refused); True if it existed."""

    @abc.abstractmethod
    async def get(self, task_id: UUID) -> Task | None:
        """The task's row, or ``None`` when the store has never seen it."""

    @abc.abstractmethod
    async def wait(self, task_id: UUID, timeout: float) -> Task | None:
        """Wait until the task completes or ``timeout`` seconds pass; return its current row.

        Without polling where the backend can push: register, then read, then wait, so a
        completion between the read and the wait is not missed.
        """

    @abc.abstractmethod
    async def list(
        self, filters: TaskFilter | None = None, *, cursor: str | None = None, limit: int = 50
    ) -> TaskPage:
        """Tasks matching ``filters``, newest ``created_at`` first, paginated by cursor."""

    @abc.abstractmethod
    async def cleanup(self, now: datetime, limit: int = 1000) -> int:
        """Delete up to ``limit`` completed tasks whose ``completed_at + ttl`` is at or before
        ``now``; return how many were deleted."""

    # -- dead letters ----------------------------------------------------------------------------

    @abc.abstractmethod
    async def record_dead_letters(self, letters: Sequence[DeadLetterRecord]) -> None:
        """Insert or update dead-letter records in one transaction (idempotent).

        A record whose id exists keeps the earlier ``first_seen``, the later ``last_seen`` and
        the greater ``count``; its other fields become those of the record seen last.
        """

    @abc.abstractmethod
    async def get_dead_letter(self, letter_id: UUID) -> DeadLetterRecord | None:
        """The dead letter of that id, or ``None``."""

    @abc.abstractmethod
    async def list_dead_letters(
        self,
        filters: DeadLetterFilter | None = None,
        *,
        cursor: str | None = None,
        limit: int = 50,
    ) -> DeadLetterPage:
        """Dead letters matching ``filters``, newest ``last_seen`` first (ties by id,
        descending), paginated by cursor; a malformed cursor raises ``ValueError``."""

    @abc.abstractmethod
    async def remove_dead_letter(self, letter_id: UUID, *, count: int | None = None) -> bool:
        """Delete one dead letter; with ``count``, only while its count is still that (it was
        not dead-lettered again meanwhile). True when a record was deleted."""

    @abc.abstractmethod
    async def purge_dead_letters(self, filters: DeadLetterFilter | None = None) -> int:
        """Delete every dead letter matching ``filters``; how many were deleted."""

    # -- workers online (docs/workers.md) ------------------------------------------------------
    # Stores without them keep these defaults, which raise ConfigError: the relay then runs
    # without workers online (and says so once).

    async def save_worker(self, record: WorkerRecord) -> None:
        """Keep ``record`` as the state of its worker (by name), replacing what was kept."""
        raise ConfigError(f"the {type(self).__name__} store does not keep workers")

    async def touch_worker(self, heartbeat: Heartbeat, seen_at: datetime) -> bool:
        """Set the last heartbeat and ``seen_at`` of the worker ``heartbeat.name`` (``seen_at``
        never moves back: two relays may commit out of order); False (nothing changed) when
        the store keeps no such worker."""
        raise ConfigError(f"the {type(self).__name__} store does not keep workers")

    async def remove_worker(self, name: str) -> bool:
        """Forget the worker ``name`` (it said goodbye); True when one was kept."""
        raise ConfigError(f"the {type(self).__name__} store does not keep workers")

    async def list_workers(self) -> builtins.list[WorkerRecord]:
        """Every worker kept, live or not, sorted by worker kind then name."""
        raise ConfigError(f"the {type(self).__name__} store does not keep workers")

    async def prune_workers(self, seen_before: datetime) -> int:
        """Forget the workers last heard from before ``seen_before``; how many."""
        raise ConfigError(f"the {type(self).__name__} store does not keep workers")

    # -- namespace maintenance (connected or not; see the module doc) ----------------------------

    async def worker_kinds(self) -> builtins.list[str]:
        """Every worker kind this namespace's store names (:func:`kinds_named`): what a broker
        that cannot list its queues needs to delete the namespace's worker queues.

        Works whether or not this store is connected, and creates nothing: a namespace the
        store has never held names none. Stores that cannot tell keep this default, which
        raises :class:`~tacoq.errors.ConfigError`.
        """
        raise ConfigError(f"the {type(self).__name__} store cannot list its worker kinds")

    async def delete_namespace(self) -> builtins.list[str]:
        """Delete everything this store keeps for its namespace (tasks, dead letters, the
        tables or schema holding them); return what was deleted, each as ``"schema NAME"``,
        ``"table NAME"`` or the like, and nothing when the namespace does not exist.

        Called on a store that is not connected (raises :class:`~tacoq.errors.TacoqError`
        otherwise; see :func:`tacoq.contracts.broker.check_not_connected`): it opens what it
        needs, creates nothing, and closes it. Stores that cannot delete keep this default,
        which raises :class:`~tacoq.errors.ConfigError`.
        """
        raise ConfigError(f"the {type(self).__name__} store cannot delete a namespace")

    @abc.abstractmethod
    async def health(self) -> Health:
        """Whether the store answers."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Close connections and wake every waiter."""

    async def __aenter__(self) -> Self:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


class StoreFactory(Protocol):
    """Makes a store for a URL; returned by plugins from ``tacoq_store_schemes``."""

    def __call__(self, url: str, *, namespace: str) -> Store:
        """Create (but do not connect) a store; import heavy clients lazily."""
        ...
