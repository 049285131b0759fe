"""The update batcher: confirms in flight, batching while the window is full, failures retried.

On the real in-process broker; ``GatedBroker`` holds publishes until the test releases them (a
broker whose confirms are slow, as a persistent publish's are), it does not fake routing.
"""

import asyncio
import dataclasses
import os
import uuid
from collections.abc import Sequence

from tacoq.builtin.memory_broker import MemoryBroker
from tacoq.contracts.broker import RELAY_QUEUE
from tacoq.errors import PublishError
from tacoq.model.task import Payload, Phase, TaskEvent, utcnow
from tacoq.model.wire import Envelope, decode_updates
from tacoq.testing import fresh_namespace
from tacoq.worker.updates import (
    EAGER_EVENTS,
    MAX_MESSAGE_BYTES,
    MESSAGES_IN_FLIGHT,
    CompletedCache,
    UpdateBatcher,
)


class GatedBroker(MemoryBroker):
    """Routes each publish only once ``gate`` is set; ``fail_next`` refuses that many."""

    def __init__(self, url: str, *, namespace: str) -> None:
        super().__init__(url, namespace=namespace)
        self.gate = asyncio.Event()
        self.started = 0
        self.fail_next = 0
        self.sizes: list[int] = []

    async def publish(
        self,
        envelope: Envelope,
        *,
        priority: int = 0,
        delay: float | None = None,
        reply_to: Sequence[str] = (),
    ) -> None:
        self.started += 1
        self.sizes.append(len(envelope.body))
        if self.fail_next:
            self.fail_next -= 1
            raise PublishError("injected: not confirmed")
        await self.gate.wait()
        await super().publish(envelope, priority=priority, delay=delay, reply_to=reply_to)


def completion() -> TaskEvent:
    now = utcnow()
    return TaskEvent(
        id=uuid.uuid4(),
        attempt=1,
        phase=Phase.COMPLETED,
        task_kind="t",
        worker_kind="k",
        executed_by="w",
        started_at=now,
        completed_at=now,
    )


async def relayed_events(broker: MemoryBroker, count: int) -> list[TaskEvent]:
    events: list[TaskEvent] = []
    async with await broker.consume(RELAY_QUEUE, prefetch=100) as relay:
        while len(events) < count:
            delivery = await asyncio.wait_for(relay.get(), 5)
            events += decode_updates(delivery.envelope)
            await delivery.ack()
    return events


async def test_a_new_event_does_not_wait_for_the_previous_confirm() -> None:
    ns = fresh_namespace("batcher")
    broker = GatedBroker(f"memory://{ns}", namespace=ns)
    await broker.connect()
    consumer = await broker.consume(RELAY_QUEUE, prefetch=1)
    batcher = UpdateBatcher(broker, consumer, CompletedCache())
    runner = asyncio.create_task(batcher.run())
    sent = [completion() for _ in range(MESSAGES_IN_FLIGHT + 3)]
    for event in sent[:MESSAGES_IN_FLIGHT]:
        batcher.add(event)
        await asyncio.sleep(0.01)
    # each event went out in its own message although none is confirmed yet
    assert broker.started == MESSAGES_IN_FLIGHT
    for event in sent[MESSAGES_IN_FLIGHT:]:  # the window is full: these gather
        batcher.add(event)
    await asyncio.sleep(0.05)
    assert broker.started == MESSAGES_IN_FLIGHT
    broker.gate.set()
    await asyncio.wait_for(batcher.drain(), 5)
    assert broker.started == MESSAGES_IN_FLIGHT + 1  # the three gathered into one message
    assert all(batcher.completion(e.id, 1) is not None for e in sent)
    await consumer.close()
    events = await relayed_events(broker, len(sent))
    assert sorted(e.id for e in events) == sorted(e.id for e in sent)
    await batcher.close()
    await asyncio.wait_for(runner, 5)
    await broker.close()


