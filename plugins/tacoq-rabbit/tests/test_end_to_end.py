"""Worker, relay and publisher over amqp://: completions, malformed messages, poison tasks,
and ``tacoq demo`` across RabbitMQ."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from uuid import UUID

import aio_pika
import pytest_asyncio

from tacoq.contracts.broker import worker_queue
from tacoq.model.task import TaskStatus
from tacoq.model.wire import Envelope
from tacoq.plugins import get_plugin_host
from tacoq.publishing.publisher import Publisher
from tacoq.relay.engine import RelayEngine
from tacoq.testing import all_dead_letters, eventually
from tacoq.testing.broker_contract import make_assignment, make_update
from tacoq.worker import WorkerApp
from tacoq_rabbit.topology import Topology

NewNamespace = Callable[..., str]
TIMEOUT = 30.0


@pytest_asyncio.fixture
async def relay_of(amqp_url: str) -> AsyncIterator[Callable[[str], RelayEngine]]:
    """``relay_of(ns)``: a running relay (memory store) for ``ns``, stopped afterwards."""
    stop = asyncio.Event()
    jobs: list[asyncio.Task[None]] = []

    def start(ns: str) -> RelayEngine:
        relay = RelayEngine(amqp_url, f"memory://{ns}", namespace=ns, cleanup=False)
        jobs.append(asyncio.create_task(relay.run(stop)))
        return relay

    yield start
    stop.set()
    await asyncio.wait_for(asyncio.gather(*jobs), TIMEOUT)


def build_app() -> WorkerApp:
    app = WorkerApp("e2e", name="e2e-worker")

    @app.task
    async def add(pair: list[int]) -> int:
        if pair[0] < 0:
            raise ValueError(f"negative: {pair[0]}")
        return pair[0] + pair[1]

    @app.task
    def shout(text: str) -> str:
        return text.upper()

    return app


async def test_worker_relay_and_publisher_complete_tasks(
    amqp_url: str, namespaces: NewNamespace, relay_of: Callable[[str], RelayEngine]
) -> None:
    """Hundreds of tasks published over amqp:// complete with the right outputs and errors."""
    ns = namespaces("e2e")
    relay = relay_of(ns)
    await asyncio.wait_for(relay.ready.wait(), TIMEOUT)
    app = build_app()
    stop = asyncio.Event()
    worker = asyncio.create_task(app.serve(stop, broker_url=amqp_url, namespace=ns))
    expected: dict[UUID, object] = {}
    try:
        async with Publisher(amqp_url, namespace=ns) as pub:
            for i in range(300):
                if i % 5 == 0:
                    task = await pub.publish(app.tasks["shout"], f"word {i}", priority=i % 256)
                    expected[task.id] = f"WORD {i}"
                elif i % 37 == 0:
                    task = await pub.publish(app.tasks["add"], [-i, 1])
                    expected[task.id] = ValueError
                else:
                    task = await pub.publish(app.tasks["add"], [i, 2 * i], priority=i % 256)
                    expected[task.id] = 3 * i
        async with asyncio.timeout(TIMEOUT):
            rows = {task_id: await relay.store.wait(task_id, TIMEOUT) for task_id in expected}
    finally:
        stop.set()
        await asyncio.wait_for(worker, TIMEOUT)
    for task_id, want in expected.items():
        row = rows[task_id]
        assert row is not None
        assert row.status is TaskStatus.COMPLETED
        if want is ValueError:
            assert row.is_error
            assert row.error is not None
            assert row.error.type == "ValueError"
        else:
            assert not row.is_error, row.error
            assert row.result(type(want)) == want
            assert row.executed_by == "e2e-worker"
    assert relay.stats.dead_lettered == 0


async def test_relay_dead_letters_malformed_messages_and_carries_on(
    amqp_url: str, namespaces: NewNamespace, relay_of: Callable[[str], RelayEngine]
) -> None:
    """Garbage published raw with aio-pika onto the relay's queue (bad body, missing headers)
    is dead-lettered with a reason, a message of an unknown kind is skipped and counted; a good
    update after them is applied."""
    ns = namespaces("malformed")
    relay = relay_of(ns)
    await asyncio.wait_for(relay.ready.wait(), TIMEOUT)
    queue = Topology(ns).relay_queue
    good = make_update()
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        raw = [
            aio_pika.Message(
                b"\xff\x00 not json",
                headers={"tacoq-version": "1", "tacoq-event": "updates", "tacoq-count": "1"},
                content_type="application/vnd.tacoq.updates+json",
            ),
            aio_pika.Message(b"{}", headers={}),
            aio_pika.Message(b"{}", headers={"tacoq-version": "1", "tacoq-event": "explode"}),
        ]
        for message in raw:
            await channel.default_exchange.publish(message, routing_key=queue)
        await channel.default_exchange.publish(
            aio_pika.Message(good.body, headers=dict(good.headers), content_type=good.content_type),
            routing_key=queue,
        )
    (event,) = __import__("tacoq.model.wire", fromlist=["decode"]).decode(good)

    async def stored() -> object:
        return await relay.store.get(event.id)

    await eventually(stored, timeout=TIMEOUT, message="the good update after the garbage")

    async def letters() -> list[str]:
        return sorted(d.reason for d in await all_dead_letters(relay.store))

    reasons = await eventually(letters, until=lambda r: len(r) == 2, timeout=TIMEOUT)
    assert relay.stats.dead_lettered == 2
    assert all(reason.startswith("relay cannot decode: ") for reason in reasons)
    assert any("not valid JSON" in r for r in reasons)
    assert any("unknown wire version" in r for r in reasons)
    # A well-formed kind this TacoQ does not know (a newer sender's) is skipped and counted.
    assert relay.stats.unknown_messages == 1


