"""Batched apply: arrival orders converge to the core fold, relays race safely, a batch is a
bounded number of round trips, and cleanup deletes each expired row once."""

from __future__ import annotations

import asyncio
import itertools
import random
import tempfile
import uuid
from collections import defaultdict
from dataclasses import replace
from datetime import timedelta
from uuid import UUID

import psycopg
import pytest
from psycopg import pq

from tacoq.model.merge import fold
from tacoq.model.task import ErrorInfo, Phase, TaskEvent, TaskStatus
from tacoq.testing.clock import FakeClock
from tacoq.testing.strategies import event
from tacoq_postgres.store import PostgresStore
from tacoq_postgres.testing import MakeStore


def _history(task_id: UUID) -> list[TaskEvent]:
    """A task that failed attempt 1 while running and completed on attempt 2."""
    boom = ErrorInfo("ValueError", "boom")
    return [
        event(task_id, Phase.ASSIGNED),
        event(task_id, Phase.RUNNING, worker="w1"),
        event(task_id, Phase.ASSIGNED, attempt=2, error=boom),
        event(task_id, Phase.RUNNING, attempt=2, worker="w2"),
        event(task_id, Phase.COMPLETED, attempt=2, worker="w2"),
    ]


ORDERS = {
    "completed-running-assigned": [4, 3, 2, 1, 0],
    "redelivered-running-after-completed": [0, 1, 2, 3, 4, 3, 1],
    "retry-before-first-attempt": [2, 4, 0, 1, 3],
    "in-order-with-duplicates": [0, 0, 1, 2, 2, 3, 4, 4],
}


@pytest.mark.parametrize("one_batch", [True, False], ids=["one-batch", "event-per-batch"])
@pytest.mark.parametrize("order", list(ORDERS), ids=list(ORDERS))
async def test_arrival_orders_converge_to_the_core_fold(
    pg: PostgresStore, order: str, one_batch: bool
) -> None:
    """Whatever the order and duplication, the row equals ``tacoq.model.merge.fold``'s."""
    task_id = uuid.uuid4()
    history = _history(task_id)
    arrived = [history[i] for i in ORDERS[order]]
    batches = [arrived] if one_batch else [[e] for e in arrived]
    for batch in batches:
        await pg.apply_batch(batch)
    expected = fold(history)[0]
    assert expected is not None
    assert expected.status is TaskStatus.COMPLETED
    assert expected.executed_by == "w2"
    assert await pg.get(task_id) == expected
    assert await pg.get(task_id) == fold(arrived)[0]


async def test_two_relays_applying_overlapping_batches_concurrently(
    make_store: MakeStore,
) -> None:
    """Two stores ("relays") racing over shuffled, duplicated, overlapping batches end with the
    rows of ``fold``; no deadlock escapes; completions are counted exactly."""
    one = await make_store()
    two = await make_store(one.namespace)
    rng = random.Random(7)
    ids = [uuid.uuid4() for _ in range(300)]
    events = [e for task_id in ids for e in _history(task_id)]
    copies = events + rng.sample(events, len(events) // 2)  # redeliveries
    rng.shuffle(copies)
    batches = [copies[i : i + 97] for i in range(0, len(copies), 97)]

    async def relay(store: PostgresStore, mine: list[list[TaskEvent]]) -> None:
        for batch in mine:
            await store.apply_batch(batch)

    # Each relay gets every other batch, and reversed copies of some overlap the other's.
    await asyncio.gather(
        relay(one, batches[0::2] + batches[1::4]), relay(two, batches[1::2] + batches[0::4])
    )
    by_id: dict[UUID, list[TaskEvent]] = defaultdict(list)
    for e in events:
        by_id[e.id].append(e)
    for task_id, own in by_id.items():
        assert await one.get(task_id) == fold(own)[0]
    completions = len([e for b in batches[0::2] + batches[1::4] + batches[1::2] + batches[0::4]
                       for e in b if e.phase is Phase.COMPLETED])  # fmt: skip
    counted = one.stats.duplicate_completions + two.stats.duplicate_completions
    assert counted == completions - len(ids)
    assert one.stats.conflicting_completions + two.stats.conflicting_completions == 0


def _round_trips(trace: str) -> int:
    """How many times the client sent and then read the server's answer: each switch from
    frontend (F) to backend (B) messages in the protocol trace is one round trip."""
    directions = [line[:1] for line in trace.splitlines() if line[:1] in ("F", "B")]
    return sum(1 for pair in itertools.pairwise(directions) if pair == ("F", "B"))


@pytest.mark.parametrize("size", [1, 1000])
async def test_a_batch_is_two_round_trips_whatever_its_size(
    make_store: MakeStore, size: int
) -> None:
    """libpq's own protocol trace of the store's (only) connection: two waits for the server
    per batch (BEGIN+lock+SELECT; upsert+NOTIFY+COMMIT), for 1 event or 1000."""
    store = await make_store(connect=False)
    store.pool_min_size = store.pool_max_size = 1
    await store.connect()
    ids = [uuid.uuid4() for _ in range(size)]
    await store.apply_batch([event(i, Phase.ASSIGNED) for i in ids])  # rows exist: an update
    assert store._pool is not None
    with tempfile.TemporaryFile("w+") as trace:
        async with store._pool.connection() as conn:
            conn.pgconn.trace(trace.fileno())
            conn.pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS | pq.Trace.REGRESS_MODE)
        result = await store.apply_batch([event(i, Phase.COMPLETED) for i in ids])
        async with store._pool.connection() as conn:
            conn.pgconn.untrace()
        trace.seek(0)
        text = trace.read()
    assert len(result.completed) == size
    assert "INSERT INTO" in text
    assert "pg_notify" in text
    assert _round_trips(text) == 2, text[:3000]


