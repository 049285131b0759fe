"""The worker runtime over RabbitMQ: retries through delayed publishing, countdown/eta, unknown
task kinds dead-lettered after bounded requeues, and input validation of by-name publishes."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest_asyncio
from pydantic import BaseModel

import tacoq
from tacoq.plugins import get_plugin_host
from tacoq.publishing.publisher import Publisher
from tacoq.relay.engine import RelayEngine
from tacoq.testing import all_dead_letters, eventually, fresh_namespace
from tacoq.worker import WorkerApp
from tacoq.worker.runtime import UNKNOWN_KIND_REDELIVERIES, WorkerRuntime
from tacoq_rabbit.link import delete_namespace

KIND = "amqpw"
TIMEOUT = 30.0


class Point(BaseModel):
    x: int
    y: int


def build_app() -> WorkerApp:
    app = WorkerApp(KIND, name="amqp-worker")

    @app.task(retries=2, retry_backoff=0.2, retry_on=(ConnectionError,))
    async def flaky(value: int, ctx: tacoq.TaskContext) -> int:
        if ctx.attempt < 3:
            raise ConnectionError(f"attempt {ctx.attempt}")
        return value * 10

    @app.task
    def norm(point: Point) -> int:
        return abs(point.x) + abs(point.y)

    @app.task
    async def echo(value: int) -> int:
        return value

    return app


@pytest_asyncio.fixture
async def ns(amqp_url: str) -> AsyncIterator[str]:
    namespace = fresh_namespace("amqpw")
    yield namespace
    await delete_namespace(amqp_url, namespace, [KIND])


@contextlib.asynccontextmanager
async def running(
    amqp_url: str, ns: str
) -> AsyncIterator[tuple[RelayEngine, Publisher, WorkerRuntime]]:
    relay = RelayEngine(amqp_url, f"memory://{ns}", namespace=ns, cleanup=False)
    stop = asyncio.Event()
    jobs = [asyncio.create_task(relay.run(stop))]
    await asyncio.wait_for(relay.ready.wait(), TIMEOUT)
    broker = get_plugin_host().create_broker(amqp_url, namespace=ns)
    runtime = WorkerRuntime(build_app(), broker, concurrency=4, prefetch=None, name="amqp-worker")
    jobs.append(asyncio.create_task(runtime.run(stop)))
    try:
        async with Publisher(amqp_url, namespace=ns) as pub:
            yield relay, pub, runtime
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*jobs), TIMEOUT)


async def test_retries_go_through_the_brokers_delayed_publish(amqp_url: str, ns: str) -> None:
    async with running(amqp_url, ns) as (relay, pub, runtime):
        task = await pub.publish("flaky", 4, worker_kind=KIND)
        row = await relay.store.wait(task.id, TIMEOUT)
    assert row is not None
    assert row.result(int) == 40
    assert row.attempt == 3
    assert row.executed_by == "amqp-worker"
    assert runtime.stats.retried == 2


async def test_countdown_and_eta_hold_a_task_back(amqp_url: str, ns: str) -> None:
    async with running(amqp_url, ns) as (relay, pub, _):
        later = await pub.publish("echo", 1, worker_kind=KIND, countdown=1.5)
        eta = await pub.publish(
            "echo", 2, worker_kind=KIND, eta=datetime.now(UTC) + timedelta(seconds=1.5)
        )
        now = await pub.publish("echo", 3, worker_kind=KIND)
        rows = [await relay.store.wait(t.id, TIMEOUT) for t in (later, eta, now)]
    for row in rows:
        assert row is not None
        assert row.started_at is not None
        assert row.created_at is not None
    waited = [
        (r.started_at - r.created_at).total_seconds()
        for r in rows
        if r and r.started_at and r.created_at
    ]
    assert waited[0] >= 1.4
    assert waited[1] >= 1.3
    assert waited[2] < 1.0


async def test_an_unknown_kind_is_dead_lettered_after_bounded_requeues(
    amqp_url: str, ns: str
) -> None:
    async with running(amqp_url, ns) as (relay, pub, runtime):
        task = await pub.publish("rotate", {"deg": 90}, worker_kind=KIND)
        row = await relay.store.wait(task.id, TIMEOUT)
        # The COMPLETED row is confirmed before the message is moved to the dead-letter queue;
        # the relay takes it from there into its store.
        dead = await eventually(
            lambda: all_dead_letters(relay.store),
            until=lambda found: len(found) >= 1,
            timeout=TIMEOUT,
            message="the unknown kind's message reached the store's dead letters",
        )
        stored = await relay.store.get(task.id)
    assert row is not None
    assert stored == row  # the worker's completion stands: the relay did not complete it again
    assert row.is_error
    assert row.error is not None
    assert row.error.type == "DeadLettered"
    assert "unknown task kind 'rotate'" in row.error.message
    assert "echo, flaky, norm" in row.error.message
    assert runtime.stats.unknown_kind_requeued == UNKNOWN_KIND_REDELIVERIES
    assert runtime.stats.dead_lettered == 1
    assert [d.task_id for d in dead] == [task.id]
    assert "unknown task kind" in dead[0].reason


async def test_by_name_input_is_validated_by_the_worker(amqp_url: str, ns: str) -> None:
    async with running(amqp_url, ns) as (relay, pub, _):
        good = await pub.publish("norm", {"x": -3, "y": 4}, worker_kind=KIND)
        bad = await pub.publish("norm", {"x": "left"}, worker_kind=KIND)
        good_row = await relay.store.wait(good.id, TIMEOUT)
        bad_row = await relay.store.wait(bad.id, TIMEOUT)
    assert good_row is not None
    assert good_row.result(int) == 7
    assert bad_row is not None
    assert bad_row.is_error
    assert bad_row.error is not None
    assert bad_row.error.type == "InvalidInput"
    assert "x" in bad_row.error.message
    assert "y" in bad_row.error.message  # every validation detail, not just the first


async def test_call_returns_the_direct_reply_and_the_relay_still_stores_it(
    amqp_url: str, ns: str
) -> None:
    """Direct replies over RabbitMQ: ``call`` answers from the worker's reply (retries
    included: the reply address travels with each new attempt), the relay's row agrees."""
    async with running(amqp_url, ns) as (relay, pub, _):
        done = await pub.call("echo", 7, worker_kind=KIND, timeout=TIMEOUT)
        retried = await pub.call("flaky", 5, worker_kind=KIND, timeout=TIMEOUT)
        task = await pub.publish("norm", {"x": -3, "y": 4}, worker_kind=KIND, reply=True)
        waited = await pub.wait(task.id, timeout=TIMEOUT)
        stored = await relay.store.wait(done.id, TIMEOUT)
    assert done.result(int) == 7
    assert done.executed_by == "amqp-worker"
    assert (retried.result(int), retried.attempt) == (50, 3)
    assert waited.result(int) == 7
    assert stored is not None
    assert stored.is_completed
    assert (stored.result(int), stored.completed_at) == (7, done.completed_at)
