"""Connection loss: RabbitMQ force-closes this client's connection (``rabbitmqctl
close_connection``, only ours; the RabbitMQ app keeps running for everybody else)."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import uuid
from collections.abc import Callable

import pytest

from tacoq.contracts.broker import RELAY_QUEUE, Delivery, worker_queue
from tacoq.errors import PublishError
from tacoq.testing.broker_contract import make_assignment, make_update
from tacoq_rabbit.broker import RabbitBroker

NewNamespace = Callable[..., str]
TIMEOUT = 20.0


def close_connections_named(name: str) -> int:
    """Force-close every connection whose client-given name is ``name``; how many were closed."""
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


def named_url(amqp_url: str, name: str, **options: str) -> str:
    query = "&".join(f"{k}={v}" for k, v in {"name": name, **options}.items())
    return f"{amqp_url.rstrip('/')}/?{query}"


def cut_off(broker: RabbitBroker, name: str, publish_timeout: float) -> None:
    """Point the client at a port nobody listens on, then drop its connection: it cannot
    reconnect."""
    link = broker.link
    link.settings = type(link.settings)(
        client_url="amqp://guest:guest@127.0.0.1:1/",
        display_url="amqp://guest:***@127.0.0.1:1/",
        publish_timeout=publish_timeout,
        connect_timeout=0.5,
        max_backoff=0.2,
    )
    assert close_connections_named(name) >= 1


async def test_publish_and_consume_recover_after_the_connection_is_closed(
    amqp_url: str, namespaces: NewNamespace, caplog: pytest.LogCaptureFixture
) -> None:
    """After a forced close: publishing works again, the consumer resubscribes, and acking a
    delivery from the lost channel does not crash (it is redelivered instead)."""
    name = f"tacoq-test-{uuid.uuid4().hex[:8]}"
    broker = RabbitBroker(named_url(amqp_url, name), namespace=namespaces("reconnect"))
    await broker.connect()
    try:
        first = make_assignment("work")
        await broker.publish(first)
        consumer = await broker.consume(worker_queue("work"), prefetch=5)
        held = await asyncio.wait_for(consumer.get(), TIMEOUT)
        assert held.envelope.task_id == first.task_id
        assert close_connections_named(name) >= 1
        second = make_assignment("work")
        await broker.publish(second)  # waits for the reconnection, then is confirmed
        with caplog.at_level(logging.INFO, logger="tacoq.rabbit"):
            await held.ack()  # its channel is gone
        assert "redeliver" in caplog.text
        got: dict[str | None, Delivery] = {}
        while len(got) < 2:
            delivery = await asyncio.wait_for(consumer.get(), TIMEOUT)
            got[delivery.envelope.task_id] = delivery
        assert set(got) == {first.task_id, second.task_id}
        assert got[first.task_id].redelivered
        await consumer.ack_many(list(got.values()))
        health = await broker.health()
        assert health.ok, health.detail
        assert "guest:guest" not in health.detail
    finally:
        await broker.close()


async def test_publish_gives_up_after_its_bounded_wait(
    amqp_url: str, namespaces: NewNamespace
) -> None:
    """Without a broker to reconnect to, ``publish`` raises ``PublishError`` after
    ``publish_timeout``, with no password in the message."""
    name = f"tacoq-test-{uuid.uuid4().hex[:8]}"
    ns = namespaces("giveup")
    broker = RabbitBroker(named_url(amqp_url, name, publish_timeout="1"), namespace=ns)
    await broker.connect()
    try:
        await broker.publish(make_update())
        cut_off(broker, name, publish_timeout=1.0)

        async def publish_until_it_fails() -> None:
            async with asyncio.timeout(TIMEOUT):
                while True:  # the first publishes may still race the close
                    await broker.publish(make_update())
                    await asyncio.sleep(0.05)

        with pytest.raises(PublishError) as caught:
            await publish_until_it_fails()
        assert "guest:guest" not in str(caught.value)
        health = await broker.health()
        assert not health.ok
        assert "guest:guest" not in health.detail
    finally:
        await broker.close()


async def test_closing_fails_a_publish_waiting_for_the_connection_at_once(
    amqp_url: str, namespaces: NewNamespace
) -> None:
    """A publish waiting for a reconnection fails as soon as the client is closed, saying so,
    instead of waiting out ``publish_timeout``."""
    name = f"tacoq-test-{uuid.uuid4().hex[:8]}"
    broker = RabbitBroker(
        named_url(amqp_url, name, publish_timeout="60"), namespace=namespaces("close")
    )
    await broker.connect()
    cut_off(broker, name, publish_timeout=60.0)
    publishing = asyncio.create_task(broker.publish(make_update()))
    await asyncio.sleep(0.5)
    assert not publishing.done()  # waiting for a reconnection that cannot happen
    loop = asyncio.get_running_loop()
    closed_at = loop.time()
    await broker.close()
    with pytest.raises(PublishError, match="closed"):
        await asyncio.wait_for(publishing, TIMEOUT)
    assert loop.time() - closed_at < 5.0


async def test_relay_consumer_keeps_consuming_after_a_reconnect(
    amqp_url: str, namespaces: NewNamespace
) -> None:
    """A relay-queue consumer resubscribes by itself after its connection is closed."""
    name = f"tacoq-test-{uuid.uuid4().hex[:8]}"
    broker = RabbitBroker(named_url(amqp_url, name), namespace=namespaces("relayreconnect"))
    await broker.connect()
    try:
        consumer = await broker.consume(RELAY_QUEUE, prefetch=10)
        assert close_connections_named(name) >= 1
        sent = make_update()
        await broker.publish(sent)
        delivery = await asyncio.wait_for(consumer.get(), TIMEOUT)
        assert delivery.envelope.body == sent.body
        await delivery.ack()
    finally:
        await broker.close()
