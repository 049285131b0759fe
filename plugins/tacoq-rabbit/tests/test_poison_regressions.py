"""Regression tests for what fuzzing the AMQP level found (issue 15; see tacoq_rabbit.tolerant).

1. A header nested a few hundred levels deep (an array in an array...; about 3 KB, RabbitMQ
   routes it) makes pamqp's decoder recurse past Python's limit: ``RecursionError`` in the
   connection's frame reader, which drops the connection; on reconnect RabbitMQ delivers the
   same message first, so the relay or worker is wedged for good, as with the invalid UTF-8 the
   tolerant decoders fixed.
2. Values the consumer reads but cannot write again: a header double outside the range of a
   4-byte float (AMQP ``d``, what Java, Go and .NET clients send for a double; pamqp writes
   every float as ``f``: ``OverflowError``) and a long string that is not UTF-8 (pamqp reads it
   as ``bytes`` and cannot write ``bytes``: ``TypeError``). Every copy the consumer publishes
   fails: a dead letter is dropped (logged, not recorded), and on a worker queue a requeue (an
   unknown task kind during a rolling deploy, any redelivery) falls back to ``basic.reject``
   with requeue, RabbitMQ redelivers it flagged ``redelivered``, the consumer tries to copy it
   again... a hot loop (thousands of failed requeues a second) that never ends.

pika cannot publish these values (no doubles, strings always UTF-8, a few hundred levels at
most), so the messages carry a raw header table (:class:`tacoq_rabbit.testing.RawProperties`).
"""

from __future__ import annotations

import asyncio
import struct
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pika
import pytest
import pytest_asyncio
from pamqp import commands

from tacoq.contracts.broker import RELAY_QUEUE, worker_queue
from tacoq.plugins import get_plugin_host
from tacoq.publishing.publisher import Publisher
from tacoq.relay.engine import RelayEngine
from tacoq.testing import all_dead_letters, eventually
from tacoq.worker import WorkerApp
from tacoq_rabbit import tolerant
from tacoq_rabbit.testing import RawProperties, as_received, publish_raw
from tacoq_rabbit.topology import Topology

NewNamespace = Callable[..., str]
KIND = "poison"
#: How long a test waits for a dead letter (short: they come within a second).
WAIT = 6.0
DEPTH = 600

APP = WorkerApp(KIND, name="regression-worker")


@APP.task
async def echo(value: int) -> int:
    return value


def _entry(name: str, tag: bytes, payload: bytes) -> bytes:
    raw = name.encode()
    return struct.pack(">B", len(raw)) + raw + tag + payload


def _text(value: str) -> bytes:
    raw = value.encode()
    return b"S" + struct.pack(">I", len(raw)) + raw


#: Raw header values the consumer reads but cannot write again.
UNCOPYABLE = {
    "a double beyond a 4-byte float": b"d" + struct.pack(">d", 1e300),
    "a long string that is not UTF-8": b"S" + struct.pack(">I", 2) + b"\xff\xfe",
}


def _nested_properties() -> Any:
    value: list[Any] = []
    for _ in range(DEPTH):
        value = [value]
    return pika.BasicProperties(content_type="application/json", headers={"deep": value})


def _assignment_table(task_kind: str, extra: bytes) -> bytes:
    """A valid assignment of ``task_kind`` as raw table bytes, plus ``extra`` entries."""
    headers = {
        "tacoq-version": "1",
        "tacoq-event": "assign",
        "tacoq-id": str(uuid.uuid4()),
        "tacoq-task-kind": task_kind,
        "tacoq-worker-kind": KIND,
        "tacoq-attempt": "1",
        "tacoq-priority": "0",
        "tacoq-ttl": "60",
        "tacoq-created-at": "2030-01-01T00:00:00.000000Z",
    }
    return b"".join(_entry(k, b"", _text(v)) for k, v in headers.items()) + extra


# -- the decoders alone ----------------------------------------------------------------------


def test_a_deeply_nested_header_is_read() -> None:
    received = as_received(_nested_properties())
    assert received.headers is not None


