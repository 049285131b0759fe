"""Poison on a real RabbitMQ: messages the AMQP client library itself cannot read must end as
dead letters, never in a connection that drops, reconnects, is handed the same message again
and drops again (a relay or worker wedged by one message).

The messages are published raw with pika, which sends whatever bytes it is given.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pika
import pytest
import pytest_asyncio

from tacoq.contracts.broker import RELAY_QUEUE, worker_queue
from tacoq.plugins import get_plugin_host
from tacoq.publishing.publisher import Publisher
from tacoq.relay.engine import RelayEngine
from tacoq.testing import all_dead_letters, eventually
from tacoq.worker import WorkerApp
from tacoq_rabbit.testing import publish_raw
from tacoq_rabbit.topology import Topology

NewNamespace = Callable[..., str]
TIMEOUT = 30.0
KIND = "poison"

APP = WorkerApp(KIND, name="poison-worker")


@APP.task
async def echo(value: int) -> int:
    return value


#: AMQP properties that aiormq's frame decoder (pamqp) cannot read: invalid UTF-8 in a
#: short string, a header name, or a timestamp no datetime can hold.
UNREADABLE: dict[str, pika.BasicProperties] = {
    "content type of invalid UTF-8": pika.BasicProperties(content_type=b"\xff\xfe"),
    "header name of invalid UTF-8": pika.BasicProperties(headers={b"\xff\xfe": "x"}),
    "message id of invalid UTF-8": pika.BasicProperties(message_id=b"\xff"),
    "timestamp past year 9999": pika.BasicProperties(timestamp=2**63 - 1),
}


@pytest_asyncio.fixture
async def system(amqp_url: str, namespaces: NewNamespace) -> AsyncIterator[dict[str, Any]]:
    """A relay (memory store) and a worker on a fresh namespace over RabbitMQ."""
    ns = namespaces("poison")
    relay = RelayEngine(amqp_url, f"memory://{ns}", namespace=ns, cleanup=False)
    stop = asyncio.Event()
    jobs = [asyncio.create_task(relay.run(stop))]
    await asyncio.wait_for(relay.ready.wait(), TIMEOUT)
    broker = get_plugin_host().create_broker(amqp_url, namespace=ns)
    await broker.connect()
    await broker.declare_worker_queue(KIND)
    jobs.append(asyncio.create_task(APP.serve(stop, broker_url=amqp_url, namespace=ns)))
    try:
        yield {"ns": ns, "relay": relay, "broker": broker}
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*jobs, return_exceptions=True), TIMEOUT)
        await broker.close()


@pytest.mark.parametrize("case", list(UNREADABLE))
async def test_a_message_the_amqp_client_cannot_read_is_dead_lettered(
    amqp_url: str, system: dict[str, Any], case: str
) -> None:
    ns, relay = system["ns"], system["relay"]
    topology = Topology(ns)
    for queue in (topology.relay_queue, topology.worker_queue(KIND)):
        await asyncio.to_thread(publish_raw, amqp_url, queue, [(UNREADABLE[case], b"poison")])
    async with Publisher(amqp_url, namespace=ns) as pub:
        for value in range(3):
            task = await pub.publish(echo, value)
            row = await relay.store.wait(task.id, TIMEOUT)
            assert row is not None
            assert row.is_completed, f"{case}: task {value} did not complete"
            assert row.result(int) == value
    letters = await eventually(
        lambda: all_dead_letters(relay.store),
        until=lambda found: len(found) == 2,
        timeout=TIMEOUT,
        message=f"{case}: both copies dead-lettered",
    )
    assert sorted(letter.origin for letter in letters) == sorted([RELAY_QUEUE, worker_queue(KIND)])
    assert all(letter.body == b"poison" for letter in letters)
    assert relay.stats.dead_lettered == 1
