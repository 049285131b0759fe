"""Gathering a worker's status updates into few confirmed messages.

A busy worker finishes many tasks within a few milliseconds; the batcher sends their events as
one ``updates`` message, waits for the broker's confirm, and only then acknowledges the
assignments that those events complete (at-least-once). An idle worker's single event is sent
at once: the flusher wakes as soon as something is added, so batching costs no latency.

A completion whose task asked for a direct reply carries the publisher's reply address; the
message that holds it is published with those addresses (``reply_to``), so the broker copies
that one message to the reply queues too: replies cost no message of their own.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import replace
from uuid import UUID

from tacoq.contracts.broker import Broker, Consumer, Delivery
from tacoq.errors import PublishError
from tacoq.model.task import ErrorInfo, TaskEvent
from tacoq.model.wire import encode_updates

__all__ = ["MAX_MESSAGE_BYTES", "CompletedCache", "UpdateBatcher"]

log = logging.getLogger("tacoq.worker")

#: Most events in one updates message.
MAX_EVENTS_PER_MESSAGE = 500
#: Most bytes of one updates message: far below RabbitMQ's ``max_message_size`` (128 MiB by
#: default), above any single event (outputs are capped at ``max_payload_bytes``, 1 MiB by
#: default, error texts at 64 Ki characters each).
MAX_MESSAGE_BYTES = 8 * 1024 * 1024
#: Most updates messages waiting for their confirms at once.
MESSAGES_IN_FLIGHT = 2
#: A message this small may go out while another (as small) waits for its confirm.
EAGER_EVENTS = 8
#: The first pause (seconds) after a failed publish; it doubles up to 2 s.
BACKOFF_START = 0.05


def _estimate(event: TaskEvent) -> int:
    """A generous estimate of an event's bytes in an updates message (JSON escaping of text
    outputs and base64 of binary ones included)."""
    size = 400
    if event.output is not None:
        size += 2 * len(event.output.data)
    if event.error is not None:
        size += 2 * (len(event.error.message) + len(event.error.traceback or ""))
    return size


def _fitting(pending: Sequence[tuple[TaskEvent, Delivery | None, str | None]]) -> int:
    """How many of the first pending events go in the next message: at most
    :data:`MAX_EVENTS_PER_MESSAGE`, and (by estimate) at most :data:`MAX_MESSAGE_BYTES`."""
    total = 0
    for count, (event, _, _) in enumerate(pending[:MAX_EVENTS_PER_MESSAGE]):
        total += _estimate(event)
        if total > MAX_MESSAGE_BYTES and count:
            return count
    return min(len(pending), MAX_EVENTS_PER_MESSAGE)


def _too_large(event: TaskEvent, size: int) -> TaskEvent:
    """``event`` as an ``OutputTooLarge`` failure: its message would be ``size`` bytes."""
    error = ErrorInfo(
        "OutputTooLarge",
        f"the update carrying the output of task {event.task_kind!r} would be {size:,} bytes, "
        f"over the limit of {MAX_MESSAGE_BYTES:,} bytes of an updates message",
    )
    return replace(event, output=None, is_error=True, error=error)


class CompletedCache:
    """The last completions this worker confirmed, to answer a redelivered task without
    running it again (after a reconnect an ack may be lost; the task comes back)."""

    def __init__(self, size: int = 10_000) -> None:
        self.size = size
        self._events: OrderedDict[UUID, TaskEvent] = OrderedDict()

    def add(self, event: TaskEvent) -> None:
        """Remember a confirmed completion."""
        self._events[event.id] = event
        if len(self._events) > self.size:
            self._events.popitem(last=False)

    def get(self, task_id: UUID, attempt: int) -> TaskEvent | None:
        """The confirmed completion of this attempt, if this worker sent one."""
        event = self._events.get(task_id)
        return event if event is not None and event.attempt == attempt else None


class UpdateBatcher:
    """Collects events (with the deliveries they settle) and flushes them as updates."""

    def __init__(self, broker: Broker, consumer: Consumer, cache: CompletedCache) -> None:
        self.broker = broker
        self.consumer = consumer
        self.cache = cache
        self._pending: list[tuple[TaskEvent, Delivery | None, str | None]] = []
        # completions added but not confirmed yet, by (id, attempt)
        self._unconfirmed: dict[tuple[UUID, int], TaskEvent] = {}
        # updates messages waiting for their confirm -> how many events each carries
        self._in_flight: dict[asyncio.Task[None], int] = {}
        self._wakeup = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._closing = False
        self._backoff = BACKOFF_START / 2
        self.messages_sent = 0

    def add(
        self, event: TaskEvent, delivery: Delivery | None = None, *, reply_to: str | None = None
    ) -> None:
        """Queue an event; ``delivery`` is acked once the event's message is confirmed, and the
        message is copied to the reply queue of ``reply_to`` (a publisher's reply address)."""
        self._pending.append((event, delivery, reply_to))
        if event.completed_at is not None:
            self._unconfirmed.setdefault((event.id, event.attempt), event)
        self._idle.clear()
        if self._can_send():  # else a landing confirm wakes the flusher: no wakeup per event
            self._wakeup.set()

    def _can_send(self) -> bool:
        """Whether :meth:`run` may publish what is pending now (see its docstring)."""
        in_flight = self._in_flight
        return bool(self._pending) and (
            not in_flight
            or (
                len(in_flight) < MESSAGES_IN_FLIGHT
                and len(self._pending) <= EAGER_EVENTS
                and max(in_flight.values()) <= EAGER_EVENTS
            )
        )

    async def run(self) -> None:
        """Flush until :meth:`close` is called and everything queued has been sent.

        One message waits for its confirm at a time, and events gather meanwhile: under load
        that is what makes messages big. A second message may go out while the first waits only
        when both are small (at most :data:`EAGER_EVENTS` events): a lightly loaded worker's
        completion then never queues behind the confirm of the previous one (a broker confirms
        a persistent message once it is on disk).
        """
        in_flight = self._in_flight

        def landed(job: asyncio.Task[None]) -> None:
            in_flight.pop(job, None)
            self._wakeup.set()

        while True:
            pending = self._pending
            if self._can_send():
                chunk = pending[: _fitting(pending)]
                del pending[: len(chunk)]
                job = asyncio.create_task(self._send(chunk))
                in_flight[job] = len(chunk)
                job.add_done_callback(landed)
                continue
            if not pending and not in_flight:
                self._idle.set()
                if self._closing:
                    return
            await self._wakeup.wait()
            self._wakeup.clear()

    async def _send(self, chunk: list[tuple[TaskEvent, Delivery | None, str | None]]) -> None:
        """Publish one chunk; once confirmed, ack its deliveries. On failure it goes back to
        the front of the queue after a pause (events merge in any order). A chunk whose message
        would be over :data:`MAX_MESSAGE_BYTES` sends its first half and puts the rest back."""
        message = encode_updates([event for event, _, _ in chunk])
        while len(message.body) > MAX_MESSAGE_BYTES:
            if len(chunk) > 1:
                half = len(chunk) // 2
                self._pending[:0] = chunk[half:]
                chunk = chunk[:half]
            else:  # one event alone is too big to travel: its outcome still must
                event, delivery, reply = chunk[0]
                chunk = [(_too_large(event, len(message.body)), delivery, reply)]
            message = encode_updates([event for event, _, _ in chunk])
        replies = sorted({address for _, _, address in chunk if address})
        try:
            if replies:
                await self.broker.publish(message, reply_to=replies)
            else:
                await self.broker.publish(message)
        except Exception as exc:  # PublishError, or anything unexpected: never stop
            level = logging.WARNING if isinstance(exc, PublishError) else logging.ERROR
            log.log(level, "publishing %d updates failed (%s); retrying", len(chunk), exc)
            self._backoff = min(self._backoff * 2, 2.0)
            await asyncio.sleep(self._backoff)
            self._pending[:0] = chunk
            return
        self._backoff = BACKOFF_START / 2
        self.messages_sent += 1
        deliveries = [delivery for _, delivery, _ in chunk if delivery is not None]
        if deliveries:
            await self._ack(deliveries)
        for event, _, _ in chunk:
            if event.completed_at is not None:
                self.cache.add(event)
                self._unconfirmed.pop((event.id, event.attempt), None)

    def completion(self, task_id: UUID, attempt: int) -> TaskEvent | None:
        """This worker's completion of that attempt: confirmed (cached) or still being sent.

        A redelivered assignment answered with it is acked once it is confirmed, instead of
        running the handler again (a reconnect can redeliver a task whose completion is queued
        here, waiting for the broker to come back).
        """
        return self.cache.get(task_id, attempt) or self._unconfirmed.get((task_id, attempt))

    async def _ack(self, deliveries: Sequence[Delivery]) -> None:
        try:
            await self.consumer.ack_many(deliveries)
        except Exception as exc:  # a lost channel: the broker will redeliver (at-least-once)
            log.info(
                "acking %d deliveries failed (%s); they will be redelivered", len(deliveries), exc
            )

    async def drain(self) -> None:
        """Wait until everything added so far has been confirmed and acked."""
        await self._idle.wait()

    async def close(self) -> None:
        """Ask :meth:`run` to return once the queue is empty."""
        self._closing = True
        self._wakeup.set()