async def test_a_task_that_keeps_killing_workers_is_dead_lettered(
    amqp_url: str, namespaces: NewNamespace, relay_of: Callable[[str], RelayEngine]
) -> None:
    """Workers that die holding a task (connection closed, never acked) push its delivery
    count up; past the limit the next worker dead-letters it with a reason and the task
    completes as a ``DeadLettered`` error instead of running again."""
    ns = namespaces("poison")
    relay = relay_of(ns)
    await asyncio.wait_for(relay.ready.wait(), TIMEOUT)
    app = WorkerApp("poison", name="survivor")
    ran: list[int] = []

    @app.task
    async def echo(n: int) -> int:
        ran.append(n)
        return n

    async with Publisher(amqp_url, namespace=ns) as pub:
        task = await pub.publish(echo, 1)
    counts = []
    for _ in range(5):  # five workers die holding it
        doomed = get_plugin_host().create_broker(amqp_url, namespace=ns)
        await doomed.connect()
        consumer = await doomed.consume(worker_queue("poison"), prefetch=1)
        delivery = await asyncio.wait_for(consumer.get(), TIMEOUT)
        counts.append(delivery.delivery_count)
        await doomed.close()
    assert counts == [1, 2, 3, 4, 5]
    stop = asyncio.Event()
    worker = asyncio.create_task(app.serve(stop, broker_url=amqp_url, namespace=ns))
    try:
        row = await relay.store.wait(task.id, TIMEOUT)
    finally:
        stop.set()
        await asyncio.wait_for(worker, TIMEOUT)
    assert row is not None
    assert row.is_error
    assert row.error is not None
    assert row.error.type == "DeadLettered"
    assert ran == []
    (letter,) = await eventually(
        lambda: all_dead_letters(relay.store), until=lambda found: len(found) == 1
    )
    assert letter.reason == "delivered 6 times (limit 5)"
    assert letter.origin == worker_queue("poison")
    assert letter.task_id == task.id
    assert relay.stats.dead_letter_completions == 0  # the worker reported the completion


async def test_worker_dead_letters_a_malformed_assignment(
    amqp_url: str, namespaces: NewNamespace
) -> None:
    """An assignment with a bad header on a worker queue is dead-lettered; the worker goes on."""
    ns = namespaces("badassign")
    broker = get_plugin_host().create_broker(amqp_url, namespace=ns)
    await broker.connect()
    app = WorkerApp("e2e")
    done = asyncio.Event()

    @app.task(kind="echo")
    async def echo(value: object) -> object:
        done.set()
        return value

    good = make_assignment("e2e")
    bad_headers = dict(good.headers, **{"tacoq-attempt": "zero"})
    try:
        await broker.publish(Envelope(bad_headers, good.content_type, good.body))
        await broker.publish(make_assignment("e2e"))
        stop = asyncio.Event()
        worker = asyncio.create_task(app.serve(stop, broker_url=amqp_url, namespace=ns))
        await asyncio.wait_for(done.wait(), TIMEOUT)
        stop.set()
        await asyncio.wait_for(worker, TIMEOUT)

        async def reasons() -> list[str]:
            return [d.reason for d in await broker.dead_letters()]

        found = await eventually(reasons, timeout=TIMEOUT)
        assert found[0].startswith("malformed assignment:")
    finally:
        await broker.close()


def test_demo_runs_across_rabbitmq(amqp_url: str, namespaces: NewNamespace) -> None:
    """``tacoq demo --broker amqp://...`` finishes and exits 0."""
    ns = namespaces("demo")
    completed = subprocess.run(
        [sys.executable, "-m", "tacoq_cli", "demo", "--broker", amqp_url, "--namespace", ns],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "NO_COLOR": "1"},
        check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "guest:guest" not in completed.stdout + completed.stderr
