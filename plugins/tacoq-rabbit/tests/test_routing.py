"""RabbitMQ behaviour beyond the contract: priorities as run by a worker, competing consumers,
redelivery after a consumer dies, delays, namespaces."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest_asyncio

from tacoq.contracts.broker import (
    RELAY_QUEUE,
    Broker,
    Consumer,
    Delivery,
    priority_level,
    worker_queue,
)
from tacoq.plugins import get_plugin_host
from tacoq.publishing.publisher import Publisher
from tacoq.testing.broker_contract import make_assignment
from tacoq.worker import WorkerApp

TIMEOUT = 15.0
Connect = Callable[..., Awaitable[Broker]]
NewNamespace = Callable[..., str]


@pytest_asyncio.fixture
async def connect(amqp_url: str) -> AsyncIterator[Connect]:
    """``await connect(namespace)``: a connected RabbitMQ client, closed afterwards."""
    opened: list[Broker] = []

    async def make(namespace: str) -> Broker:
        broker = get_plugin_host().create_broker(amqp_url, namespace=namespace)
        await broker.connect()
        opened.append(broker)
        return broker

    yield make
    for broker in reversed(opened):
        await broker.close()


async def receive(consumer: Consumer) -> Delivery:
    """The next delivery, within a generous bound."""
    return await asyncio.wait_for(consumer.get(), TIMEOUT)


async def test_worker_runs_higher_priorities_first(amqp_url: str, namespaces: NewNamespace) -> None:
    """With prefetch 1 a worker executes queued tasks highest priority level first, FIFO
    within a level: the order of execution, not only completion, is asserted."""
    ns = namespaces("prio")
    app = WorkerApp("prio", name="prio-worker")
    ran: list[int] = []
    all_ran = asyncio.Event()

    @app.task
    async def record(n: int) -> int:
        ran.append(n)
        if len(ran) == len(priorities):
            all_ran.set()
        return n

    priorities = [0, 255, 30, 128, 255, 0, 200, 60, 10, 129]
    async with Publisher(amqp_url, namespace=ns) as pub:
        for n, priority in enumerate(priorities):
            await pub.publish(record, n, priority=priority)
    stop = asyncio.Event()
    job = asyncio.create_task(
        app.serve(stop, broker_url=amqp_url, namespace=ns, concurrency=1, prefetch=1)
    )
    try:
        await asyncio.wait_for(all_ran.wait(), TIMEOUT)
    finally:
        stop.set()
        await asyncio.wait_for(job, TIMEOUT)
    expected = sorted(range(len(priorities)), key=lambda n: (-priority_level(priorities[n]), n))
    assert ran == expected


async def test_competing_consumers_split_the_work(
    connect: Connect, namespaces: NewNamespace
) -> None:
    """Two clients consuming one worker queue share its messages; none is delivered twice."""
    ns = namespaces()
    publisher, first, second = await connect(ns), await connect(ns), await connect(ns)
    sent = [make_assignment("work") for _ in range(40)]
    await publisher.publish_many([(envelope, 0) for envelope in sent])
    seen: dict[str, list[str]] = {"first": [], "second": []}

    async def drain(name: str, broker: Broker) -> None:
        async with await broker.consume(worker_queue("work"), prefetch=1) as consumer:
            while sum(map(len, seen.values())) < len(sent):
                try:
                    delivery = await asyncio.wait_for(consumer.get(), 0.5)
                except TimeoutError:
                    continue
                seen[name].append(str(delivery.envelope.task_id))
                await asyncio.sleep(0.005)  # a little work, so both get a share
                await delivery.ack()

    await asyncio.wait_for(asyncio.gather(drain("first", first), drain("second", second)), 30)
    everything = seen["first"] + seen["second"]
    assert sorted(everything) == sorted(str(e.task_id) for e in sent)
    assert seen["first"]
    assert seen["second"]


async def test_delivery_of_a_dead_consumer_is_redelivered(
    connect: Connect, namespaces: NewNamespace
) -> None:
    """A client that dies (its connection closes) with an unacked task: another gets it,
    marked redelivered and counted twice."""
    ns = namespaces()
    alive, doomed = await connect(ns), await connect(ns)
    sent = make_assignment("work")
    await alive.publish(sent)
    held = await receive(await doomed.consume(worker_queue("work"), prefetch=1))
    assert held.envelope.task_id == sent.task_id
    await doomed.close()  # the whole connection goes
    async with await alive.consume(worker_queue("work"), prefetch=1) as consumer:
        again = await receive(consumer)
        assert again.envelope.task_id == sent.task_id
        assert (again.redelivered, again.delivery_count) == (True, 2)
        await again.ack()
    await held.ack()  # settling on a dead channel is harmless


async def test_delayed_assignment_arrives_after_its_delay_with_its_priority(
    connect: Connect, namespaces: NewNamespace
) -> None:
    """A delayed assignment reaches its worker queue after the delay, not before, with its
    priority intact; the relay sees a copy at once (PENDING from the start)."""
    ns = namespaces()
    broker = await connect(ns)
    low, high = make_assignment("work", priority=0), make_assignment("work", priority=255)
    start = time.monotonic()
    await broker.publish(low, priority=0, delay=1.0)
    await broker.publish(high, priority=255, delay=1.0)
    async with await broker.consume(RELAY_QUEUE, prefetch=10) as relay:
        copies = [await receive(relay), await receive(relay)]
        assert time.monotonic() - start < 1.0
        assert {d.envelope.task_id for d in copies} == {low.task_id, high.task_id}
        await relay.ack_many(copies)
    await asyncio.sleep(max(0.0, start + 2.0 - time.monotonic()))  # both rung copies landed
    async with await broker.consume(worker_queue("work"), prefetch=1) as work:
        first = await receive(work)
        assert time.monotonic() - start >= 1.0
        assert first.envelope.task_id == high.task_id
        await first.ack()
        second = await receive(work)
        assert second.envelope.task_id == low.task_id
        await second.ack()


async def test_namespaces_do_not_share_worker_queues(
    connect: Connect, namespaces: NewNamespace
) -> None:
    """The same worker kind in two namespaces: a task published in one never reaches the other."""
    mine, theirs = await connect(namespaces()), await connect(namespaces())
    await theirs.declare_worker_queue("work")
    sent = make_assignment("work")
    await mine.publish(sent)
    async with await theirs.consume(worker_queue("work"), prefetch=1) as other:
        try:
            stray = await asyncio.wait_for(other.get(), 0.7)
        except TimeoutError:
            stray = None
        assert stray is None
    async with await mine.consume(worker_queue("work"), prefetch=1) as work:
        assert (await receive(work)).envelope.task_id == sent.task_id


async def test_ack_many_settles_out_of_order_deliveries(
    connect: Connect, namespaces: NewNamespace
) -> None:
    """``ack_many`` with gaps (a multiple ack for the leading run, singles after): exactly the
    acked messages leave the queue."""
    ns = namespaces()
    broker = await connect(ns)
    sent = [make_assignment("work") for _ in range(10)]
    await broker.publish_many([(envelope, 0) for envelope in sent])
    consumer = await broker.consume(worker_queue("work"), prefetch=10)
    held = [await receive(consumer) for _ in sent]
    keep = {held[3].envelope.task_id, held[7].envelope.task_id}
    await consumer.ack_many([d for d in held if d.envelope.task_id not in keep])
    await consumer.close()
    async with await broker.consume(worker_queue("work"), prefetch=10) as again:
        back = {(await receive(again)).envelope.task_id for _ in keep}
        assert back == keep
        try:
            extra = await asyncio.wait_for(again.get(), 0.5)
        except TimeoutError:
            extra = None
        assert extra is None
