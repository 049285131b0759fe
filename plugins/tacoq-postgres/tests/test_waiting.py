"""Waiting without polling: one LISTEN connection, chunked NOTIFY, reconnects miss nothing."""

from __future__ import annotations

import asyncio
import uuid

from psycopg import sql

from tacoq.model.task import Phase, Task
from tacoq.testing import eventually
from tacoq.testing.strategies import event
from tacoq_postgres.sql import NOTIFY_LIMIT
from tacoq_postgres.store import PostgresStore
from tacoq_postgres.testing import MakeStore, admin

TIMEOUT = 20.0


async def _listen_backends(url: str, app_name: str) -> list[int]:
    async with await admin(url) as conn:
        cur = await conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name = %s "
            "AND query ILIKE 'LISTEN%%'",
            [app_name],
        )
        return [int(pid) for (pid,) in await cur.fetchall()]


async def _all_completed(waiters: list[asyncio.Task[Task | None]]) -> None:
    rows = await asyncio.wait_for(asyncio.gather(*waiters), TIMEOUT)
    assert all(row is not None and row.is_completed for row in rows)


async def test_notify_is_chunked_under_the_payload_limit(
    make_store: MakeStore, pg_url: str
) -> None:
    """600 completions in one batch (about 20 kB of ids) arrive as several NOTIFYs, each under
    8000 bytes, and wake waiters of another store instance (so only NOTIFY can wake them)."""
    writer = await make_store()
    reader = await make_store(writer.namespace)
    ids = [uuid.uuid4() for _ in range(600)]
    await writer.apply_batch([event(i, Phase.ASSIGNED) for i in ids])
    async with await admin(pg_url) as spy:
        await spy.execute(sql.SQL("LISTEN {}").format(sql.Identifier(writer.settings.channel)))
        waiters = [asyncio.create_task(reader.wait(i, timeout=TIMEOUT)) for i in ids]
        await eventually(_waiting(reader), until=lambda n: n == len(ids), timeout=TIMEOUT)
        result = await writer.apply_batch([event(i, Phase.COMPLETED) for i in ids])
        assert len(result.completed) == len(ids)
        await _all_completed(waiters)
        payloads = [n.payload async for n in spy.notifies(timeout=1.0)]
    assert len(payloads) >= 3
    assert all(len(p.encode()) <= NOTIFY_LIMIT for p in payloads)
    assert sorted(part for p in payloads for part in p.split(",")) == sorted(i.hex for i in ids)


def _waiting(store: PostgresStore):  # type: ignore[no-untyped-def]
    async def probe() -> int:
        return 0 if store.listener is None else store.listener.waiting

    return probe


async def test_many_waiters_share_one_listen_connection(
    make_store: MakeStore, pg_url: str, app_name: str
) -> None:
    """200 concurrent waiters: one LISTEN backend in pg_stat_activity; all of them wake."""
    writer = await make_store()
    reader = await make_store(writer.namespace)
    ids = [uuid.uuid4() for _ in range(200)]
    await writer.apply_batch([event(i, Phase.ASSIGNED) for i in ids])
    waiters = [asyncio.create_task(reader.wait(i, timeout=TIMEOUT)) for i in ids]
    await eventually(_waiting(reader), until=lambda n: n == len(ids), timeout=TIMEOUT)
    assert len(await _listen_backends(pg_url, app_name)) == 1
    assert not any(w.done() for w in waiters)
    for start in range(0, len(ids), 50):
        await writer.apply_batch([event(i, Phase.COMPLETED) for i in ids[start : start + 50]])
    await _all_completed(waiters)
    assert reader.listener is not None
    assert reader.listener.connects == 1


async def test_waiters_complete_across_a_killed_listener(
    make_store: MakeStore, pg_url: str
) -> None:
    """The LISTEN backend is terminated; completions committed while nobody listens and after
    the reconnect both reach their waiters."""
    writer = await make_store()
    reader = await make_store(writer.namespace)
    ids = [uuid.uuid4() for _ in range(40)]
    await writer.apply_batch([event(i, Phase.ASSIGNED) for i in ids])
    waiters = [asyncio.create_task(reader.wait(i, timeout=TIMEOUT)) for i in ids]
    await eventually(_waiting(reader), until=lambda n: n == len(ids), timeout=TIMEOUT)
    listener = reader.listener
    assert listener is not None
    pid = listener.backend_pid
    async with await admin(pg_url) as conn:
        await conn.execute("SELECT pg_terminate_backend(%s)", [pid])
    # Committed in the gap: no listener hears this NOTIFY; the re-read after reconnect must.
    await writer.apply_batch([event(i, Phase.COMPLETED) for i in ids[:20]])
    await eventually(lambda: _connects(reader), until=lambda n: n >= 2, timeout=TIMEOUT)
    assert listener.backend_pid not in (None, pid)
    await writer.apply_batch([event(i, Phase.COMPLETED) for i in ids[20:]])
    await _all_completed(waiters)


async def _connects(store: PostgresStore) -> int:
    return 0 if store.listener is None else store.listener.connects


async def test_wait_timeout_returns_current_row_and_unknown_is_none(pg: PostgresStore) -> None:
    """A timeout gives back the current (pending) row; an id never seen gives ``None``."""
    task_id = uuid.uuid4()
    await pg.apply_batch([event(task_id, Phase.RUNNING)])
    row = await pg.wait(task_id, timeout=0.1)
    assert row is not None
    assert not row.is_completed
    assert await pg.wait(uuid.uuid4(), timeout=0.05) is None
