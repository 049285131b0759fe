"""The control queue on RabbitMQ beyond the contract: its arguments, the AMQP properties of
control messages, the ttl's bounds, pika clients declaring it alike, and a reconnect."""

from __future__ import annotations

import asyncio
import math
import subprocess
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import aio_pika
import aio_pika.exceptions
import pytest
import pytest_asyncio

from tacoq.contracts.broker import CONTROL_QUEUE
from tacoq.testing.broker_contract import make_goodbye, make_heartbeat
from tacoq_rabbit.admin import RabbitAdmin
from tacoq_rabbit.broker import RabbitBroker
from tacoq_rabbit.codec import MAX_CONTROL_TTL, control_fields
from tacoq_rabbit.topology import CONTROL_QUEUE_ARGUMENTS, Topology

TIMEOUT = 20.0
NewNamespace = Callable[..., str]
Connect = Callable[..., Awaitable[RabbitBroker]]


def close_connections_named(name: str) -> int:
    """Have RabbitMQ force-close every connection named ``name``; how many there were."""
    listing = subprocess.run(
        ["rabbitmqctl", "-q", "list_connections", "pid", "client_properties"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    pids = [line.split("\t", 1)[0] for line in listing.splitlines() if name in line]
    for pid in pids:
        subprocess.run(
            ["rabbitmqctl", "-q", "close_connection", pid, "tacoq test: forced close"],
            capture_output=True,
            timeout=30,
            check=True,
        )
    return len(pids)


@pytest_asyncio.fixture
async def connect(amqp_url: str) -> AsyncIterator[Connect]:
    """``await connect(namespace)``: a connected RabbitMQ client, closed afterwards."""
    opened: list[RabbitBroker] = []

    async def make(namespace: str, url: str | None = None) -> RabbitBroker:
        broker = RabbitBroker(url or amqp_url, namespace=namespace)
        await broker.connect()
        opened.append(broker)
        return broker

    yield make
    for broker in reversed(opened):
        await broker.close()


async def get_raw(amqp_url: str, queue: str) -> aio_pika.abc.AbstractIncomingMessage:
    """One message taken from ``queue`` as RabbitMQ holds it (acked)."""
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        found = await (await channel.get_queue(queue, ensure=False)).get(timeout=TIMEOUT)
        assert found is not None
        await found.ack()
        return found


async def test_control_queue_is_durable_with_its_bounds(
    amqp_url: str, namespaces: NewNamespace, connect: Connect
) -> None:
    """``<ns>.control`` is declared at connect, durable, with exactly the documented
    arguments: declaring it again with them works, without them is refused."""
    ns = namespaces("control")
    await connect(ns)
    name = Topology(ns).control_queue
    assert name == f"{ns}.control"
    assert CONTROL_QUEUE_ARGUMENTS == {
        "x-max-length": 100_000,
        "x-max-length-bytes": 512 * 1024 * 1024,
        "x-overflow": "drop-head",
    }
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        await channel.declare_queue(name, durable=True, arguments=dict(CONTROL_QUEUE_ARGUMENTS))
        with pytest.raises(aio_pika.exceptions.ChannelPreconditionFailed):
            await channel.declare_queue(name, durable=True)


async def test_pika_clients_declare_the_control_queue_alike(
    amqp_url: str, namespaces: NewNamespace, connect: Connect
) -> None:
    """The pika clients (``tacoq rabbit declare``, the sync publisher) declare the same
    arguments as the asyncio broker, before or after it (same AMQP types: no 406)."""
    first, second = namespaces("control"), namespaces("control")
    await connect(first)
    for namespace in (first, second):
        with RabbitAdmin(amqp_url, namespace) as admin:  # a 406 would raise here
            assert Topology(namespace).control_queue in admin.declare([])
    await connect(second)


async def test_persistent_and_expiring_properties(
    amqp_url: str, namespaces: NewNamespace, connect: Connect
) -> None:
    """Without ttl: ``delivery_mode`` 2 and no expiration. With ttl: ``delivery_mode`` 1 and
    ``expiration`` in milliseconds as text, rounded up. Headers, content type and body kept;
    published straight into the control queue (the default exchange)."""
    ns = namespaces("control")
    broker = await connect(ns)
    queue = Topology(ns).control_queue
    goodbye, heartbeat = make_goodbye(), make_heartbeat()
    await broker.send_control(goodbye)
    await broker.send_control(heartbeat, ttl=600.0004)
    kept = await get_raw(amqp_url, queue)
    assert (kept.delivery_mode, kept.expiration, kept.body) == (2, None, goodbye.body)
    assert kept.content_type == goodbye.content_type
    assert kept.headers == dict(goodbye.headers)
    assert kept.exchange == ""
    transient = await get_raw(amqp_url, queue)
    assert transient.delivery_mode == 1
    assert transient.body == heartbeat.body
    assert transient.headers == dict(heartbeat.headers)
    # aio-pika reads ``expiration`` back as seconds; on the wire it is "600001"
    assert transient.expiration is not None
    assert math.isclose(float(transient.expiration), 600.001)


@pytest.mark.parametrize(
    ("ttl", "expiration"),
    [(0, "0"), (0.2, "200"), (2.007, "2007"), (0.0001, "1"), (1.5004, "1501")],
)
def test_expiration_is_whole_milliseconds_rounded_up(ttl: float, expiration: str) -> None:
    assert control_fields(make_heartbeat(), ttl)["expiration"] == expiration


@pytest.mark.parametrize("ttl", [-1, math.nan, math.inf, MAX_CONTROL_TTL + 1, True, "5"])
async def test_a_bad_ttl_is_refused_before_publishing(
    namespaces: NewNamespace, connect: Connect, ttl: object
) -> None:
    broker = await connect(namespaces("control"))
    with pytest.raises(ValueError, match="ttl"):
        await broker.send_control(make_heartbeat(), ttl=ttl)  # type: ignore[arg-type]


async def test_the_longest_ttl_is_accepted(namespaces: NewNamespace, connect: Connect) -> None:
    """RabbitMQ takes the largest expiration the binding allows (2**32 - 1 ms)."""
    broker = await connect(namespaces("control"))
    await broker.send_control(make_heartbeat(), ttl=MAX_CONTROL_TTL)
    assert await broker.consumer_count(CONTROL_QUEUE) == 0


async def test_control_consumer_and_send_control_recover_after_a_reconnect(
    amqp_url: str, namespaces: NewNamespace, connect: Connect
) -> None:
    """After a forced close the control consumer resubscribes by itself, and a control
    message sent meanwhile waits for the reconnection, then arrives."""
    name = f"tacoq-test-{uuid.uuid4().hex[:8]}"
    url = f"{amqp_url.rstrip('/')}/?name={name}"
    broker = await connect(namespaces("control"), url)
    consumer = await broker.consume(CONTROL_QUEUE, prefetch=10)
    assert close_connections_named(name) >= 1
    persistent, expiring = make_goodbye(), make_heartbeat()
    await broker.send_control(persistent)
    await broker.send_control(expiring, ttl=TIMEOUT * 3)
    got = []
    for _ in range(2):
        delivery = await asyncio.wait_for(consumer.get(), TIMEOUT)
        got.append(delivery.envelope.body)
        await delivery.ack()
    assert got == [persistent.body, expiring.body]
