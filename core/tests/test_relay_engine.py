"""The relay engine: updates in, store rows out; garbage set aside, nothing lost while the store
is down, duplicates counted, expired rows cleaned up.

The broker and stores are the real built-in ones. ``FlakyStore`` is a memory store that refuses
``apply_batch`` while told to — a fault injector, not a mock: every batch it accepts is folded
by the real store.
"""

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from tacoq.builtin.memory_store import MemoryStore
from tacoq.contracts.broker import RELAY_QUEUE, Broker
from tacoq.contracts.store import BatchResult, DeadLetterRecord, Store
from tacoq.errors import StoreUnavailable
from tacoq.model.task import ErrorInfo, Payload, Phase, Task, TaskEvent, TaskStatus, utcnow
from tacoq.model.wire import UPDATES_CONTENT_TYPE, Envelope, encode_assignment, encode_updates
from tacoq.plugins import get_plugin_host
from tacoq.publishing.publisher import Publisher
from tacoq.relay.engine import RelayEngine
from tacoq.testing import FakeClock, all_dead_letters, eventually, fresh_namespace
from tacoq.worker import WorkerApp

WAIT = 15.0

APP = WorkerApp("relaytest")


@APP.task
async def double(req: int) -> int:
    return req * 2


class FlakyStore(MemoryStore):
    """A memory store whose ``apply_batch`` raises ``StoreUnavailable`` while ``down``, or for
    its first ``fail_first`` calls."""

    def __init__(self, url: str, *, namespace: str, fail_first: int = 0, down: bool = False):
        super().__init__(url, namespace=namespace)
        self.fail_first = fail_first
        self.down = down
        self.calls = 0
        self.refused = 0

    async def apply_batch(self, events: Sequence[TaskEvent]) -> BatchResult:
        self.calls += 1
        if self.down or self.refused < self.fail_first:
            self.refused += 1
            raise StoreUnavailable("injected outage")
        return await super().apply_batch(events)


@pytest.fixture
def ns() -> str:
    return fresh_namespace("relay")


@pytest.fixture
def url(ns: str) -> str:
    return f"memory://{ns}"


@contextlib.asynccontextmanager
async def relay_running(
    url: str, ns: str, store: Store | str | None = None, **options: Any
) -> AsyncIterator[RelayEngine]:
    relay = RelayEngine(url, store or url, namespace=ns, **{"cleanup": False, **options})
    stop = asyncio.Event()
    job = asyncio.create_task(relay.run(stop))
    await asyncio.wait_for(relay.ready.wait(), 5)
    try:
        yield relay
    finally:
        stop.set()
        await asyncio.wait_for(job, 10)


@contextlib.asynccontextmanager
async def worker_running(url: str, ns: str) -> AsyncIterator[None]:
    stop = asyncio.Event()
    job = asyncio.create_task(APP.serve(stop, broker_url=url, namespace=ns))
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(job, 10)


@contextlib.asynccontextmanager
async def raw_broker(url: str, ns: str) -> AsyncIterator[Broker]:
    broker = get_plugin_host().create_broker(url, namespace=ns)
    await broker.connect()
    try:
        yield broker
    finally:
        await broker.close()


@contextlib.asynccontextmanager
async def reader(url: str, ns: str) -> AsyncIterator[MemoryStore]:
    """A second memory store on the same URL and namespace: it sees the relay's rows."""
    store = MemoryStore(url, namespace=ns)
    await store.connect()
    try:
        yield store
    finally:
        await store.close()


async def completed(store: Store, task_id: uuid.UUID, timeout: float = WAIT) -> Task:
    row = await store.wait(task_id, timeout)
    assert row is not None
    assert row.is_completed, f"task {task_id} did not complete: {row}"
    return row


def relay_depth(broker: Broker) -> int:
    stats: dict[str, int] = broker.stats()  # type: ignore[attr-defined]
    return stats.get(RELAY_QUEUE, 0)


def completion(task: Task, output: bytes, *, worker: str = "w1") -> TaskEvent:
    """The COMPLETED event a worker would send for ``task``'s first attempt."""
    now = utcnow()
    return TaskEvent(
        id=task.id,
        attempt=1,
        phase=Phase.COMPLETED,
        task_kind=task.task_kind,
        worker_kind=task.worker_kind,
        ttl=task.ttl,
        priority=task.priority,
        executed_by=worker,
        started_at=now,
        completed_at=now,
        output=Payload("application/json", output),
    )


