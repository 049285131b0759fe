"""``SyncRabbitPublisher`` (pika) against the real RabbitMQ: run by an async worker, stored by
the relay, identical on the wire to the async publisher, windowed ``publish_many``, delays, and
reconnect-and-retry-once after RabbitMQ force-closes its own connection."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import threading
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pika
import pytest
import pytest_asyncio

from tacoq.model.task import TaskStatus
from tacoq.publishing.publisher import Publisher
from tacoq.relay.engine import RelayEngine
from tacoq.testing import fresh_namespace
from tacoq.worker import WorkerApp
from tacoq_rabbit import SyncRabbitPublisher
from tacoq_rabbit.link import delete_namespace
from tacoq_rabbit.topology import Topology

TIMEOUT = 30.0
KINDS = ("sync", "syncwire", "syncmany", "syncretry")


@pytest_asyncio.fixture
async def ns(amqp_url: str) -> AsyncIterator[str]:
    """A fresh namespace, deleted from RabbitMQ afterwards."""
    namespace = fresh_namespace("sync")
    yield namespace
    await delete_namespace(amqp_url, namespace, KINDS)


def connection_pids(name: str) -> list[str]:
    """The broker's pids of every connection whose client-given name is ``name``."""
    listing = subprocess.run(
        ["rabbitmqctl", "-q", "list_connections", "pid", "client_properties"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    return [line.split("\t", 1)[0] for line in listing.splitlines() if name in line]


def close_connection(pid: str) -> None:
    """Have RabbitMQ force-close the connection ``pid``."""
    subprocess.run(
        ["rabbitmqctl", "-q", "close_connection", pid, "tacoq test: forced close"],
        capture_output=True,
        timeout=30,
        check=True,
    )


def close_connections_named(name: str) -> int:
    """Force-close every connection whose client-given name is ``name``; how many were closed
    (only the test's own connections: the RabbitMQ app keeps running for everybody else)."""
    pids = connection_pids(name)
    for pid in pids:
        close_connection(pid)
    return len(pids)


def queue_depth(amqp_url: str, queue: str) -> int:
    """How many messages ``queue`` holds now (a passive declare on a connection of its own)."""
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        return int(connection.channel().queue_declare(queue, passive=True).method.message_count)
    finally:
        connection.close()


def drain_ids(amqp_url: str, queue: str, expected: int, timeout: float = TIMEOUT) -> list[str]:
    """Consume ``queue`` (auto-ack) until ``expected`` distinct messages came and it is idle;
    returns every ``tacoq-id`` header seen (duplicates included)."""
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    ids: list[str] = []
    try:
        channel = connection.channel()
        channel.basic_qos(prefetch_count=1000)
        deadline = time.monotonic() + timeout
        messages = channel.consume(queue, auto_ack=True, inactivity_timeout=0.5)
        for _method, properties, _body in messages:
            if properties is not None:
                ids.append(properties.headers["tacoq-id"])
            elif len(set(ids)) >= expected:
                break  # idle, and everything expected came
            if time.monotonic() > deadline:
                break
        channel.cancel()
    finally:
        connection.close()
    return ids


async def test_sync_tasks_are_run_by_an_async_worker_and_stored_by_the_relay(
    amqp_url: str, ns: str
) -> None:
    """Typed, by-name and delayed sync publishes complete; the delayed one runs after its delay."""
    relay = RelayEngine(amqp_url, f"memory://{ns}", namespace=ns, cleanup=False)
    stop = asyncio.Event()
    relay_job = asyncio.create_task(relay.run(stop))
    await asyncio.wait_for(relay.ready.wait(), TIMEOUT)
    app = WorkerApp("sync", name="sync-worker")
    ran_at: dict[int, float] = {}

    @app.task
    async def double(n: int) -> int:
        ran_at[n] = time.monotonic()
        return 2 * n

    worker = asyncio.create_task(app.serve(stop, broker_url=amqp_url, namespace=ns))

    def publish_all() -> tuple[list[Any], float]:
        with SyncRabbitPublisher(amqp_url, namespace=ns) as pub:
            tasks = [pub.publish(double, n) for n in range(5)]
            tasks.append(pub.publish("double", 5, worker_kind="sync", priority=200))
            tasks += pub.publish_many([(double, n) for n in range(6, 10)])
            sent = time.monotonic()
            tasks.append(pub.publish(double, 100, countdown=1.0))
        return tasks, sent

    try:
        tasks, sent = await asyncio.to_thread(publish_all)
        assert all(task.status is TaskStatus.PENDING for task in tasks)
        async with asyncio.timeout(TIMEOUT):
            rows = [await relay.store.wait(task.id, TIMEOUT) for task in tasks]
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(worker, relay_job), TIMEOUT)
    outputs = []
    for row in rows:
        assert row is not None
        assert row.status is TaskStatus.COMPLETED
        assert not row.is_error, row.error
        assert row.executed_by == "sync-worker"
        outputs.append(row.result(int))
    assert outputs == [2 * n for n in range(10)] + [200]
    assert ran_at[100] - sent >= 1.0  # never released before its delay


async def test_sync_and_async_publishers_send_identical_messages(amqp_url: str, ns: str) -> None:
    """The same ASSIGNED event published by each client reads back with the same properties
    (every field, header order and value types included) and the same body."""
    sync_pub = SyncRabbitPublisher(amqp_url, namespace=ns)
    event = sync_pub.build(
        "echo", {"text": "héllo", "n": [1, 2]}, worker_kind="syncwire", priority=77
    )
    async with Publisher(amqp_url, namespace=ns) as pub:
        await pub.publish_event(event)
    await asyncio.to_thread(sync_pub.publish_event, event)
    sync_pub.close()
    topology = Topology(ns)

    def read_raw(queue: str) -> list[tuple[dict[str, Any], bytes]]:
        connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
        try:
            channel = connection.channel()
            found = []
            for _ in range(2):
                method, properties, body = channel.basic_get(queue, auto_ack=True)
                assert method is not None, f"missing message in {queue}"
                fields = {k: v for k, v in vars(properties).items() if not k.startswith("_")}
                fields["header_order"] = list(properties.headers)
                fields["header_types"] = [type(v).__name__ for v in properties.headers.values()]
                found.append((fields, body))
            return found
        finally:
            connection.close()

    for queue in (topology.worker_queue("syncwire"), topology.relay_queue):
        (async_fields, async_body), (sync_fields, sync_body) = await asyncio.to_thread(
            read_raw, queue
        )
        assert sync_fields == async_fields
        assert sync_body == async_body
        assert async_fields["priority"] == 3  # 77 * 10 // 256
        assert async_fields["message_id"] == str(event.id)
        assert async_fields["delivery_mode"] == 2


def test_publish_many_of_a_thousand_arrives_complete(amqp_url: str, ns: str) -> None:
    """1,000 tasks in one windowed ``publish_many`` all land in the worker queue."""
    with SyncRabbitPublisher(amqp_url, namespace=ns) as pub:
        tasks = pub.publish_many([("noop", n) for n in range(1000)], worker_kind="syncmany")
    ids = drain_ids(amqp_url, Topology(ns).worker_queue("syncmany"), 1000)
    assert sorted(ids) == sorted(str(task.id) for task in tasks)


def test_reconnect_and_retry_once_after_a_forced_close(
    amqp_url: str, ns: str, caplog: pytest.LogCaptureFixture
) -> None:
    """RabbitMQ closes the publisher's own connection (found by its name) while a large
    windowed publish waits for confirms, and again before a single publish: both complete,
    nothing is lost, and the retried publishes keep their ids."""
    name = f"tacoq-sync-test-{uuid.uuid4().hex[:8]}"
    queue = Topology(ns).worker_queue("syncretry")
    with caplog.at_level(logging.INFO, logger="tacoq.rabbit"):
        pub = SyncRabbitPublisher(amqp_url, namespace=ns, connection_name=name)
        first = pub.publish("noop", 0, worker_kind="syncretry")  # connection open, named
        (pid,) = connection_pids(name)
        events = [pub.build("noop", n, worker_kind="syncretry") for n in range(30_000)]
        closed: list[str] = []

        def close_while_sending() -> None:
            # the close lands while the window is busy: once the queue holds more than `first`,
            # the send is under way, and 30,000 confirms take seconds, rabbitmqctl well under one
            deadline = time.monotonic() + TIMEOUT
            while queue_depth(amqp_url, queue) < 2 and time.monotonic() < deadline:
                time.sleep(0.02)
            close_connection(pid)
            closed.append(pid)

        closer = threading.Thread(target=close_while_sending)
        closer.start()
        many = pub.publish_events(events)
        closer.join()
        assert closed == [pid]
        assert close_connections_named(name) == 1  # the new connection, after the retry
        last = pub.publish("noop", 1, worker_kind="syncretry", id=uuid.uuid4())
        pub.close()
    assert "reconnecting and retrying them once" in caplog.text  # the windowed publish's retry path
    assert "guest:guest" not in caplog.text
    expected = {str(first.id), str(last.id), *(str(t.id) for t in many)}
    ids = drain_ids(amqp_url, queue, len(expected))
    assert set(ids) == expected  # every id arrived (republished ones possibly twice)
