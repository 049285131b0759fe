"""The store contract suite: every store plugin inherits :class:`StoreContract`.

::

    class TestMyStore(StoreContract):
        @pytest.fixture
        def store_url(self) -> str:
            return "mystore://localhost/db"

Written for asynchronous, real stores: each test runs in a fresh namespace, waits with bounded
timeouts instead of exact timings, and takes the ttl clock from the ``clock`` fixture. The merge
rule's oracle is :func:`tacoq.merge.fold` itself.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Protocol
from uuid import UUID

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tacoq.merge import fold, merge
from tacoq.models import ErrorInfo, Payload, Phase, Task, TaskEvent, TaskStatus
from tacoq.plugins import get_plugin_host
from tacoq.store import Store, TaskFilter
from tacoq.testing.clock import FakeClock
from tacoq.testing.eventually import fresh_namespace
from tacoq.testing.strategies import T0, deliveries, event, task_histories, with_fresh_ids

__all__ = ["T0", "OpenStore", "StoreContract", "event"]

#: Examples per hypothesis test: enough to shake out ordering bugs, few enough for a real DB.
HISTORY_EXAMPLES = 30
#: A bound that a wake-up must beat by far; never a tight timing.
PROMPT = 5.0


class OpenStore(Protocol):
    """Opens (and later closes) another connected store; same namespace unless given."""

    async def __call__(self, namespace: str | None = None) -> Store:
        """A connected store of ``store_url`` in ``namespace``."""
        ...


def _oracle(applied: Sequence[TaskEvent]) -> dict[UUID, Task | None]:
    by_id: dict[UUID, list[TaskEvent]] = defaultdict(list)
    for e in applied:
        by_id[e.id].append(e)
    return {task_id: fold(events)[0] for task_id, events in by_id.items()}


class StoreContract:
    """The behaviour every store must show; inherit it and override ``store_url``."""

    # -- fixtures a plugin may override ---------------------------------------------------------

    @pytest.fixture
    def store_url(self) -> str:
        """The URL of the store under test; every subclass must override this fixture."""
        pytest.fail("override the `store_url` fixture in your StoreContract subclass")

    @pytest.fixture
    def namespace(self) -> str:
        """A namespace no other test uses."""
        return fresh_namespace("store")

    @pytest.fixture
    def clock(self) -> FakeClock:
        """The clock handed to ``cleanup``."""
        return FakeClock()

    @pytest.fixture
    async def open_store(self, store_url: str, namespace: str) -> AsyncIterator[OpenStore]:
        """A factory of further store instances, closed after the test."""
        opened: list[Store] = []
        default_namespace = namespace

        async def open_(namespace: str | None = None) -> Store:
            ns = namespace or default_namespace
            store = get_plugin_host().create_store(store_url, namespace=ns)
            await store.connect()
            opened.append(store)
            return store

        yield open_
        for store in opened:
            await store.close()

    @pytest.fixture
    async def store(self, open_store: OpenStore) -> Store:
        """The connected store under test."""
        return await open_store()

    # -- applying events ------------------------------------------------------------------------

    @pytest.mark.parametrize("phase", list(Phase))
    async def test_apply_then_get_each_phase(self, store: Store, phase: Phase) -> None:
        """A lone event of any phase makes the row ``merge(None, event)`` makes."""
        e = event(uuid.uuid4(), phase)
        result = await store.apply_batch([e])
        assert await store.get(e.id) == merge(None, e)[0]
        assert result.completed == ([e.id] if phase is Phase.COMPLETED else [])
        assert (store.stats.batches, store.stats.events) == (1, 1)

    async def test_values_roundtrip_exactly(self, store: Store) -> None:
        """Bytes, text, errors and microsecond UTC timestamps come back exactly."""
        ids = [uuid.uuid4() for _ in range(4)]
        moment = datetime.fromisoformat("2031-07-04T23:59:59.999999+00:00")
        error = ErrorInfo("ValueError", "bad \x00 input ✓\n", "Traceback:\n  line 1\n")
        events = [
            event(ids[0], Phase.COMPLETED, output=bytes(range(256))),
            event(ids[1], Phase.COMPLETED, output="héllo ✓ 🌮".encode()),
            event(ids[2], Phase.COMPLETED, output=b""),
            event(ids[3], Phase.COMPLETED, error=error),
            event(ids[3], Phase.ASSIGNED, created_at=moment),
        ]
        await store.apply_batch(events)
        for task_id, expected in _oracle(events).items():
            row = await store.get(task_id)
            assert row == expected
            assert row is not None
            assert row.completed_at is not None
            assert row.completed_at.utcoffset() == timedelta(0)
        row = await store.get(ids[3])
        assert row is not None
        assert row.created_at == moment
        assert row.error == error

    @settings(
        max_examples=HISTORY_EXAMPLES,
        deadline=None,
        # The store fixture is reused across examples on purpose (fresh ids per example), and
        # every plugin's subclass runs this inherited method: both checks are safe to skip.
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,
            HealthCheck.differing_executors,
            HealthCheck.too_slow,
        ],
    )
    @given(data=st.data())
    async def test_any_delivery_folds_like_the_merge_rule(
        self, store: Store, data: st.DataObject
    ) -> None:
        """Shuffled, duplicated, batched histories give the rows of :func:`tacoq.merge.fold`."""
        history = data.draw(task_histories(max_tasks=4), label="history")
        batches = with_fresh_ids(data.draw(deliveries(history), label="batches"))
        applied: list[TaskEvent] = []
        duplicates = conflicts = 0
        completed: list[UUID] = []
        for batch in batches:
            result = await store.apply_batch(batch)
            applied += batch
            duplicates += result.counts.duplicate_completions
            conflicts += result.counts.conflicting_completions
            completed += result.completed
        expected = _oracle(applied)
        for task_id, row in expected.items():
            assert await store.get(task_id) == row
        assert sorted(completed) == sorted(i for i, r in expected.items() if r and r.is_completed)
        by_id: dict[UUID, list[TaskEvent]] = defaultdict(list)
        for e in applied:
            by_id[e.id].append(e)
        oracle_counts = [fold(events)[1] for events in by_id.values()]
        assert duplicates == sum(c.duplicate_completions for c in oracle_counts)
        assert conflicts == sum(c.conflicting_completions for c in oracle_counts)

    async def test_same_batch_twice_changes_nothing(self, store: Store) -> None:
        """A retried batch changes no row; its completions count as duplicates."""
        ids = [uuid.uuid4() for _ in range(3)]
        batch = [event(i, p) for i in ids for p in (Phase.ASSIGNED, Phase.RUNNING)]
        batch += [event(i, Phase.COMPLETED) for i in ids[:2]]
        first = await store.apply_batch(batch)
        rows = [await store.get(i) for i in ids]
        again = await store.apply_batch(batch)
        assert [await store.get(i) for i in ids] == rows
        assert sorted(first.completed) == sorted(ids[:2])
        assert again.completed == []
        assert again.counts.duplicate_completions == 2
        assert again.counts.applied == 0
        assert store.stats.duplicate_completions == 2

    async def test_empty_batch_is_harmless(self, store: Store) -> None:
        """An empty batch completes nothing."""
        assert (await store.apply_batch([])).completed == []

    async def test_late_assignment_fills_a_completed_row(self, store: Store) -> None:
        """An assignment arriving after the completion fills input, priority and created_at."""
        task_id = uuid.uuid4()
        await store.apply_batch([event(task_id, Phase.COMPLETED)])
        row = await store.get(task_id)
        assert row is not None
        assert row.created_at is None
        assert row.input is None
        await store.apply_batch([event(task_id, Phase.ASSIGNED), event(task_id, Phase.RUNNING)])
        row = await store.get(task_id)
        assert row is not None
        assert row.status is TaskStatus.COMPLETED
        assert row.created_at == T0
        assert row.priority == 7
        assert row.input == Payload("application/json", b"[1, 2]")

    async def test_first_completion_wins_and_conflicts_are_counted(self, store: Store) -> None:
        """A different second completion is counted as a conflict and never applied."""
        a, b = uuid.uuid4(), uuid.uuid4()
        await store.apply_batch([event(a, Phase.COMPLETED, worker="w1", output=b"1")])
        later = await store.apply_batch([event(a, Phase.COMPLETED, worker="w2", output=b"2")])
        row = await store.get(a)
        assert row is not None
        assert row.executed_by == "w1"
        assert row.output == Payload("application/json", b"1")
        assert later.counts.conflicting_completions == 1
        assert later.completed == []
        both = [event(b, Phase.COMPLETED, worker="w1"), event(b, Phase.COMPLETED, worker="w2")]
        result = await store.apply_batch(both)
        row = await store.get(b)
        assert row is not None
        assert row.executed_by == "w1"
        assert result.counts.conflicting_completions == 1
        assert result.completed == [b]
        assert store.stats.conflicting_completions == 2

    async def test_retry_supersedes_the_previous_attempt(self, store: Store) -> None:
        """Attempt 2's assignment after attempt 1's RUNNING makes the row PENDING, attempt 2."""
        task_id = uuid.uuid4()
        await store.apply_batch([event(task_id, Phase.ASSIGNED), event(task_id, Phase.RUNNING)])
        await store.apply_batch([event(task_id, Phase.ASSIGNED, attempt=2)])
        row = await store.get(task_id)
        assert row is not None
        assert (row.status, row.attempt) == (TaskStatus.PENDING, 2)
        assert row.executed_by is None
        assert row.started_at is None

    # -- insert_if_absent, delete ---------------------------------------------------------------

    async def test_insert_if_absent_once_under_concurrency(
        self, store: Store, open_store: OpenStore
    ) -> None:
        """Of ten concurrent inserts of one id (over two connections), exactly one wins."""
        other = await open_store()
        e = event(uuid.uuid4(), Phase.ASSIGNED)
        results = await asyncio.gather(
            *(s.insert_if_absent(e) for s in [store, other] * 5), return_exceptions=False
        )
        assert results.count(True) == 1
        assert await store.get(e.id) == merge(None, e)[0]

    async def test_insert_if_absent_keeps_an_existing_row(self, store: Store) -> None:
        """An existing (even completed) row is never overwritten."""
        task_id = uuid.uuid4()
        await store.apply_batch([event(task_id, Phase.COMPLETED)])
        before = await store.get(task_id)
        assert await store.insert_if_absent(event(task_id, Phase.ASSIGNED)) is False
        assert await store.get(task_id) == before

    async def test_delete(self, store: Store) -> None:
        """Delete removes a row once; unknown ids read as ``None``."""
        e = event(uuid.uuid4(), Phase.ASSIGNED)
        assert await store.insert_if_absent(e)
        assert await store.delete(e.id) is True
        assert await store.delete(e.id) is False
        assert await store.get(e.id) is None

    # -- wait -----------------------------------------------------------------------------------

    async def test_wait_returns_at_once_when_completed(self, store: Store) -> None:
        """A completed task is returned without waiting."""
        task_id = uuid.uuid4()
        await store.apply_batch([event(task_id, Phase.COMPLETED)])
        row = await asyncio.wait_for(store.wait(task_id, timeout=60), PROMPT)
        assert row is not None
        assert row.is_completed

    @pytest.mark.parametrize("same_instance", [True, False], ids=["same", "other-instance"])
    async def test_wait_wakes_on_completion(
        self, store: Store, open_store: OpenStore, same_instance: bool
    ) -> None:
        """A waiter returns soon after a concurrent apply_batch completes the task."""
        task_id = uuid.uuid4()
        await store.apply_batch([event(task_id, Phase.ASSIGNED)])
        writer = store if same_instance else await open_store()
        waiter = asyncio.create_task(store.wait(task_id, timeout=60))
        await asyncio.sleep(0.05)
        assert not waiter.done()
        await writer.apply_batch([event(task_id, Phase.COMPLETED)])
        row = await asyncio.wait_for(waiter, PROMPT)
        assert row is not None
        assert row.is_completed

    async def test_wait_timeout_returns_the_current_row(self, store: Store) -> None:
        """On timeout the current (PENDING) row comes back."""
        task_id = uuid.uuid4()
        await store.apply_batch([event(task_id, Phase.ASSIGNED)])
        row = await asyncio.wait_for(store.wait(task_id, timeout=0.2), PROMPT)
        assert row is not None
        assert row.status is TaskStatus.PENDING

    async def test_wait_unknown_id_returns_none(self, store: Store) -> None:
        """A task the store never saw reads as ``None`` after the timeout."""
        assert await asyncio.wait_for(store.wait(uuid.uuid4(), timeout=0.1), PROMPT) is None

    async def test_close_wakes_waiters(self, open_store: OpenStore) -> None:
        """Closing a store releases its waiters at once."""
        other = await open_store()
        waiter = asyncio.create_task(other.wait(uuid.uuid4(), timeout=60))
        await asyncio.sleep(0.05)
        await other.close()
        assert await asyncio.wait_for(waiter, PROMPT) is None

    # -- list -----------------------------------------------------------------------------------

    async def test_list_order_filters_and_pagination(self, store: Store) -> None:
        """Newest first, ties by id, unassigned rows last; each row once across pages."""
        events = [
            event(uuid.uuid4(), Phase.ASSIGNED, created_at=T0 + timedelta(seconds=i // 2))
            for i in range(7)
        ]
        events += [event(uuid.uuid4(), Phase.RUNNING, task_kind="mul") for _ in range(3)]
        events += [event(events[0].id, Phase.COMPLETED), event(events[1].id, Phase.RUNNING)]
        await store.apply_batch(events)
        rows = [await store.get(task_id) for task_id in dict.fromkeys(e.id for e in events)]
        expected = sorted(
            (row for row in rows if row is not None),
            key=lambda r: (r.created_at is not None, r.created_at or T0, r.id.int),
            reverse=True,
        )
        for limit in (1, 3, 50):
            seen: list[Task] = []
            cursor: str | None = None
            while True:
                page = await store.list(cursor=cursor, limit=limit)
                assert len(page.tasks) <= limit
                seen += page.tasks
                if page.next_cursor is None:
                    break
                cursor = page.next_cursor
            assert [r.id for r in seen] == [r.id for r in expected]
        for filters in (
            TaskFilter(status=TaskStatus.RUNNING),
            TaskFilter(task_kind="mul"),
            TaskFilter(status=TaskStatus.COMPLETED, worker_kind="math"),
            TaskFilter(worker_kind="nope"),
        ):
            page = await store.list(filters, limit=100)
            wanted = [
                r.id
                for r in expected
                if filters.status in (None, r.status)
                and filters.task_kind in (None, r.task_kind)
                and filters.worker_kind in (None, r.worker_kind)
            ]
            assert [r.id for r in page.tasks] == wanted
            assert page.next_cursor is None

    # -- cleanup --------------------------------------------------------------------------------

    async def test_cleanup_deletes_expired_completed_tasks_in_bounded_batches(
        self, store: Store, clock: FakeClock
    ) -> None:
        """Only completed rows past their ttl go, ``limit`` at a time."""
        ids = [uuid.uuid4() for _ in range(8)]
        done_at = clock()
        batch = []
        for i, task_id in enumerate(ids):
            ttl = 3600 if i == 5 else 60
            phase = Phase.RUNNING if i == 6 else Phase.ASSIGNED if i == 7 else Phase.COMPLETED
            e = event(task_id, phase, ttl=ttl)
            if phase is Phase.COMPLETED:
                e = replace(e, completed_at=done_at)
            batch.append(e)
        await store.apply_batch(batch)
        assert await store.cleanup(clock.advance(59), limit=10) == 0
        clock.advance(1)
        assert [await store.cleanup(clock(), limit=2) for _ in range(4)] == [2, 2, 1, 0]
        assert [await store.get(i) is None for i in ids] == [True] * 5 + [False] * 3
        assert store.stats.deleted == 5
        assert await store.cleanup(clock.advance(10**6), limit=10) == 1

    # -- namespaces, health ---------------------------------------------------------------------

    async def test_namespaces_are_isolated(self, store: Store, open_store: OpenStore) -> None:
        """A store in another namespace sees none of these rows."""
        other = await open_store(fresh_namespace("other"))
        task_id = uuid.uuid4()
        await store.apply_batch([event(task_id, Phase.COMPLETED)])
        assert await other.get(task_id) is None
        assert (await other.list()).tasks == []
        await other.apply_batch([event(task_id, Phase.ASSIGNED)])
        row = await store.get(task_id)
        assert row is not None
        assert row.is_completed
        assert row.created_at is None

    async def test_health(self, store: Store) -> None:
        """A connected store is healthy."""
        assert (await store.health()).ok