# -- garbage --------------------------------------------------------------------------------------


async def test_undecodable_messages_are_dead_lettered_while_valid_tasks_complete(
    url: str, ns: str
) -> None:
    garbage = [
        Envelope({}, "application/octet-stream", b"\x00\xff"),
        Envelope({"tacoq-event": "updates", "junk": "yes"}, "application/json", b"not json"),
        Envelope(
            {"tacoq-version": "1", "tacoq-event": "updates"},
            "application/vnd.tacoq.updates+json",
            b'{"events": [{"id": "nope"}]}',
        ),
        Envelope({"tacoq-version": "99", "tacoq-event": "updates"}, "application/json", b"[]"),
    ]
    async with (
        relay_running(url, ns) as relay,
        worker_running(url, ns),
        Publisher(url, namespace=ns) as pub,
        raw_broker(url, ns) as broker,
    ):
        before = [await pub.publish(double, i) for i in range(3)]
        for envelope in garbage:
            await broker.publish(envelope)
        after = [await pub.publish(double, i) for i in range(3, 6)]
        rows = [await completed(relay.store, t.id) for t in before + after]
        letters = await eventually(
            lambda: dead_letters(relay),
            until=lambda found: len(found) == len(garbage),
            timeout=5,
            message="every garbage message was dead-lettered",
        )

    assert [r.result(int) for r in rows] == [i * 2 for i in range(6)]
    assert relay.stats.dead_lettered == len(garbage)
    assert relay.stats.dead_letters_recorded == len(garbage)
    assert {letter.origin for letter in letters} == {RELAY_QUEUE}
    assert all(letter.reason.startswith("relay cannot decode: ") for letter in letters)
    assert {letter.body for letter in letters} == {e.body for e in garbage}
    assert any("version" in letter.reason for letter in letters)


async def test_a_garbage_assignment_is_set_aside_by_worker_and_relay(url: str, ns: str) -> None:
    junk = Envelope(
        {"tacoq-event": "assign", "tacoq-worker-kind": APP.worker_kind},
        "application/json",
        b"{}",
    )
    async with (
        relay_running(url, ns) as relay,
        worker_running(url, ns),
        Publisher(url, namespace=ns) as pub,
        raw_broker(url, ns) as broker,
    ):
        await broker.publish(junk)
        task = await pub.publish(double, 21)
        row = await completed(relay.store, task.id)
        letters = await eventually(
            lambda: dead_letters(relay),
            until=lambda found: len(found) == 2,
            timeout=5,
            message="the junk assignment was dead-lettered twice",
        )

    assert row.result(int) == 42
    assert sorted(letter.origin for letter in letters) == sorted(
        [RELAY_QUEUE, f"worker:{APP.worker_kind}"]
    )
    assert any(letter.reason.startswith("malformed assignment") for letter in letters)


async def dead_letters(relay: RelayEngine) -> list[DeadLetterRecord]:
    """The dead letters the relay recorded in its store."""
    return await all_dead_letters(relay.store)


def updates_envelope(items: list[dict[str, Any]]) -> Envelope:
    """An updates message with exactly these JSON items (written by the standard library)."""
    return Envelope(
        {"tacoq-version": "1", "tacoq-event": "updates"},
        UPDATES_CONTENT_TYPE,
        json.dumps(items).encode(),
    )


def update_item(**changes: Any) -> dict[str, Any]:
    """One COMPLETED update event as JSON, with ``changes`` applied."""
    item: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "attempt": 1,
        "phase": "completed",
        "task_kind": "double",
        "worker_kind": APP.worker_kind,
        "ttl": 60,
        "executed_by": "w",
        "started_at": "2026-01-01T00:00:00.000000Z",
        "completed_at": "2026-01-01T00:00:01.000000Z",
        "is_error": False,
        "output": {"content_type": "application/json", "encoding": "text", "data": "1"},
        "error": None,
    }
    item.update(changes)
    return item


POISON_UPDATES = {
    "started_at before year 1 in UTC": update_item(started_at="0001-01-01T00:00:00+01:00"),
    "completed_at after year 9999 in UTC": update_item(completed_at="9999-12-31T23:59:59-01:00"),
    "a text payload with a lone surrogate": update_item(
        output={"content_type": "text/plain", "encoding": "text", "data": "\ud800"}
    ),
}


