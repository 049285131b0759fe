"""Outages without restarting the shared server: this test's backends are terminated with
``pg_terminate_backend`` (found by the test's own ``application_name``)."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import replace

from tacoq.errors import StoreUnavailable
from tacoq.model.merge import fold
from tacoq.model.task import Phase, TaskEvent
from tacoq.testing import eventually
from tacoq.testing.strategies import event
from tacoq.testing.workers import T0, make_announcement, make_heartbeat, worker_record
from tacoq_postgres.store import PostgresStore
from tacoq_postgres.testing import MakeStore, terminate_backends


async def _apply_like_the_relay(store: PostgresStore, batch: list[TaskEvent]) -> int:
    """Apply ``batch``, retrying on StoreUnavailable as the relay does; returns the failures."""
    failures = 0
    while True:
        try:
            await store.apply_batch(batch)
            return failures
        except StoreUnavailable:
            failures += 1
            assert failures < 50, "the store did not recover"
            await asyncio.sleep(0.05)


async def test_killed_connections_lose_nothing(
    make_store: MakeStore, pg_url: str, app_name: str
) -> None:
    """Every backend of both stores (pool and LISTEN connections) is terminated: the next batch
    fails with StoreUnavailable or succeeds, is applied again until it succeeds, the batch after
    it works at once, every row equals ``fold``, and a waiter still gets its completion."""
    writer = await make_store()
    reader = await make_store(writer.namespace)
    writer.pool_max_size = 4
    ids = [uuid.uuid4() for _ in range(50)]
    assigned = [event(i, Phase.ASSIGNED) for i in ids]
    await writer.apply_batch(assigned)
    waiter = asyncio.create_task(reader.wait(ids[0], timeout=30))
    await eventually(lambda: _listening(reader), until=bool, timeout=10, message="listener ready")
    assert await terminate_backends(pg_url, app_name) >= 3  # pools of both stores + the listener
    running = [event(i, Phase.RUNNING) for i in ids]
    failures = await _apply_like_the_relay(writer, running)
    completed = [event(i, Phase.COMPLETED) for i in ids]
    assert await _apply_like_the_relay(writer, completed) == 0
    for a, r, c in zip(assigned, running, completed, strict=True):
        assert await writer.get(a.id) == fold([a, r, c])[0]
    row = await asyncio.wait_for(waiter, 30)
    assert row is not None
    assert row.is_completed
    assert (await writer.health()).ok
    assert failures <= 1  # after one failure the pool replaced its dead connections


async def _listening(store: PostgresStore) -> bool:
    return store.listener is not None and store.listener.backend_pid is not None


async def test_health_reports_a_failure_without_credentials(pg: PostgresStore) -> None:
    """A closed store is unhealthy; the detail names the store, never a password."""
    assert (await pg.health()).ok
    await pg.close()
    health = await pg.health()
    assert not health.ok
    assert pg.schema in health.detail


async def test_close_releases_waiters_while_the_listener_is_down(make_store: MakeStore) -> None:
    """A waiter still waiting for the listener to (re)connect returns at once on close."""
    store = await make_store()
    with_dead_listener = await make_store(store.namespace)
    # Only the listener (started by the first wait) uses this unreachable address.
    with_dead_listener.settings = replace(
        with_dead_listener.settings, conninfo="postgresql://postgres@127.0.0.1:1/test"
    )
    waiter = asyncio.create_task(with_dead_listener.wait(uuid.uuid4(), timeout=60))
    await asyncio.sleep(0.2)
    assert not waiter.done()
    await with_dead_listener.close()
    assert await asyncio.wait_for(waiter, 5) is None


async def test_worker_methods_are_unavailable_during_an_outage_then_recover(
    make_store: MakeStore, pg_url: str, app_name: str
) -> None:
    """With its backends terminated, a worker method fails with StoreUnavailable (never a raw
    psycopg error) or succeeds; retried as the relay does, it works and nothing is lost."""
    store = await make_store()
    record = worker_record(make_announcement("w-1"), seen_at=T0)
    await store.save_worker(record)
    beat = make_heartbeat("w-1", running=1)
    calls = (
        lambda: store.list_workers(),
        lambda: store.touch_worker(beat, T0),
        lambda: store.save_worker(record),
        lambda: store.remove_worker("nobody"),
        lambda: store.prune_workers(T0),
    )
    for call in calls:
        assert await terminate_backends(pg_url, app_name) >= 1
        failures = 0
        while True:
            try:
                await call()
                break
            except StoreUnavailable:
                failures += 1
                assert failures < 50, "the store did not recover"
                await asyncio.sleep(0.05)
        assert failures <= 1
    assert await store.list_workers() == [record]
