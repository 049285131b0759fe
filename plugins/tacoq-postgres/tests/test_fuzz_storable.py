"""Fuzzing against the real Postgres: what a relay keeps of any hostile message (its events, or
the dead-letter record of a malformed one) is stored, reads back and is UTF-8 text; and a relay
on the memory broker with this store ends every hostile message exactly one way and goes on
(the SQLite versions are in ``core/tests/test_wire_fuzz.py`` and ``test_consumers_fuzz.py``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tacoq.model.wire import Envelope
from tacoq.plugins import get_plugin_host
from tacoq.publishing.publisher import Publisher
from tacoq.relay.engine import RelayEngine
from tacoq.testing import fresh_namespace
from tacoq.testing.consumer_probe import RelayProbe
from tacoq.testing.poison import hostile_envelopes, updates_envelopes
from tacoq.testing.storable import store_message
from tacoq.worker import WorkerApp
from tacoq_postgres.store import PostgresStore
from tacoq_postgres.testing import MakeStore

TIMEOUT = 15.0
#: One store and one relay (function-scoped fixtures) serve every example, on purpose.
SHARED = settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)

APP = WorkerApp("pgfuzz")


@APP.task
async def echo(value: int) -> int:
    return value


@SHARED
@given(st.one_of(hostile_envelopes(), updates_envelopes()))
async def test_what_the_relay_keeps_of_any_message_is_storable_in_postgres(
    pg: PostgresStore, envelope: Envelope
) -> None:
    await store_message(pg, envelope)


@pytest.fixture
async def relay_on_postgres(make_store: MakeStore) -> AsyncIterator[tuple[RelayProbe, Publisher]]:
    """A relay (memory broker, Postgres store) and a worker; a probe and a publisher."""
    ns = fresh_namespace("pgfuzz")
    url = f"memory://{ns}"
    relay = RelayEngine(url, await make_store(ns, connect=False), namespace=ns, cleanup=False)
    broker = get_plugin_host().create_broker(url, namespace=ns)
    await broker.connect()
    stop = asyncio.Event()
    jobs = [
        asyncio.create_task(relay.run(stop)),
        asyncio.create_task(APP.serve(stop, broker_url=url, namespace=ns)),
    ]
    await asyncio.wait_for(relay.ready.wait(), TIMEOUT)
    async with Publisher(url, namespace=ns) as publisher:
        try:
            yield RelayProbe(relay, broker, timeout=TIMEOUT), publisher
        finally:
            stop.set()
            await asyncio.wait_for(asyncio.gather(*jobs), TIMEOUT)
            await broker.close()


@SHARED
@given(st.one_of(hostile_envelopes(), updates_envelopes()))
async def test_a_relay_on_postgres_ends_every_hostile_message_one_way_and_goes_on(
    relay_on_postgres: tuple[RelayProbe, Publisher], envelope: Envelope
) -> None:
    probe, publisher = relay_on_postgres
    await probe.feed(envelope)
    since = probe.relay.stats.deliveries
    task = await publisher.publish(echo, 7)
    row = await probe.relay.store.wait(task.id, TIMEOUT)
    assert row is not None
    assert row.is_completed, row
    assert row.result(int) == 7
    await probe.wait_applied(since, 2)  # its assignment copy and completion