@pytest.mark.parametrize("poison", list(POISON_UPDATES))
async def test_a_poison_update_is_dead_lettered_and_the_relay_goes_on(
    url: str, ns: str, poison: str
) -> None:
    async with (
        relay_running(url, ns) as relay,
        worker_running(url, ns),
        Publisher(url, namespace=ns) as pub,
        raw_broker(url, ns) as broker,
    ):
        await broker.publish(updates_envelope([POISON_UPDATES[poison]]))
        for _ in range(2):  # a relay that restarts on it meets it again: it must not stop either
            task = await pub.publish(double, 4)
            row = await completed(relay.store, task.id)
            assert row.result(int) == 8
        letters = await eventually(
            lambda: dead_letters(relay),
            until=lambda found: len(found) == 1,
            timeout=5,
            message="the poison update was dead-lettered",
        )

    assert letters[0].reason.startswith("relay cannot decode: ")
    assert relay.stats.dead_lettered == 1


async def test_an_assignment_whose_created_at_cannot_become_utc_is_dead_lettered_at_once(
    url: str, ns: str
) -> None:
    poison = encode_assignment(
        TaskEvent(
            id=uuid.uuid4(),
            attempt=1,
            phase=Phase.ASSIGNED,
            task_kind="double",
            worker_kind=APP.worker_kind,
            created_at=utcnow(),
            input=Payload("application/json", b"21"),
        )
    )
    poison = replace(
        poison, headers={**poison.headers, "tacoq-created-at": "0001-01-01T00:00:00+01:00"}
    )
    poison_id = uuid.UUID(poison.headers["tacoq-id"])
    async with (
        relay_running(url, ns) as relay,
        worker_running(url, ns),
        Publisher(url, namespace=ns) as pub,
        raw_broker(url, ns) as broker,
    ):
        await broker.publish(poison)
        task = await pub.publish(double, 5)
        assert (await completed(relay.store, task.id)).result(int) == 10
        letters = await eventually(
            lambda: dead_letters(relay),
            until=lambda found: len(found) == 2,
            timeout=5,
            message="the worker and the relay each dead-lettered their copy",
        )
        row = await completed(relay.store, poison_id)
        await asyncio.sleep(0.2)
        assert len(await dead_letters(relay)) == 2  # dead-lettered once each, never requeued

    assert sorted(letter.origin for letter in letters) == sorted(
        [RELAY_QUEUE, f"worker:{APP.worker_kind}"]
    )
    assert all("timestamp" in letter.reason for letter in letters)
    assert row.error is not None
    assert row.error.type == "DeadLettered"
    assert "timestamp" in row.error.message


# -- the store goes away --------------------------------------------------------------------------


async def test_a_store_outage_loses_nothing_and_is_counted(url: str, ns: str) -> None:
    store = FlakyStore(url, namespace=ns, fail_first=3)
    async with (
        reader(url, ns) as rows_view,
        relay_running(url, ns, store, max_backoff=0.1) as relay,
        worker_running(url, ns),
        Publisher(url, namespace=ns) as pub,
    ):
        tasks = [await pub.publish(double, i) for i in range(20)]
        rows = [await completed(rows_view, t.id) for t in tasks]
        stats = relay.stats

    assert [r.result(int) for r in rows] == [i * 2 for i in range(20)]
    assert stats.store_errors == 3
    assert store.refused == 3
    assert stats.duplicate_completions == 0


async def test_nothing_is_acked_before_it_is_committed(url: str, ns: str) -> None:
    """A relay whose store is down holds its deliveries unacked; after it stops they are all
    back on the queue, and a relay with a working store commits every one of them."""
    down = FlakyStore(url, namespace=ns, down=True)
    async with raw_broker(url, ns) as broker, Publisher(url, namespace=ns) as pub:
        tasks = [await pub.publish(double, i) for i in range(5)]
        assert relay_depth(broker) == 5
        async with relay_running(url, ns, down, max_backoff=0.05) as failing:
            await eventually(
                lambda: _value(failing.stats.store_errors),
                until=lambda n: n >= 3,
                timeout=5,
                message="the relay retried the unavailable store",
            )
            assert failing.stats.batches == 0
        # Stopped while the store was down: every message is back, none acked.
        assert relay_depth(broker) == 5

        async with relay_running(url, ns) as healthy:
            rows = await eventually(
                lambda: _rows(healthy.store, [t.id for t in tasks]),
                until=lambda found: all(r is not None for r in found),
                timeout=WAIT,
                message="every held assignment reached the healthy store",
            )
            assert relay_depth(broker) == 0
            # A worker started now completes them: nothing was lost on the way.
            async with worker_running(url, ns):
                done = [await completed(healthy.store, t.id) for t in tasks]

    assert all(r is not None and r.status is TaskStatus.PENDING for r in rows)
    assert [r.result(int) for r in done] == [i * 2 for i in range(5)]