@pytest.mark.parametrize("case", list(UNCOPYABLE))
def test_what_the_consumer_reads_it_can_copy_again(case: str) -> None:
    received = as_received(RawProperties(_entry("x", b"", UNCOPYABLE[case])))
    assert received.headers is not None
    commands.Basic.Properties(headers=tolerant.storable(dict(received.headers))).marshal()


# -- on a real RabbitMQ --------------------------------------------------------------------------


@pytest_asyncio.fixture
async def system(amqp_url: str, namespaces: NewNamespace) -> AsyncIterator[dict[str, Any]]:
    """A relay (memory store) and a worker on a fresh namespace over RabbitMQ."""
    ns = namespaces("regress")
    relay = RelayEngine(amqp_url, f"memory://{ns}", namespace=ns, cleanup=False)
    stop = asyncio.Event()
    jobs = [asyncio.create_task(relay.run(stop))]
    await asyncio.wait_for(relay.ready.wait(), 30)
    broker = get_plugin_host().create_broker(amqp_url, namespace=ns)
    await broker.connect()
    await broker.declare_worker_queue(KIND)
    jobs.append(asyncio.create_task(APP.serve(stop, broker_url=amqp_url, namespace=ns)))
    try:
        yield {"ns": ns, "relay": relay}
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*jobs, return_exceptions=True), 30)
        await broker.close()


async def _dead_letters(relay: RelayEngine, count: int) -> list[Any]:
    return await eventually(
        lambda: all_dead_letters(relay.store),
        until=lambda found: len(found) >= count,
        timeout=WAIT,
        message=f"{count} dead letters recorded",
    )


async def test_a_deeply_nested_header_is_dead_lettered_and_wedges_nobody(
    amqp_url: str, system: dict[str, Any]
) -> None:
    ns, relay = system["ns"], system["relay"]
    topology = Topology(ns)
    for queue in (topology.relay_queue, topology.worker_queue(KIND)):
        await asyncio.to_thread(publish_raw, amqp_url, queue, [(_nested_properties(), b"1")])
    async with Publisher(amqp_url, namespace=ns) as pub:
        task = await pub.publish(echo, 3)
        row = await relay.store.wait(task.id, WAIT)
    assert row is not None
    assert row.is_completed, "a task published after the nested header did not complete"
    letters = await _dead_letters(relay, 2)
    assert sorted(x.origin for x in letters) == sorted([RELAY_QUEUE, worker_queue(KIND)])


@pytest.mark.parametrize("case", list(UNCOPYABLE))
async def test_a_message_the_consumer_cannot_copy_is_still_dead_lettered(
    amqp_url: str, system: dict[str, Any], case: str
) -> None:
    """On the relay's queue: malformed (no tacoq headers), so it must be recorded."""
    ns, relay = system["ns"], system["relay"]
    poison = RawProperties(_entry("x", b"", UNCOPYABLE[case]), "application/json")
    await asyncio.to_thread(publish_raw, amqp_url, Topology(ns).relay_queue, [(poison, b"1")])
    letters = await _dead_letters(relay, 1)
    assert letters[0].origin == RELAY_QUEUE
    # The intake may record it before the relay's own dead-lettering call has returned.
    await eventually(lambda: _value(relay.stats.dead_lettered), until=lambda n: n == 1)


@pytest.mark.parametrize("case", list(UNCOPYABLE))
async def test_a_requeue_the_consumer_cannot_copy_does_not_loop(
    amqp_url: str, system: dict[str, Any], case: str
) -> None:
    """On a worker queue: a valid assignment of a task kind the worker does not know is
    requeued up to 3 deliveries (rolling deploys), then dead-lettered as DeadLettered."""
    ns, relay = system["ns"], system["relay"]
    table = _assignment_table("not-deployed-yet", _entry("x", b"", UNCOPYABLE[case]))
    poison = RawProperties(table, "application/json")
    await asyncio.to_thread(
        publish_raw, amqp_url, Topology(ns).worker_queue(KIND), [(poison, b"1")]
    )
    letters = await _dead_letters(relay, 1)
    assert letters[0].origin == worker_queue(KIND)
    assert "unknown task kind" in letters[0].reason


async def _value(value: Any) -> Any:
    return value