async def test_a_big_message_waiting_for_its_confirm_makes_the_next_events_gather() -> None:
    """Under load (a message bigger than EAGER_EVENTS in flight) no second message goes out
    until the first is confirmed: the events gather into one big message."""
    ns = fresh_namespace("batcher")
    broker = GatedBroker(f"memory://{ns}", namespace=ns)
    await broker.connect()
    consumer = await broker.consume(RELAY_QUEUE, prefetch=1)
    batcher = UpdateBatcher(broker, consumer, CompletedCache())
    for _ in range(EAGER_EVENTS + 1):
        batcher.add(completion())
    runner = asyncio.create_task(batcher.run())
    await asyncio.sleep(0.02)
    assert broker.started == 1
    for _ in range(3):
        batcher.add(completion())
        await asyncio.sleep(0.01)
    assert broker.started == 1
    broker.gate.set()
    await asyncio.wait_for(batcher.drain(), 5)
    assert broker.started == 2
    await consumer.close()
    assert len(await relayed_events(broker, EAGER_EVENTS + 4)) == EAGER_EVENTS + 4
    await batcher.close()
    await asyncio.wait_for(runner, 5)
    await broker.close()


async def test_a_refused_message_is_sent_again() -> None:
    ns = fresh_namespace("batcher")
    broker = GatedBroker(f"memory://{ns}", namespace=ns)
    await broker.connect()
    broker.gate.set()
    broker.fail_next = 2
    consumer = await broker.consume(RELAY_QUEUE, prefetch=1)
    batcher = UpdateBatcher(broker, consumer, CompletedCache())
    runner = asyncio.create_task(batcher.run())
    event = completion()
    batcher.add(event)
    await asyncio.wait_for(batcher.drain(), 5)
    assert broker.started == 3
    assert batcher.messages_sent == 1
    await consumer.close()
    assert [e.id for e in await relayed_events(broker, 1)] == [event.id]
    await batcher.close()
    await asyncio.wait_for(runner, 5)
    await broker.close()


async def test_an_updates_message_is_capped_in_bytes_as_well_as_events() -> None:
    ns = fresh_namespace("batcher")
    broker = GatedBroker(f"memory://{ns}", namespace=ns)
    await broker.connect()
    consumer = await broker.consume(RELAY_QUEUE, prefetch=1)
    batcher = UpdateBatcher(broker, consumer, CompletedCache())
    big = Payload("application/octet-stream", os.urandom(1024 * 1024))  # base64: ~1.4 MB
    sent = [dataclasses.replace(completion(), output=big) for _ in range(12)]
    for event in sent:
        batcher.add(event)
    runner = asyncio.create_task(batcher.run())
    broker.gate.set()
    await asyncio.wait_for(batcher.drain(), 10)
    assert max(broker.sizes) <= MAX_MESSAGE_BYTES
    assert len(broker.sizes) >= 12 * 1024 * 1024 * 4 // 3 // MAX_MESSAGE_BYTES
    await consumer.close()
    events = await relayed_events(broker, len(sent))
    assert sorted(e.id for e in events) == sorted(e.id for e in sent)
    await batcher.close()
    await asyncio.wait_for(runner, 5)
    await broker.close()


async def test_an_event_too_big_to_travel_alone_still_delivers_its_outcome() -> None:
    """A text output that JSON escaping makes bigger than a message may be (NUL bytes become
    six characters each) completes the task as OutputTooLarge instead of wedging the batcher."""
    ns = fresh_namespace("batcher")
    broker = GatedBroker(f"memory://{ns}", namespace=ns)
    await broker.connect()
    broker.gate.set()
    consumer = await broker.consume(RELAY_QUEUE, prefetch=1)
    batcher = UpdateBatcher(broker, consumer, CompletedCache())
    runner = asyncio.create_task(batcher.run())
    escaped = Payload("text/plain", b"\x00" * (2 * 1024 * 1024))  # ~12 MB of JSON
    event = dataclasses.replace(completion(), output=escaped)
    batcher.add(event)
    await asyncio.wait_for(batcher.drain(), 10)
    assert max(broker.sizes) <= MAX_MESSAGE_BYTES
    await consumer.close()
    (sent,) = await relayed_events(broker, 1)
    assert sent.id == event.id
    assert sent.is_error
    assert sent.output is None
    assert sent.error is not None
    assert sent.error.type == "OutputTooLarge"
    assert "over the limit" in sent.error.message
    await batcher.close()
    await asyncio.wait_for(runner, 5)
    await broker.close()