async def _rows(store: Store, ids: list[uuid.UUID]) -> list[Task | None]:
    return [await store.get(task_id) for task_id in ids]


async def _value(value: Any) -> Any:
    return value


# -- duplicates ---------------------------------------------------------------------------------


async def test_duplicate_updates_are_counted_and_never_change_the_row(url: str, ns: str) -> None:
    async with (
        relay_running(url, ns) as relay,
        Publisher(url, namespace=ns) as pub,
        raw_broker(url, ns) as broker,
    ):
        task = await pub.publish(double, 5)
        event = completion(task, b"10")
        message = encode_updates([event])
        await broker.publish(message)
        first = await completed(relay.store, task.id)
        for _ in range(3):
            await broker.publish(message)
        conflicting = replace(event, output=Payload("application/json", b"999"), executed_by="w2")
        await broker.publish(encode_updates([conflicting]))
        await eventually(
            lambda: _value(relay.stats),
            until=lambda s: s.duplicate_completions == 3 and s.conflicting_completions == 1,
            timeout=5,
            message="the duplicates and the conflict were counted",
        )
        last = await relay.store.get(task.id)

    assert first.result(int) == 10
    assert last == first
    assert relay.stats.dead_lettered == 0


async def test_a_redelivered_failure_keeps_its_error(url: str, ns: str) -> None:
    async with (
        relay_running(url, ns) as relay,
        Publisher(url, namespace=ns) as pub,
        raw_broker(url, ns) as broker,
    ):
        task = await pub.publish(double, 5)
        failed = replace(
            completion(task, b""),
            output=None,
            is_error=True,
            error=ErrorInfo("ValueError", "nope", "Traceback...\nValueError: nope\n"),
        )
        for _ in range(2):
            await broker.publish(encode_updates([failed]))
        row = await completed(relay.store, task.id)
        await eventually(
            lambda: _value(relay.stats.duplicate_completions),
            until=lambda n: n == 1,
            timeout=5,
            message="the redelivered failure was counted",
        )

    assert row.is_error
    assert row.error == ErrorInfo("ValueError", "nope", "Traceback...\nValueError: nope\n")


# -- cleanup ------------------------------------------------------------------------------------


@pytest.mark.parametrize("store_kind", ["memory", "sqlite"])
async def test_cleanup_deletes_only_expired_completed_rows(
    url: str, ns: str, tmp_path: Path, store_kind: str
) -> None:
    store_url = url if store_kind == "memory" else f"sqlite:///{tmp_path / 'tasks.db'}"
    clock = FakeClock(utcnow())
    async with relay_running(
        url, ns, store_url, cleanup=True, cleanup_interval=3600, cleanup_batch=2, clock=clock
    ) as relay:
        assert relay.cleanup is not None
        async with Publisher(url, namespace=ns) as pub:
            pending = await pub.publish("never-runs", 1, worker_kind="nobody", ttl=0)
            short = [await pub.publish(double, i, ttl=60) for i in range(5)]
            long = await pub.publish(double, 100, ttl=3600)
            async with worker_running(url, ns):
                for task in [*short, long]:
                    await completed(relay.store, task.id)
            await eventually(
                lambda: relay.store.get(pending.id),
                until=lambda r: r is not None,
                timeout=5,
                message="the pending task is in the store",
            )

        assert await relay.cleanup.run_once() == 0  # nothing has expired yet

        clock.advance(120)
        assert await relay.cleanup.run_once() == 5  # in batches of 2: 2 + 2 + 1
        for task in short:
            assert await relay.store.get(task.id) is None
        kept = await relay.store.get(long.id)
        assert kept is not None
        assert kept.result(int) == 200
        assert await relay.store.get(pending.id) is not None

        clock.advance(7200)
        assert await relay.cleanup.run_once() == 1
        assert await relay.store.get(long.id) is None
        still = await relay.store.get(pending.id)  # never completed: never deleted
        assert still is not None
        assert still.status is TaskStatus.PENDING
        assert relay.cleanup.deleted == 6