async def test_cleanup_by_two_stores_deletes_each_expired_row_once(
    make_store: MakeStore,
) -> None:
    """Two stores cleaning concurrently in small batches delete every expired row exactly once."""
    one = await make_store()
    two = await make_store(one.namespace)
    clock = FakeClock()
    done_at = clock()
    expired = [
        replace(event(uuid.uuid4(), Phase.COMPLETED, ttl=60), completed_at=done_at)
        for _ in range(400)
    ]
    kept = [replace(event(uuid.uuid4(), Phase.COMPLETED, ttl=10**6), completed_at=done_at)]
    await one.apply_batch(expired + kept + [event(uuid.uuid4(), Phase.RUNNING)])
    now = done_at + timedelta(seconds=61)

    async def drain(store: PostgresStore) -> int:
        total = 0
        while deleted := await store.cleanup(now, limit=25):
            total += deleted
        return total

    counts = await asyncio.gather(drain(one), drain(two), drain(one), drain(two))
    assert sum(counts) == len(expired)
    assert one.stats.deleted + two.stats.deleted == len(expired)
    assert await one.get(kept[0].id) is not None
    assert (await one.list(limit=10)).tasks != []


async def test_insert_if_absent_racing_a_batch_never_loses_the_assignment(
    make_store: MakeStore,
) -> None:
    """A REST insert racing a relay batch for the same ids: an insert that reports "new" is
    never overwritten by the batch (the two writers share the id's lock), so its row ends as
    ``fold([assigned, running])``; an insert that lost the race leaves the batch's row."""
    one = await make_store()
    two = await make_store(one.namespace)
    ids = [uuid.uuid4() for _ in range(200)]
    assigned = [event(i, Phase.ASSIGNED) for i in ids]
    running = [event(i, Phase.RUNNING) for i in ids]
    inserted, _ = await asyncio.gather(
        asyncio.gather(*(two.insert_if_absent(e) for e in assigned)), one.apply_batch(running)
    )
    for a, r, new in zip(assigned, running, inserted, strict=True):
        assert await one.get(a.id) == (fold([a, r]) if new else fold([r]))[0]


async def test_connection_errors_are_store_unavailable_without_credentials() -> None:
    """An unreachable server raises StoreUnavailable, naming the host but not the password."""
    from tacoq.errors import StoreUnavailable

    url = "postgresql://postgres:hunter2@127.0.0.1:1/test?connect_timeout=2"
    store = PostgresStore(url, namespace="x")
    with pytest.raises(StoreUnavailable) as caught:
        await store.connect()
    assert "hunter2" not in str(caught.value)
    assert "127.0.0.1" in str(caught.value)
    health = await store.health()
    assert not health.ok
    assert "hunter2" not in health.detail
    await store.close()


async def test_a_refused_batch_is_not_an_outage(pg: PostgresStore) -> None:
    """A value Postgres refuses (NUL in a kind) raises the database's error, not
    StoreUnavailable, so the relay isolates the culprit; nothing of the batch is committed and
    the store keeps working."""
    good = event(uuid.uuid4(), Phase.ASSIGNED)
    bad = replace(event(uuid.uuid4(), Phase.ASSIGNED), task_kind="a\x00b")
    with pytest.raises(psycopg.DataError):
        await pg.apply_batch([good, bad])
    assert await pg.get(good.id) is None
    assert (await pg.apply_batch([good])).counts.applied == 1
    assert pg.stats.batches == 1


async def test_prepared_batch_statements_are_always_planned_for_their_parameters(
    make_store: MakeStore,
) -> None:
    """The store's connections never fall back to a generic plan: one made while a namespace's
    table was small kept reading the whole table for every batch (a batch of 45 updates cost
    Postgres 268 µs of CPU per update over 20,000 rows, against 72 µs with custom plans)."""
    pg = await make_store()
    for _ in range(12):  # well past the fifth use, when Postgres may switch to a generic plan
        task_id = uuid.uuid4()
        await pg.apply_batch([event(task_id, Phase.ASSIGNED)])
        await pg.apply_batch([event(task_id, Phase.COMPLETED, worker="w1")])
    async with pg._connection() as conn:
        cur = await conn.execute(
            b"SELECT statement, generic_plans, custom_plans FROM pg_prepared_statements"
            b" WHERE statement NOT IN ('BEGIN', 'COMMIT')"
        )
        prepared = await cur.fetchall()
    assert prepared, "the batch statements were not prepared (nothing checked)"
    assert all(generic == 0 and custom > 0 for _, generic, custom in prepared), prepared
