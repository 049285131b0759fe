"""The last-resort guard, both sides: a failure nobody expected on one message sets that message
aside as a dead letter (the relay and the worker go on), while an outage never does (the message
is held or requeued and handled once the service is back).

Real built-in broker and stores; the faults are injected by small subclasses (a relay whose
decoder fails on a marked message, a store and a broker that fail while told to) and by a real
serializer plugin with a bug, not by mocks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest

from tacoq.builtin.memory_broker import MemoryBroker
from tacoq.builtin.memory_store import MemoryStore
from tacoq.contracts.broker import Delivery
from tacoq.contracts.hookspecs import hookimpl
from tacoq.contracts.store import BatchResult
from tacoq.errors import PublishError
from tacoq.guard import set_aside
from tacoq.model.task import TaskEvent
from tacoq.model.wire import Envelope
from tacoq.plugins import get_plugin_host
from tacoq.publishing.publisher import Publisher
from tacoq.relay.engine import RelayEngine
from tacoq.testing import all_dead_letters, eventually, fresh_namespace
from tacoq.worker import WorkerApp
from tacoq.worker.runtime import WorkerRuntime

WAIT = 15.0
APP = WorkerApp("guarded")


@APP.task
async def double(value: int) -> int:
    return value * 2


class BuggyDecoderRelay(RelayEngine):
    """A relay whose decoding raises an unexpected error for messages marked ``boom``."""

    def _decode(self, delivery: Delivery) -> list[TaskEvent]:
        if delivery.envelope.headers.get("boom"):
            raise RuntimeError("a bug nobody expected")
        return super()._decode(delivery)


class CutOffStore(MemoryStore):
    """A memory store whose ``apply_batch`` fails with a connection error while ``down``."""

    down = False

    async def apply_batch(self, events: Sequence[TaskEvent]) -> BatchResult:
        if self.down:
            raise ConnectionResetError("injected: the connection to the store was reset")
        return await super().apply_batch(events)


class UnconfirmingBroker(MemoryBroker):
    """A memory broker that refuses delayed publishes (a worker's retries) ``refuse`` times."""

    refuse = 0

    async def publish(self, envelope: Envelope, **options: Any) -> None:
        if options.get("delay") and self.refuse:
            self.refuse -= 1
            raise PublishError("injected: the broker did not confirm")
        await super().publish(envelope, **options)


@contextlib.asynccontextmanager
async def relay(engine: RelayEngine) -> AsyncIterator[RelayEngine]:
    stop = asyncio.Event()
    job = asyncio.create_task(engine.run(stop))
    await asyncio.wait_for(engine.ready.wait(), 5)
    try:
        yield engine
    finally:
        stop.set()
        await asyncio.wait_for(job, 10)


@contextlib.asynccontextmanager
async def worker(app: WorkerApp, broker: MemoryBroker) -> AsyncIterator[WorkerRuntime]:
    runtime = WorkerRuntime(app, broker, concurrency=2, prefetch=None, name="guarded-w")
    stop = asyncio.Event()
    job = asyncio.create_task(runtime.run(stop))
    try:
        yield runtime
    finally:
        stop.set()
        await asyncio.wait_for(job, 10)


async def test_an_unexpected_decoding_failure_dead_letters_that_message_only() -> None:
    ns = fresh_namespace("guard")
    url = f"memory://{ns}"
    engine = BuggyDecoderRelay(url, url, namespace=ns, cleanup=False)
    async with relay(engine), Publisher(url, namespace=ns) as pub:
        raw = MemoryBroker(url, namespace=ns)
        await raw.connect()
        await raw.publish(Envelope({"boom": "1"}, "text/plain", b"marked"))
        async with worker(APP, MemoryBroker(url, namespace=ns)):
            task = await pub.publish(double, 4)
            row = await engine.store.wait(task.id, WAIT)
        letters = await eventually(
            lambda: all_dead_letters(engine.store), until=lambda found: len(found) == 1
        )
    assert row is not None
    assert row.result(int) == 8
    assert letters[0].reason == "relay cannot decode: RuntimeError: a bug nobody expected"
    assert engine.stats.dead_lettered == 1


async def test_an_outage_of_the_store_is_held_and_retried_never_dead_lettered() -> None:
    ns = fresh_namespace("guard")
    url = f"memory://{ns}"
    store = CutOffStore(url, namespace=ns)
    store.down = True
    engine = RelayEngine(url, store, namespace=ns, cleanup=False, max_backoff=0.1)
    async with relay(engine), Publisher(url, namespace=ns) as pub:
        async with worker(APP, MemoryBroker(url, namespace=ns)):
            tasks = [await pub.publish(double, i) for i in range(5)]
            await eventually(
                lambda: _value(engine.stats.store_errors), until=lambda n: n >= 3, timeout=WAIT
            )
            store.down = False
            rows = [await engine.store.wait(t.id, WAIT) for t in tasks]
        letters = await all_dead_letters(engine.store)
    assert [row.result(int) if row else None for row in rows] == [0, 2, 4, 6, 8]
    assert letters == []
    assert engine.stats.dead_lettered == 0


class _Boom:
    """A type only the buggy serializer below handles."""


class _BuggyCodec:
    content_type = "application/x-buggy"

    def dump(self, value: Any) -> bytes:
        return b"boom"

    def load(self, data: bytes) -> Any:
        raise RuntimeError("the serializer plugin has a bug")


class _BuggySerializer:
    name = "buggy"
    content_type = "application/x-buggy"

    def handles(self, tp: Any) -> bool:
        return tp is _Boom

    def codec(self, tp: Any) -> _BuggyCodec:
        return _BuggyCodec()


class _BuggyPlugin:
    @hookimpl
    def tacoq_serializers(self) -> list[_BuggySerializer]:
        return [_BuggySerializer()]


async def test_a_worker_failing_on_a_message_dead_letters_it_at_once_and_goes_on() -> None:
    """A plugin's serializer raising what nobody expected used to requeue the message until its
    delivery limit; now it is dead-lettered at once, its task completed as DeadLettered by the
    relay (the worker could not report it), and the worker serves the next task."""
    host = get_plugin_host()
    name = f"buggy-{uuid.uuid4().hex[:8]}"
    host.register(_BuggyPlugin(), name=name)
    try:
        app = WorkerApp("guarded-ser")

        @app.task
        async def takes_boom(value: _Boom) -> int:
            return 1

        @app.task
        async def echo(value: int) -> int:
            return value

        ns = fresh_namespace("guard")
        url = f"memory://{ns}"
        engine = RelayEngine(url, url, namespace=ns, cleanup=False)
        async with relay(engine), Publisher(url, namespace=ns) as pub:
            async with worker(app, MemoryBroker(url, namespace=ns)) as runtime:
                bad = await pub.publish(takes_boom, _Boom())
                good = await pub.publish(echo, 5)
                bad_row = await engine.store.wait(bad.id, WAIT)
                good_row = await engine.store.wait(good.id, WAIT)
            letters = await eventually(
                lambda: all_dead_letters(engine.store), until=lambda found: len(found) == 1
            )
    finally:
        host.unregister(name)
    assert good_row is not None
    assert good_row.result(int) == 5
    assert bad_row is not None
    assert bad_row.error is not None
    assert bad_row.error.type == "DeadLettered"
    assert "RuntimeError: the serializer plugin has a bug" in bad_row.error.message
    (letter,) = letters
    assert letter.origin == "worker:guarded-ser"
    assert letter.task_id == bad.id
    assert letter.count == 1
    assert runtime.stats.dead_lettered == 1
    assert runtime.stats.started == 2


async def test_a_worker_outage_requeues_the_delivery_instead_of_dead_lettering_it() -> None:
    """A retry whose publish is not confirmed (the broker is down) is an outage: the delivery
    goes back to the queue and the attempt runs again once the broker answers."""
    attempts: list[int] = []
    app = WorkerApp("guarded-retry")

    @app.task(retries=1, retry_backoff=0.01)
    async def flaky(value: int) -> int:
        attempts.append(value)
        if len(attempts) < 3:
            raise ValueError("not yet")
        return value

    ns = fresh_namespace("guard")
    url = f"memory://{ns}"
    engine = RelayEngine(url, url, namespace=ns, cleanup=False)
    broker = UnconfirmingBroker(url, namespace=ns)
    broker.refuse = 1
    async with relay(engine), Publisher(url, namespace=ns) as pub:
        async with worker(app, broker) as runtime:
            task = await pub.publish(flaky, 3)
            row = await engine.store.wait(task.id, WAIT)
        letters = await all_dead_letters(engine.store)
    assert row is not None
    assert row.result(int) == 3
    assert row.attempt == 2
    assert attempts == [3, 3, 3]  # attempt 1 twice (its retry's publish failed), then 2
    assert letters == []
    assert runtime.stats.dead_lettered == 0


async def test_a_message_of_an_invented_kind_is_acked_and_counted_by_worker_and_relay() -> None:
    """Forward compatibility: a newer TacoQ's message kind is skipped (acked, counted, logged
    once per kind) by both, never dead-lettered, so a rolling upgrade fills no dead letters."""
    ns = fresh_namespace("guard")
    url = f"memory://{ns}"
    engine = RelayEngine(url, url, namespace=ns, cleanup=False)
    invented = Envelope(
        {"tacoq-version": "1", "tacoq-event": "schedule-announce", "tacoq-worker-kind": "guarded"},
        "application/json",
        b'{"every": "1m"}',
    )
    async with relay(engine), Publisher(url, namespace=ns) as pub:
        broker = MemoryBroker(url, namespace=ns)
        await broker.connect()
        await broker.republish("worker:guarded", invented)
        await broker.republish("worker:guarded", invented)
        await broker.publish(invented)  # to the relay
        async with worker(APP, MemoryBroker(url, namespace=ns)) as runtime:
            task = await pub.publish(double, 1)
            row = await engine.store.wait(task.id, WAIT)
            await eventually(lambda: _value(runtime.stats.unknown_messages), until=lambda n: n == 2)
        await eventually(lambda: _value(engine.stats.unknown_messages), until=lambda n: n == 1)
        letters = await all_dead_letters(engine.store)
    assert row is not None
    assert row.result(int) == 2
    assert letters == []
    assert engine.stats.dead_lettered == 0
    assert runtime.stats.dead_lettered == 0


async def _value(value: Any) -> Any:
    return value


class _Refusing(Delivery):
    """A delivery whose dead-lettering fails with ``failure``; records how it was settled."""

    def __init__(self, failure: Exception) -> None:
        self.envelope = Envelope({"tacoq-event": "x"}, "text/plain", b"body")
        self.redelivered = False
        self.delivery_count = 1
        self.failure = failure
        self.settled: list[str] = []

    async def ack(self) -> None:
        self.settled.append("ack")

    async def requeue(self) -> None:
        self.settled.append("requeue")

    async def dead_letter(self, reason: str, *, task_completed: bool = False) -> None:
        raise self.failure


async def test_a_dead_letter_the_broker_refuses_is_dropped_and_logged_an_outage_requeued(
    caplog: pytest.LogCaptureFixture,
) -> None:
    log = logging.getLogger("tacoq.test")
    refused = _Refusing(UnicodeEncodeError("utf-8", "\udc80", 0, 1, "surrogates not allowed"))
    assert await set_aside(refused, "relay cannot decode: x", log) == "dropped"
    assert refused.settled == ["ack"]
    assert "is dropped" in caplog.text
    assert "'tacoq-event': 'x'" in caplog.text  # the headers are in the log
    down = _Refusing(PublishError("not confirmed"))
    assert await set_aside(down, "relay cannot decode: x", log) == "requeued"
    assert down.settled == ["requeue"]