class RefusingStore(MemoryStore):
    """A memory store that refuses (with a non-outage error) any batch holding one task id."""

    def __init__(self, url: str, *, namespace: str) -> None:
        super().__init__(url, namespace=namespace)
        self.poison: uuid.UUID | None = None

    async def apply_batch(self, events: Sequence[TaskEvent]) -> BatchResult:
        if any(e.id == self.poison for e in events):
            raise ValueError("row violates a constraint")
        return await super().apply_batch(events)


async def test_a_batch_the_store_refuses_sets_aside_only_the_culprit(url: str, ns: str) -> None:
    """A store error that is not an outage never loops: the relay applies the batch message by
    message, dead-letters the one the store refuses, and commits the rest."""
    store = RefusingStore(url, namespace=ns)
    async with raw_broker(url, ns) as broker, Publisher(url, namespace=ns) as pub:
        tasks = [await pub.publish(double, i) for i in range(6)]
        store.poison = tasks[2].id
        async with reader(url, ns) as rows_view, relay_running(url, ns, store) as relay:
            rows = await eventually(
                lambda: _rows(rows_view, [t.id for t in tasks]),
                until=lambda found: sum(r is not None for r in found) == 5,
                timeout=WAIT,
                message="every message but the refused one was committed",
            )
            await eventually(
                lambda: _value(relay_depth(broker)),
                until=lambda depth: depth == 0,
                timeout=WAIT,
                message="the relay queue drained",
            )
            stats = relay.stats
            dead = await eventually(
                lambda: dead_letters(relay),
                until=lambda found: len(found) == 1,
                timeout=WAIT,
                message="the refused message was recorded as a dead letter",
            )

    assert rows[2] is None
    assert stats.dead_lettered == 1
    assert [d.reason for d in dead if "store refused" in d.reason] == [
        "store refused: ValueError: row violates a constraint"
    ]


# -- assignment linger ----------------------------------------------------------------------------


async def test_a_lone_assignment_waits_for_its_completion_to_share_one_batch(
    url: str, ns: str
) -> None:
    """A batch of only assignment copies lingers; the update that arrives ends the wait at
    once (well before the 30 s linger), and both are stored in one transaction."""
    async with (
        relay_running(url, ns, assignment_linger=30.0) as relay,
        raw_broker(url, ns) as broker,
        reader(url, ns) as store,
        Publisher(url, namespace=ns) as pub,
    ):
        task = await pub.publish(double, 4)
        await eventually(lambda: _value(relay_depth(broker) == 0), timeout=5)  # taken
        assert await store.get(task.id) is None
        assert relay.stats.batches == 0
        await broker.publish(encode_updates([completion(task, b"8")]))
        row = await completed(store, task.id, timeout=5)
    assert row.result(int) == 8
    assert relay.stats.batches == 1
    assert relay.stats.deliveries == 2


async def test_a_lingering_assignment_is_stored_when_the_linger_ends(url: str, ns: str) -> None:
    async with (
        relay_running(url, ns, assignment_linger=0.05) as relay,
        reader(url, ns) as store,
        Publisher(url, namespace=ns) as pub,
    ):
        task = await pub.publish(double, 4)
        await eventually(lambda: _value(relay.stats.batches == 1), timeout=5)
        row = await store.get(task.id)
    assert row is not None
    assert row.status is TaskStatus.PENDING


async def test_without_linger_an_assignment_is_stored_at_once(url: str, ns: str) -> None:
    async with (
        relay_running(url, ns, assignment_linger=0) as relay,
        raw_broker(url, ns) as broker,
        reader(url, ns) as store,
        Publisher(url, namespace=ns) as pub,
    ):
        task = await pub.publish(double, 4)
        await eventually(lambda: _value(relay.stats.batches == 1), timeout=5)
        assert (row := await store.get(task.id)) is not None
        assert row.status is TaskStatus.PENDING
        await broker.publish(encode_updates([completion(task, b"8")]))
        await completed(store, task.id)
    assert relay.stats.batches == 2


def test_a_negative_linger_is_refused() -> None:
    with pytest.raises(ValueError, match="assignment_linger"):
        RelayEngine("memory://x", "memory://x", namespace="x", assignment_linger=-1)
