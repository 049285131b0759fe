"""The built-in ``memory://`` broker: the broker contract, plus what only it promises."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from tacoq.builtin.memory_broker import MemoryBroker
from tacoq.contracts.broker import RELAY_QUEUE, Broker, Consumer, Delivery, worker_queue
from tacoq.errors import ConfigError, PublishError, TacoqError
from tacoq.model.wire import Envelope
from tacoq.plugins import get_plugin_host
from tacoq.testing import fresh_namespace
from tacoq.testing.broker_contract import (
    BrokerContract,
    ConnectBroker,
    make_assignment,
    make_update,
)

KIND = "contract"


class TestMemoryBroker(BrokerContract):
    """The memory broker passes the contract every broker plugin passes."""

    timeout = 5.0
    quiet = 0.1
    delay = 0.2
    control_hold_ttl = 0.3

    @pytest.fixture
    def broker_url(self) -> str:
        return "memory://"


class TestNamedMemoryBroker(TestMemoryBroker):
    """A named in-process server behaves the same."""

    @pytest.fixture
    def broker_url(self) -> str:
        return "memory://contract-suite"


@pytest_asyncio.fixture
async def broker() -> AsyncIterator[Broker]:
    broker = get_plugin_host().create_broker("memory://", namespace=fresh_namespace())
    await broker.connect()
    yield broker
    await broker.close()


async def get(consumer: Consumer, timeout: float = 5.0) -> Delivery:
    """The next delivery, bounded by ``timeout``."""
    return await asyncio.wait_for(consumer.get(), timeout)


def test_created_by_the_plugin_host() -> None:
    made = get_plugin_host().create_broker("memory://", namespace="x")
    assert isinstance(made, MemoryBroker)
    assert made.in_process


def test_rejects_other_schemes() -> None:
    with pytest.raises(ConfigError):
        MemoryBroker("amqp://localhost", namespace="x")


async def test_same_url_shares_a_server_and_names_separate() -> None:
    ns = fresh_namespace()
    async with (
        MemoryBroker("memory://shared", namespace=ns) as one,
        MemoryBroker("memory://shared/", namespace=ns) as two,
        MemoryBroker("memory://elsewhere", namespace=ns) as three,
    ):
        await one.publish(make_update())
        async with await two.consume(RELAY_QUEUE, prefetch=1) as consumer:
            await (await get(consumer)).ack()
        async with await three.consume(RELAY_QUEUE, prefetch=1) as consumer:
            assert consumer.get_nowait() is None


@pytest.mark.parametrize("priority", [-1, 256, 1.5, True])
async def test_invalid_priority_is_a_clear_error(broker: Broker, priority: object) -> None:
    with pytest.raises(ValueError, match="priority"):
        await broker.publish(make_update(), priority=priority)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="priority"):
        await broker.publish_many([(make_update(), priority)])  # type: ignore[list-item]


async def test_assignment_creates_its_queue_and_malformed_goes_to_relay(broker: Broker) -> None:
    sent = make_assignment("never-declared")
    await broker.publish(sent)
    await broker.publish(Envelope({}, "application/octet-stream", b"junk"))
    await broker.publish(Envelope({"tacoq-event": "assign"}, "text/plain", b"no kind"))
    async with await broker.consume(worker_queue("never-declared"), prefetch=5) as work:
        assert (await get(work)).envelope.task_id == sent.task_id
        assert work.get_nowait() is None
    async with await broker.consume(RELAY_QUEUE, prefetch=5) as relay:
        bodies = [(await get(relay)).envelope.body for _ in range(3)]
        assert bodies == [sent.body, b"junk", b"no kind"]
        assert relay.get_nowait() is None


async def test_settling_twice_is_a_no_op(broker: Broker) -> None:
    for _ in range(2):
        await broker.publish(make_update())
    async with await broker.consume(RELAY_QUEUE, prefetch=2) as relay:
        first = relay.get_nowait()
        assert first is not None
        await first.requeue()
        await first.ack()
        await first.dead_letter("late")
        second, third = relay.get_nowait(), relay.get_nowait()
        assert second is not None
        assert third is not None
        assert second.redelivered
        assert not third.redelivered
        await relay.ack_many([second, third])
        await relay.ack_many([second, third])
        await second.ack()
        assert relay.get_nowait() is None
    assert await broker.dead_letters() == []


async def test_settle_after_close_leaves_the_message_queued(broker: Broker) -> None:
    await broker.publish(make_update())
    relay = await broker.consume(RELAY_QUEUE, prefetch=1)
    held = await get(relay)
    await relay.close()
    await relay.close()
    await held.ack()
    with pytest.raises(TacoqError, match="closed"):
        relay.get_nowait()
    async with await broker.consume(RELAY_QUEUE, prefetch=1) as again:
        assert (await get(again)).delivery_count == 2


async def test_broker_close_returns_unsettled_and_wakes_getters(
    connect_memory: ConnectBroker,
) -> None:
    one = await connect_memory()
    other = await connect_memory()
    await one.publish(make_update())
    relay = await one.consume(RELAY_QUEUE, prefetch=1)
    await get(relay)
    waiting = asyncio.ensure_future(relay.get())
    await asyncio.sleep(0)
    await one.close()
    with pytest.raises(TacoqError):
        await asyncio.wait_for(waiting, 5)
    with pytest.raises(PublishError):
        await one.publish(make_update())
    assert not (await one.health()).ok
    async with await other.consume(RELAY_QUEUE, prefetch=1) as again:
        assert (await get(again)).redelivered


async def test_cancelled_get_loses_nothing(broker: Broker) -> None:
    async with await broker.consume(RELAY_QUEUE, prefetch=1) as relay:
        for _ in range(3):
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(relay.get(), 0.01)
        sent = make_update()
        await broker.publish(sent)
        assert (await get(relay)).envelope.body == sent.body


async def test_concurrent_getters_on_one_consumer(broker: Broker) -> None:
    async with await broker.consume(RELAY_QUEUE, prefetch=2) as relay:
        getters = [asyncio.ensure_future(relay.get()) for _ in range(3)]
        await asyncio.sleep(0)
        for _ in range(3):
            await broker.publish(make_update())
        done, pending = await asyncio.wait(getters, timeout=0.2)
        assert len(done) == 2
        assert len(pending) == 1
        await next(iter(done)).result().ack()
        await asyncio.wait_for(pending.pop(), 5)


async def test_wake_up_passes_on_when_a_consumer_is_full(broker: Broker) -> None:
    """A getter woken for a message its full consumer cannot take hands it to another."""
    async with (
        await broker.consume(RELAY_QUEUE, prefetch=1) as full,
        await broker.consume(RELAY_QUEUE, prefetch=1) as idle,
    ):
        first, second = asyncio.ensure_future(full.get()), asyncio.ensure_future(full.get())
        await asyncio.sleep(0)
        other = asyncio.ensure_future(idle.get())
        await asyncio.sleep(0)
        await broker.publish(make_update())
        await broker.publish(make_update())
        assert (await asyncio.wait_for(first, 5)).delivery_count == 1
        assert (await asyncio.wait_for(other, 5)).delivery_count == 1
        second.cancel()


async def test_delayed_message_survives_publisher_close(broker: Broker) -> None:
    publisher = MemoryBroker("memory://", namespace=broker.namespace)
    await publisher.connect()
    sent = make_update()
    await publisher.publish(sent, delay=0.05)
    await publisher.close()
    async with await broker.consume(RELAY_QUEUE, prefetch=1) as relay:
        assert (await get(relay)).envelope.body == sent.body


async def test_publish_from_another_thread_and_loop(broker: Broker) -> None:
    count = 2_000
    sent: list[bytes] = []

    async def publish_all() -> None:
        async with MemoryBroker("memory://", namespace=broker.namespace) as publisher:
            for i in range(count):
                envelope = make_update()
                sent.append(envelope.body)
                await publisher.publish(envelope, delay=0.01 if i % 500 == 0 else None)

    got: list[bytes] = []
    async with await broker.consume(RELAY_QUEUE, prefetch=50) as relay:
        thread = threading.Thread(target=lambda: asyncio.run(publish_all()))
        thread.start()
        try:
            while len(got) < count:
                delivery = await get(relay)
                got.append(delivery.envelope.body)
                await delivery.ack()
        finally:
            await asyncio.to_thread(thread.join, 10)
    assert sorted(got) == sorted(sent)


async def test_dead_letters_limit(broker: Broker) -> None:
    for _ in range(3):
        await broker.publish(make_update())
    async with await broker.consume(RELAY_QUEUE, prefetch=3) as relay:
        for _ in range(3):
            await (await get(relay)).dead_letter("nope")
    assert len(await broker.dead_letters(limit=2)) == 2
    assert [d.queue for d in await broker.dead_letters()] == [RELAY_QUEUE] * 3


async def test_consume_validates_its_arguments(broker: Broker) -> None:
    with pytest.raises(ValueError, match="queue"):
        await broker.consume("nowhere", prefetch=1)
    with pytest.raises(ValueError, match="prefetch"):
        await broker.consume(RELAY_QUEUE, prefetch=0)


async def test_many_operations_sanity(broker: Broker) -> None:
    """Not a timing test: a burst of publish+get+ack keeps exact counts and leaves no residue."""
    await broker.declare_worker_queue(KIND)
    envelopes = [make_assignment(priority=i % 256) for i in range(5_000)]
    await broker.publish_many([(e, 0) for e in envelopes[:2_500]])
    for envelope in envelopes[2_500:]:
        await broker.publish(envelope, priority=200)
    async with await broker.consume(worker_queue(KIND), prefetch=100) as work:
        seen = set()
        for _ in envelopes:
            delivery = work.get_nowait() or await get(work)
            seen.add(delivery.envelope.task_id)
            await delivery.ack()
        assert work.get_nowait() is None
    assert seen == {e.task_id for e in envelopes}
    assert isinstance(broker, MemoryBroker)
    assert broker.stats()[RELAY_QUEUE] == len(envelopes)


@pytest_asyncio.fixture
async def connect_memory() -> AsyncIterator[ConnectBroker]:
    namespace = fresh_namespace()
    opened: list[Broker] = []

    async def connect(namespace_: str | None = None) -> Broker:
        made = MemoryBroker("memory://", namespace=namespace_ or namespace)
        await made.connect()
        opened.append(made)
        return made

    yield connect
    for made in opened:
        await made.close()
