"""The built-in ``memory://`` store: the store contract, plus in-process sharing."""

from __future__ import annotations

import time
import uuid

import pytest

from tacoq.builtin.memory_store import MemoryStore
from tacoq.model.task import Phase
from tacoq.testing import fresh_namespace
from tacoq.testing.store_contract import StoreContract, event


class TestMemoryStore(StoreContract):
    """The memory store passes the store contract."""

    @pytest.fixture
    def store_url(self) -> str:
        """The in-process store."""
        return "memory://"


async def test_stores_of_one_url_and_namespace_share_rows() -> None:
    """The demo's relay and readers see the same rows; other namespaces and URLs do not."""
    ns = fresh_namespace()
    relay, reader = MemoryStore("memory://", namespace=ns), MemoryStore("memory://", namespace=ns)
    stranger = MemoryStore("memory://other", namespace=ns)
    for s in (relay, reader, stranger):
        await s.connect()
    e = event(uuid.uuid4(), Phase.COMPLETED)
    await relay.apply_batch([e])
    assert (await reader.get(e.id)) == (await relay.get(e.id))
    assert await stranger.get(e.id) is None
    for s in (relay, reader, stranger):
        await s.close()


async def test_rows_are_released_with_the_last_store() -> None:
    """The rows live while a store of that URL and namespace is connected."""
    ns = fresh_namespace()
    first, second = MemoryStore("memory://", namespace=ns), MemoryStore("memory://", namespace=ns)
    await first.connect()
    e = event(uuid.uuid4(), Phase.ASSIGNED)
    await first.apply_batch([e])
    await second.connect()
    await first.close()
    assert await second.get(e.id) is not None
    await second.close()
    async with MemoryStore("memory://", namespace=ns) as third:
        assert await third.get(e.id) is None


async def test_apply_batch_is_fast() -> None:
    """Folding 5,000 tasks' three events each takes well under a second on one core."""
    async with MemoryStore("memory://", namespace=fresh_namespace()) as s:
        tasks = [uuid.uuid4() for _ in range(5000)]
        batches = [
            [event(t, phase) for t in tasks[i : i + 500]]
            for phase in Phase
            for i in range(0, len(tasks), 500)
        ]
        start = time.perf_counter()
        for batch in batches:
            await s.apply_batch(batch)
        elapsed = time.perf_counter() - start
        assert s.stats.events == 15000
        assert elapsed < 1.0, f"15,000 events took {elapsed:.3f}s"


async def test_closed_store_refuses_calls() -> None:
    """A closed memory store says so instead of silently dropping events."""
    from tacoq.errors import StoreUnavailable

    s = MemoryStore("memory://", namespace=fresh_namespace())
    with pytest.raises(StoreUnavailable, match="closed"):
        await s.get(uuid.uuid4())


async def test_a_malformed_cursor_is_refused() -> None:
    """A cursor that no store made raises ValueError (an API answers 400)."""
    async with MemoryStore("memory://", namespace=fresh_namespace()) as s:
        with pytest.raises(ValueError, match="cursor"):
            await s.list(cursor="not a cursor!")
