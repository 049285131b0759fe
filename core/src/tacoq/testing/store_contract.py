"""The store contract suite: every store plugin inherits :class:`StoreContract`.

::

    class TestMyStore(StoreContract):
        @pytest.fixture
        def store_url(self) -> str:
            return "mystore://localhost/db"

Written for asynchronous, real stores: each test runs in a fresh namespace, waits with bounded
timeouts instead of exact timings, and takes the ttl clock from the ``clock`` fixture. The merge
rule's oracle is :func:`tacoq.model.merge.fold` itself.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import Protocol
from uuid import UUID

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tacoq.contracts.store import (
    DeadLetterFilter,
    DeadLetterRecord,
    Store,
    TaskFilter,
    merge_dead_letter,
)
from tacoq.errors import StoreUnavailable, TacoqError
from tacoq.model.merge import fold, merge
from tacoq.model.task import ErrorInfo, Payload, Phase, Task, TaskEvent, TaskStatus
from tacoq.plugins import get_plugin_host
from tacoq.testing.clock import FakeClock
from tacoq.testing.eventually import fresh_namespace
from tacoq.testing.records import all_dead_letters
from tacoq.testing.strategies import T0, deliveries, event, task_histories, with_fresh_ids
from tacoq.testing.workers import (
    json_contract,
    large_announcement,
    make_announcement,
    make_heartbeat,
    worker_record,
)

__all__ = ["T0", "OpenStore", "StoreContract", "dead_letter", "event"]

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
        """Shuffled, duplicated, batched histories give the rows of ``tacoq.model.merge.fold``."""
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

    # -- dead letters ----------------------------------------------------------------------------

    async def test_a_dead_letter_roundtrips_exactly(self, store: Store) -> None:
        """Every field of a dead-letter record comes back as recorded."""
        letter = dead_letter(
            headers={"tacoq-event": "assign", "x-Größe": "✓ 🌮", "empty": ""},
            body=bytes(range(256)),
            body_size=300,
            task_id=uuid.uuid4(),
            content_type="application/octet-stream",
        )
        other = dead_letter(origin="relay", task_id=None, body=b"")
        await store.record_dead_letters([letter, other])
        assert await store.get_dead_letter(letter.id) == letter
        assert await store.get_dead_letter(other.id) == other
        assert await store.get_dead_letter(uuid.uuid4()) is None
        assert not letter.body_complete
        assert other.body_complete
        assert store.stats.dead_letters_recorded == 2

    async def test_a_dead_letter_seen_again_keeps_one_record(self, store: Store) -> None:
        """Recording an id again merges: earliest first_seen, latest last_seen, greatest count,
        the other fields from the record seen last; recording the same record twice changes
        nothing (the relay's intake is at-least-once)."""
        first = dead_letter(reason="first", last_seen=T0 + timedelta(seconds=1))
        again = replace(
            first,
            reason="again",
            first_seen=T0 + timedelta(seconds=5),
            last_seen=T0 + timedelta(seconds=5),
            count=2,
            body=b"newer",
            body_size=5,
        )
        late_copy = replace(first, reason="stale", last_seen=T0 + timedelta(seconds=2))
        await store.record_dead_letters([first])
        await store.record_dead_letters([again])
        await store.record_dead_letters([late_copy])  # an older copy arriving last
        await store.record_dead_letters([again])
        expected = merge_dead_letter(merge_dead_letter(first, again), late_copy)
        assert await store.get_dead_letter(first.id) == expected
        assert expected.reason == "again"
        assert (expected.first_seen, expected.count) == (first.first_seen, 2)

    async def test_dead_letters_list_newest_first_filtered_and_paginated(
        self, store: Store
    ) -> None:
        """Newest ``last_seen`` first (ties by id, descending); filters by origin, reason text
        and task id; pages cover every record once; a malformed cursor is a ValueError."""
        task_id = uuid.uuid4()
        letters = [
            dead_letter(
                origin="relay" if i % 2 else "worker:images",
                reason=f"reason {i % 3} of {i}",
                last_seen=T0 + timedelta(seconds=i // 2),  # ties in pairs
                task_id=task_id if i == 4 else None,
            )
            for i in range(9)
        ]
        await store.record_dead_letters(letters)
        everything = await all_dead_letters(store, None, page=2)
        assert everything == sorted(letters, key=lambda r: (r.last_seen, r.id.int), reverse=True)
        relay = await all_dead_letters(store, DeadLetterFilter(origin="relay"), page=3)
        assert {r.id for r in relay} == {r.id for r in letters if r.origin == "relay"}
        reason = await all_dead_letters(store, DeadLetterFilter(reason="reason 1"), page=50)
        assert {r.id for r in reason} == {r.id for r in letters if "reason 1" in r.reason}
        by_task = await store.list_dead_letters(DeadLetterFilter(task_id=task_id))
        assert [r.id for r in by_task.dead_letters] == [letters[4].id]
        assert by_task.next_cursor is None
        with pytest.raises(ValueError, match="cursor"):
            await store.list_dead_letters(cursor="not a cursor")

    async def test_removing_a_dead_letter_can_require_its_count(self, store: Store) -> None:
        """A requeue removes the record it requeued, not one dead-lettered again meanwhile."""
        letter = dead_letter(count=2)
        await store.record_dead_letters([letter])
        assert not await store.remove_dead_letter(letter.id, count=1)
        assert await store.get_dead_letter(letter.id) == letter
        assert await store.remove_dead_letter(letter.id, count=2)
        assert await store.get_dead_letter(letter.id) is None
        assert not await store.remove_dead_letter(letter.id)
        other = dead_letter()
        await store.record_dead_letters([other])
        assert await store.remove_dead_letter(other.id)

    async def test_purging_dead_letters_by_filter(self, store: Store) -> None:
        """Purge deletes exactly what matches, and everything without a filter."""
        letters = [dead_letter(origin="relay"), dead_letter(origin="worker:a"), dead_letter()]
        await store.record_dead_letters(letters)
        assert await store.purge_dead_letters(DeadLetterFilter(origin="relay")) == 1
        assert await store.get_dead_letter(letters[0].id) is None
        assert await store.purge_dead_letters() == 2
        assert (await store.list_dead_letters()).dead_letters == []
        assert await store.purge_dead_letters() == 0

    @settings(
        max_examples=HISTORY_EXAMPLES,
        deadline=None,
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,
            HealthCheck.differing_executors,
            HealthCheck.too_slow,
        ],
    )
    @given(data=st.data())
    async def test_dead_letters_in_any_order_fold_like_the_rule(
        self, store: Store, data: st.DataObject
    ) -> None:
        """Any order and duplication of records converges to :func:`merge_dead_letter`."""
        ids = [uuid.uuid4() for _ in range(3)]
        drawn = data.draw(
            st.lists(
                st.tuples(
                    st.sampled_from(ids),
                    st.integers(0, 5),
                    st.integers(0, 5),
                    st.integers(1, 4),
                    st.text(max_size=5),
                ),
                min_size=1,
                max_size=12,
            )
        )
        records = [
            dead_letter(
                letter_id=i,
                first_seen=T0 + timedelta(seconds=f),
                last_seen=T0 + timedelta(seconds=f + extra),
                count=count,
                reason=f"r{f + extra}",  # a function of last_seen: ties agree on it
                body=text.encode(),
            )
            for i, f, extra, count, text in drawn
        ]
        records = [replace(r, body=r.reason.encode(), body_size=len(r.reason)) for r in records]
        batches = data.draw(st.lists(st.integers(1, 4), min_size=len(records)))
        start = 0
        for size in batches:
            if start >= len(records):
                break
            await store.record_dead_letters(records[start : start + size])
            start += size
        if start < len(records):
            await store.record_dead_letters(records[start:])
        for letter_id in ids:
            expected = None
            for record in records:
                if record.id == letter_id:
                    expected = merge_dead_letter(expected, record)
            assert await store.get_dead_letter(letter_id) == expected
        await store.purge_dead_letters()

    async def test_dead_letters_of_namespaces_are_isolated(
        self, store: Store, open_store: OpenStore
    ) -> None:
        """A store in another namespace sees none of these dead letters."""
        other = await open_store(fresh_namespace("other"))
        letter = dead_letter()
        await store.record_dead_letters([letter])
        assert await other.get_dead_letter(letter.id) is None
        assert (await other.list_dead_letters()).dead_letters == []
        assert await other.purge_dead_letters() == 0
        assert await store.get_dead_letter(letter.id) == letter

    # -- workers online -------------------------------------------------------------------------

    async def test_a_saved_worker_is_listed(self, store: Store, open_store: OpenStore) -> None:
        """A saved record comes back equal, to this store and to another of the namespace; a
        heartbeat heard before any announcement is kept too."""
        assert await store.list_workers() == []
        announced = worker_record(make_announcement("w-1", "images"), seen_at=T0)
        early = worker_record(make_heartbeat("w-2", "images", running=2), seen_at=T0)
        await store.save_worker(announced)
        await store.save_worker(early)
        assert await store.list_workers() == [announced, early]
        assert await (await open_store()).list_workers() == [announced, early]

    async def test_saving_a_worker_again_replaces_it(self, store: Store) -> None:
        """A second save of one name replaces the whole record: kind, announcement, heartbeat
        (gone when the new record has none) and ``seen_at``."""
        first = worker_record(
            make_announcement("w-1", "images", task_kinds=["resize"]),
            heartbeat=make_heartbeat("w-1", "images", running=1),
            seen_at=T0,
        )
        later = T0 + timedelta(seconds=30)
        second = worker_record(
            make_announcement("w-1", "thumbs", task_kinds=["crop", "scale"], sent_at=later),
            seen_at=later,
        )
        await store.save_worker(first)
        await store.save_worker(second)
        assert await store.list_workers() == [second]

    async def test_touching_an_unknown_worker_creates_nothing(self, store: Store) -> None:
        """A heartbeat of a worker the store does not keep returns False and changes nothing
        (the relay asks that worker to announce itself)."""
        kept = worker_record(make_announcement("w-1"), seen_at=T0)
        await store.save_worker(kept)
        stranger = make_heartbeat("w-2", sent_at=T0 + timedelta(seconds=5))
        assert await store.touch_worker(stranger, T0 + timedelta(seconds=5)) is False
        assert await store.list_workers() == [kept]
        await store.remove_worker("w-1")
        assert await store.touch_worker(make_heartbeat("w-1"), T0) is False
        assert await store.list_workers() == []

    async def test_touch_keeps_the_announcement(self, store: Store) -> None:
        """A heartbeat sets the last heartbeat and ``seen_at``, keeps the announcement, and
        the next one replaces it; a worker known only by a heartbeat is touched too."""
        announcement = make_announcement("w-1", "images", task_kinds=["resize", "crop"])
        record = worker_record(announcement, seen_at=T0)
        orphan = worker_record(make_heartbeat("w-0", "images"), seen_at=T0)
        await store.save_worker(record)
        await store.save_worker(orphan)
        expected = [orphan, record]
        for n in range(1, 4):
            seen = T0 + timedelta(seconds=5 * n, microseconds=n)
            beat = make_heartbeat("w-1", "images", running=n, succeeded=10 * n, sent_at=seen)
            assert await store.touch_worker(beat, seen) is True
            expected[1] = record.with_heartbeat(beat, seen)
            assert await store.list_workers() == expected
        (_, touched) = await store.list_workers()
        assert touched.announcement == announcement
        beat = make_heartbeat("w-0", "images", failed=1, sent_at=T0 + timedelta(seconds=7))
        assert await store.touch_worker(beat, T0 + timedelta(seconds=7)) is True
        expected[0] = orphan.with_heartbeat(beat, T0 + timedelta(seconds=7))
        assert await store.list_workers() == expected

    async def test_a_heartbeat_never_overwrites_a_newer_announcement(
        self, store: Store, open_store: OpenStore
    ) -> None:
        """Heartbeats from another store instance (another relay) race with a save of a new
        announcement: the new announcement is what stays, whatever the interleaving."""
        other = await open_store()
        old = worker_record(make_announcement("w-1", task_kinds=["old"]), seen_at=T0)
        await store.save_worker(old)
        for round_ in range(5):
            later = T0 + timedelta(seconds=round_ + 1)
            new = worker_record(
                make_announcement("w-1", task_kinds=[f"new_{round_}"], sent_at=later),
                seen_at=later,
            )
            beats = [make_heartbeat("w-1", succeeded=i, sent_at=later) for i in range(10)]
            touches = [other.touch_worker(beat, later) for beat in beats]
            await asyncio.gather(*touches[:5], store.save_worker(new), *touches[5:])
            (kept,) = await store.list_workers()
            assert kept.announcement == new.announcement
            assert kept.heartbeat is None or kept.heartbeat in beats
            assert kept.seen_at == later

    async def test_remove_worker(self, store: Store) -> None:
        """Removing a kept worker returns True and forgets only it; again, or an unknown
        name, returns False."""
        one, two = (worker_record(make_announcement(f"w-{n}"), seen_at=T0) for n in (1, 2))
        await store.save_worker(one)
        await store.save_worker(two)
        assert await store.remove_worker("w-1") is True
        assert await store.list_workers() == [two]
        assert await store.remove_worker("w-1") is False
        assert await store.remove_worker("nobody") is False
        assert await store.list_workers() == [two]

    async def test_prune_forgets_workers_seen_before_a_moment(self, store: Store) -> None:
        """``prune_workers`` forgets exactly those seen strictly before the moment (to the
        microsecond, whatever the moment's offset) and returns how many."""
        tick = timedelta(microseconds=1)
        moments = {"early": T0 - tick, "exact": T0, "late": T0 + tick}
        records = {
            name: worker_record(make_announcement(name), seen_at=seen)
            for name, seen in moments.items()
        }
        for record in records.values():
            await store.save_worker(record)
        assert await store.prune_workers(T0 - tick) == 0
        # T0 expressed at another offset: the same instant.
        assert await store.prune_workers(T0.astimezone(timezone(timedelta(hours=-7)))) == 1
        assert await store.list_workers() == [records["exact"], records["late"]]
        assert await store.prune_workers(T0) == 0
        assert await store.prune_workers(T0 + 2 * tick) == 2
        assert await store.list_workers() == []
        assert await store.prune_workers(T0 + timedelta(days=1)) == 0

    async def test_workers_are_listed_by_kind_then_name(self, store: Store) -> None:
        """The order is by worker kind, then name, comparing code points (upper case before
        lower case, ASCII before accented letters, which come before emoji): the order of
        Python's ``sorted``, not of a locale."""
        pairs = [
            (kind, name)
            for kind in ("images", "Images", "émaux", "zeta", "🌮", "a")
            for name in ("b", "B", "a-2", "a-10", "é", "z", "Z", "🌮")
        ]
        shuffled = sorted(pairs, key=lambda pair: uuid.uuid5(uuid.NAMESPACE_DNS, repr(pair)))
        for kind, name in shuffled:
            announcement = make_announcement(f"{name}@{kind}", kind)
            await store.save_worker(worker_record(announcement, seen_at=T0))
        listed = [(r.worker_kind, r.name) for r in await store.list_workers()]
        assert listed == sorted((kind, f"{name}@{kind}") for kind, name in pairs)

    async def test_a_large_announcement_roundtrips(self, store: Store) -> None:
        """An announcement of hundreds of task kinds with their JSON Schemas (about 1 MB of
        JSON) comes back equal, and stays equal when heartbeats arrive."""
        announcement = large_announcement()
        assert len(announcement.model_dump_json()) > 1_000_000
        record = worker_record(announcement, seen_at=T0)
        await store.save_worker(record)
        assert await store.list_workers() == [record]
        beat = make_heartbeat(record.name, record.worker_kind, running=3)
        assert await store.touch_worker(beat, T0 + timedelta(seconds=5))
        (kept,) = await store.list_workers()
        assert kept == record.with_heartbeat(beat, T0 + timedelta(seconds=5))
        assert kept.announcement == announcement

    async def test_any_json_schema_text_roundtrips(self, store: Store) -> None:
        """A contract's JSON Schema is any JSON: strings with NUL, control and line-separator
        characters, huge and tiny numbers, deep nesting all come back equal."""
        schema = {
            "description": 'nul \x00, tab \t, newline \n, bell \x07, \u2028 \u2029, \\ " ✓',
            "examples": [2**64 + 1, -(2**63), 1e-300, 1.7976931348623157e308, 0.1, -0.0],
            "enum": [None, True, False, "", [], {}],
            "nested": {"a": {"b": {"c": {"d": {"e": [[[["deep"]]]]}}}}},
            "\x00key\x1f": "keys are any text too",
        }
        contract = json_contract(schema, {"type": "string", "default": "\x00"})
        announcement = make_announcement("w-1", task_kinds=["odd"], contracts={"odd": contract})
        record = worker_record(announcement, seen_at=T0)
        await store.save_worker(record)
        assert await store.list_workers() == [record]

    async def test_unicode_names_roundtrip(self, store: Store) -> None:
        """Names, kinds and hosts with accents, other scripts and emoji (no control
        characters: the model refuses those) are kept, touched and removed by name, exactly:
        no normalization (a decomposed "é" names another worker) and no case folding."""
        name, kind = "wörker ✓ 🌮 画像-1 ‍👩‍💻", "ïmages 🖼️ кадры"
        announcement = make_announcement(
            name, kind, task_kinds=["résumé.génère", "🌮.eat"], host="hôte-ü.例え.jp"
        )
        record = worker_record(announcement, seen_at=T0)
        await store.save_worker(record)
        assert await store.list_workers() == [record]
        beat = make_heartbeat(name, kind, running=1)
        assert await store.touch_worker(beat, T0 + timedelta(seconds=1)) is True
        touched = record.with_heartbeat(beat, T0 + timedelta(seconds=1))
        assert await store.list_workers() == [touched]
        assert await store.touch_worker(make_heartbeat(name + " ", kind), T0) is False
        assert await store.remove_worker(name.upper()) is False
        composed, decomposed = "caf\u00e9", "cafe\u0301"
        for other in (composed, decomposed):
            await store.save_worker(worker_record(make_announcement(other, kind), seen_at=T0))
        assert [r.name for r in await store.list_workers()] == sorted([name, composed, decomposed])
        assert await store.remove_worker(decomposed) is True
        assert [r.name for r in await store.list_workers()] == sorted([name, composed])
        assert await store.remove_worker(name) is True
        assert [r.name for r in await store.list_workers()] == [composed]

    async def test_worker_timestamps_keep_microseconds_and_instants(self, store: Store) -> None:
        """``seen_at`` and the messages' times, with microseconds and non-UTC offsets, come
        back as the same instants (and aware)."""
        ist, pst = timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-8))
        seen = datetime(2031, 7, 4, 23, 59, 59, 999_999, tzinfo=ist)
        sent = datetime(2031, 7, 4, 10, 29, 59, 123_457, tzinfo=pst)
        announcement = make_announcement(
            "w-1", started_at=datetime(2031, 7, 4, 1, 2, 3, 1, tzinfo=pst), sent_at=sent
        )
        record = worker_record(announcement, seen_at=seen)
        await store.save_worker(record)
        (kept,) = await store.list_workers()
        assert kept == record
        assert kept.seen_at == seen
        assert kept.seen_at.utcoffset() is not None
        assert kept.announcement is not None
        assert (kept.announcement.started_at, kept.announcement.sent_at) == (
            announcement.started_at,
            sent,
        )
        beat_seen = seen + timedelta(microseconds=1)
        beat = make_heartbeat("w-1", sent_at=sent + timedelta(microseconds=1))
        assert await store.touch_worker(beat, beat_seen.astimezone(pst))
        (kept,) = await store.list_workers()
        assert kept.seen_at == beat_seen
        assert kept.heartbeat is not None
        assert kept.heartbeat.sent_at == sent + timedelta(microseconds=1)
        assert kept.live(beat_seen + timedelta(seconds=15))
        assert not kept.live(beat_seen + timedelta(seconds=15, microseconds=1))

    async def test_workers_of_namespaces_are_isolated(
        self, store: Store, open_store: OpenStore
    ) -> None:
        """A store in another namespace sees, touches, removes and prunes none of these
        workers."""
        other = await open_store(fresh_namespace("other"))
        record = worker_record(make_announcement("w-1"), seen_at=T0)
        await store.save_worker(record)
        assert await other.list_workers() == []
        assert await other.touch_worker(make_heartbeat("w-1"), T0) is False
        assert await other.remove_worker("w-1") is False
        assert await other.prune_workers(T0 + timedelta(days=1)) == 0
        theirs = worker_record(make_announcement("w-1", "theirs"), seen_at=T0)
        await other.save_worker(theirs)
        assert await store.list_workers() == [record]
        assert await other.list_workers() == [theirs]

    async def test_a_closed_store_keeps_no_workers(self, open_store: OpenStore) -> None:
        """Every worker method of a closed store raises StoreUnavailable (the relay backs off
        as for any store failure), and what was saved before stays."""
        keeper = await open_store()  # the memory store keeps rows while one store is open
        store = await open_store()
        record = worker_record(make_announcement("w-1"), seen_at=T0)
        await store.save_worker(record)
        await store.close()
        with pytest.raises(StoreUnavailable):
            await store.save_worker(record)
        with pytest.raises(StoreUnavailable):
            await store.touch_worker(make_heartbeat("w-1"), T0)
        with pytest.raises(StoreUnavailable):
            await store.remove_worker("w-1")
        with pytest.raises(StoreUnavailable):
            await store.list_workers()
        with pytest.raises(StoreUnavailable):
            await store.prune_workers(T0)
        assert await keeper.list_workers() == [record]

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

    # -- namespace maintenance --------------------------------------------------------------------

    def unconnected(self, store_url: str, namespace: str) -> Store:
        """A store of ``namespace`` that is not connected, for namespace maintenance."""
        return get_plugin_host().create_store(store_url, namespace=namespace)

    async def test_worker_kinds_name_tasks_and_dead_letter_origins(
        self, store: Store, store_url: str, namespace: str
    ) -> None:
        """``worker_kinds`` lists each task's worker kind and each ``worker:<kind>`` dead letter
        origin once, sorted, connected or not; the relay's queue names no kind."""
        await store.apply_batch(
            [
                event(uuid.uuid4(), Phase.ASSIGNED, worker_kind="beta"),
                event(uuid.uuid4(), Phase.COMPLETED, worker_kind="alpha"),
                event(uuid.uuid4(), Phase.RUNNING, worker_kind="beta"),
            ]
        )
        await store.record_dead_letters(
            [dead_letter(origin="worker:gamma ✓"), dead_letter(origin="relay")]
        )
        expected = ["alpha", "beta", "gamma ✓"]
        assert await store.worker_kinds() == expected
        assert await self.unconnected(store_url, namespace).worker_kinds() == expected

    async def test_worker_kinds_name_the_kinds_of_workers_kept(
        self, store: Store, store_url: str, namespace: str
    ) -> None:
        """A worker kind that only a worker record names (its worker announced itself, no
        task ran yet) is listed too: its queue exists and a namespace delete must find it."""
        await store.save_worker(worker_record(make_announcement("w-1", "delta"), seen_at=T0))
        assert await store.worker_kinds() == ["delta"]
        assert await self.unconnected(store_url, namespace).worker_kinds() == ["delta"]

    async def test_seen_at_never_moves_back(self, store: Store) -> None:
        """A heartbeat committed late (two relays) leaves the later ``seen_at``."""
        await store.save_worker(worker_record(make_announcement("w-1", "k"), seen_at=T0))
        later = T0 + timedelta(seconds=10)
        assert await store.touch_worker(make_heartbeat("w-1", "k"), later)
        assert await store.touch_worker(make_heartbeat("w-1", "k"), T0 + timedelta(seconds=5))
        (record,) = await store.list_workers()
        assert record.seen_at == later

    async def test_delete_namespace_removes_it_and_only_it(
        self, store: Store, open_store: OpenStore, store_url: str, namespace: str
    ) -> None:
        """Deleting a namespace removes its tasks, dead letters and workers and reports what
        it deleted; another namespace keeps its own; the deleted one starts empty when used
        again; deleting it again deletes nothing."""
        mine, theirs = uuid.uuid4(), uuid.uuid4()
        await store.apply_batch([event(mine, Phase.COMPLETED, worker_kind="mine")])
        await store.record_dead_letters([dead_letter(origin="worker:mine")])
        await store.save_worker(worker_record(make_announcement("w-1", "mine"), seen_at=T0))
        other_namespace = fresh_namespace("other")
        other = await open_store(other_namespace)
        await other.apply_batch([event(theirs, Phase.COMPLETED, worker_kind="theirs")])
        letter = dead_letter(origin="worker:theirs")
        await other.record_dead_letters([letter])
        their_worker = worker_record(make_announcement("w-1", "theirs"), seen_at=T0)
        await other.save_worker(their_worker)

        deleted = await self.unconnected(store_url, namespace).delete_namespace()
        assert deleted, "deleting a namespace that holds tasks reported nothing"
        assert all(isinstance(what, str) and what for what in deleted), deleted
        assert await self.unconnected(store_url, namespace).worker_kinds() == []
        assert await self.unconnected(store_url, namespace).delete_namespace() == []

        again = await open_store(namespace)
        assert await again.get(mine) is None
        assert (await again.list_dead_letters()).dead_letters == []
        assert await again.list_workers() == []
        assert await again.touch_worker(make_heartbeat("w-1", "mine"), T0) is False
        assert await other.get(theirs) is not None
        assert await other.get_dead_letter(letter.id) == letter
        assert await other.list_workers() == [their_worker]
        assert await self.unconnected(store_url, other_namespace).worker_kinds() == ["theirs"]

    async def test_deleting_a_namespace_that_holds_only_workers(
        self, store: Store, open_store: OpenStore, store_url: str, namespace: str
    ) -> None:
        """A namespace whose store holds workers and nothing else is deleted too: its workers
        are gone when it is used again."""
        await store.save_worker(worker_record(make_announcement("w-1"), seen_at=T0))
        deleted = await self.unconnected(store_url, namespace).delete_namespace()
        assert deleted, "deleting a namespace that holds workers reported nothing"
        assert await (await open_store(namespace)).list_workers() == []

    async def test_an_unknown_namespace_has_nothing_to_delete(self, store_url: str) -> None:
        """A namespace the store never held names no kind and deletes nothing; asking
        creates nothing (the delete after it still finds nothing)."""
        unknown = self.unconnected(store_url, fresh_namespace("unknown"))
        assert await unknown.worker_kinds() == []
        assert await unknown.delete_namespace() == []

    async def test_a_connected_store_does_not_delete_its_namespace(self, store: Store) -> None:
        """A connected store refuses: it may still write what would be deleted."""
        with pytest.raises(TacoqError, match="close it before deleting its namespace"):
            await store.delete_namespace()


def dead_letter(
    *,
    letter_id: UUID | None = None,
    origin: str = "worker:images",
    reason: str = "malformed assignment: missing header tacoq-id",
    headers: dict[str, str] | None = None,
    content_type: str = "application/json",
    body: bytes = b'{"w": 1}',
    body_size: int | None = None,
    task_id: UUID | None = None,
    first_seen: datetime = T0,
    last_seen: datetime | None = None,
    count: int = 1,
) -> DeadLetterRecord:
    """A realistic dead-letter record (fresh id unless given)."""
    return DeadLetterRecord(
        id=letter_id or uuid.uuid4(),
        origin=origin,
        reason=reason,
        headers={"tacoq-version": "1", "tacoq-event": "assign"} if headers is None else headers,
        content_type=content_type,
        body=body,
        body_size=len(body) if body_size is None else body_size,
        task_id=task_id,
        first_seen=first_seen,
        last_seen=first_seen if last_seen is None else last_seen,
        count=count,
    )
