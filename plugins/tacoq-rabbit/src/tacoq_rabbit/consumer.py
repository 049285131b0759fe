"""Consuming one queue: deliveries, settlement, delivery counting and resubscription.

The consume callback builds a light :class:`RabbitDelivery` and puts it on an
:class:`asyncio.Queue` (no task of our own per message). ``basic.qos`` bounds the unsettled
deliveries to ``prefetch``. Acks do not wait for a round trip; :meth:`RabbitConsumer.ack_many`
sends one ``multiple`` ack for the longest run of delivery tags it settles and single acks for
the rest.

Delivery counting on classic queues (which only flag ``redelivered``): a message copy carries
``tacoq-deliveries`` = deliveries before it. On a worker queue, a message that arrives with
``redelivered`` set is not handed out: a copy with the count incremented is published to the same
queue (confirmed) and the original acked, so the count survives the consumer that dies on it; the
copy joins the back of its priority level. ``requeue`` works the same way. On the relay's queue
redelivered messages are handed out as they are (count = carried + 2, a lower bound): the relay
applies batches idempotently and never uses the count.

After a reconnect a delivery's channel is gone: settling it logs that the message will be
redelivered and returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

import aiormq.abc
from pamqp import commands as spec

from tacoq.contracts.broker import DEAD_LETTER_QUEUE, Consumer, DeadLetter, Delivery
from tacoq.errors import TacoqError
from tacoq.model.wire import H_DEAD_LETTER_ID
from tacoq_rabbit.codec import (
    PERSISTENT,
    ROUTING_HEADERS,
    TRANSIENT,
    envelope_from,
    header_text,
    previous_deliveries,
)
from tacoq_rabbit.link import CONNECTION_ERRORS, describe
from tacoq_rabbit.tolerant import storable
from tacoq_rabbit.topology import H_DELIVERIES, H_ORIGIN, H_REASON, H_TASK_COMPLETED

if TYPE_CHECKING:
    from tacoq_rabbit.link import Link

__all__ = ["RabbitConsumer", "RabbitDelivery"]

log = logging.getLogger("tacoq.rabbit")
_MAX_REASON = 1000


class RabbitDelivery(Delivery):
    """One delivered message; the first settle wins, later ones are no-ops."""

    __slots__ = ("_consumer", "_message", "channel", "dead_lettered", "settled", "tag")

    def __init__(
        self,
        consumer: RabbitConsumer,
        message: aiormq.abc.DeliveredMessage,
        tag: int,
        previous: int,
        redelivered: bool,
    ) -> None:
        self._consumer = consumer
        self._message = message
        self.channel = message.channel
        self.tag = tag
        self.settled = False
        properties = message.header.properties
        self.envelope = envelope_from(properties.headers, properties.content_type, message.body)
        self.delivery_count = previous + (2 if redelivered else 1)
        self.redelivered = redelivered or previous > 0
        self.dead_lettered: DeadLetter | None = None
        if consumer.logical == DEAD_LETTER_QUEUE:
            headers = properties.headers or {}
            self.dead_lettered = DeadLetter(
                queue=header_text(headers.get(H_ORIGIN, "")),
                reason=header_text(headers.get(H_REASON, "")),
                envelope=self.envelope,
                task_completed=header_text(headers.get(H_TASK_COMPLETED, "")) == "1",
            )

    async def ack(self) -> None:
        """The message is done and leaves the queue (a no-op after a reconnect: see above)."""
        await self._consumer._ack_one(self)

    async def requeue(self) -> None:
        """Back to its queue (at the back of its priority level), counted as a delivery."""
        await self._consumer._hand_on(self)

    async def dead_letter(self, reason: str, *, task_completed: bool = False) -> None:
        """A confirmed copy with ``tacoq-reason`` goes to the dead-letter queue, then ack."""
        await self._consumer._dead_letter(self, reason, task_completed)

    def __repr__(self) -> str:
        return f"RabbitDelivery({self._consumer.logical!r}, count={self.delivery_count})"


class RabbitConsumer(Consumer):
    """A subscription to one queue on its own channel, resubscribed after a reconnect."""

    def __init__(
        self,
        link: Link,
        logical: str,
        physical: str,
        prefetch: int,
        *,
        count_deliveries: bool,
        declare: Callable[[aiormq.abc.AbstractChannel], Awaitable[Any]] | None = None,
        auto_ack: bool = False,
    ) -> None:
        self.link = link
        #: RabbitMQ settles each message as it sends it (reply queues: a reply is best effort);
        #: every delivery is born settled, so settling it again sends nothing.
        self.auto_ack = auto_ack
        #: Declares the queue on each (re)subscription: a transient reply queue may be gone.
        self.declare = declare
        self.logical = logical
        self.physical = physical
        self.prefetch = prefetch
        self.count_deliveries = count_deliveries
        self._buffer: asyncio.Queue[RabbitDelivery] = asyncio.Queue()
        self._channel: aiormq.abc.AbstractChannel | None = None
        self._unsettled: dict[int, None] = {}
        self._tag = f"tacoq-{uuid.uuid4().hex[:16]}"
        self._closed = False
        self._cancelled = False
        self._watcher: asyncio.Task[None] | None = None
        self._side_jobs: set[asyncio.Task[None]] = set()

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return self._closed

    def __repr__(self) -> str:
        return f"RabbitConsumer({self.logical!r}, prefetch={self.prefetch})"

    # -- subscription ------------------------------------------------------------------------

    async def start(self) -> None:
        """Subscribe, then watch the channel to resubscribe after it is lost."""
        await self._subscribe()
        self._watcher = asyncio.create_task(self._watch(), name=f"tacoq-consume-{self.logical}")

    async def _subscribe(self) -> None:
        connection = await self.link.connection()
        # aiormq hands a channel's frames over through a queue of 10 by default: the
        # connection's reader then waits for this channel's reader every few deliveries, so
        # frames behind them (the confirm of the updates a worker published, which its acks
        # wait for) queue behind the processing of every delivery ahead. ``prefetch`` bounds
        # what an acking consumer can receive, so its queue need not be bounded too (0: no
        # bound); an auto-ack consumer (no prefetch applies) keeps the bounded one.
        frame_buffer = connection.FRAME_BUFFER_SIZE if self.auto_ack else 0
        channel = await connection.channel(publisher_confirms=False, frame_buffer_size=frame_buffer)
        try:
            if self.declare is not None:
                await self.declare(channel)
            await channel.basic_qos(prefetch_count=self.prefetch)
            self._channel, self._unsettled = channel, {}
            await channel.basic_consume(
                self.physical, self._on_message, consumer_tag=self._tag, no_ack=self.auto_ack
            )
        except BaseException:
            with contextlib.suppress(Exception):
                await channel.close()
            raise

    async def _watch(self) -> None:
        while not self._closed:
            channel = self._channel
            assert channel is not None
            try:
                await channel.closing
            except asyncio.CancelledError:
                if self.closed:
                    raise
            except Exception:  # closed with an error: that is what we waited for
                pass
            if self.closed or self._cancelled:
                return
            self._drop_buffered(channel)
            delay = 0.1
            while not self._closed:
                try:
                    await self._subscribe()
                    log.info("consuming %s again after a reconnect", self.logical)
                    break
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    log.info("resubscribing to %s failed (%s); retrying", self.logical, exc)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, self.link.settings.max_backoff)

    def _drop_buffered(self, channel: aiormq.abc.AbstractChannel) -> None:
        """Forget buffered deliveries of a lost channel: RabbitMQ redelivers them."""
        kept = []
        while not self._buffer.empty():
            delivery = self._buffer.get_nowait()
            if delivery.channel is not channel:
                kept.append(delivery)
        for delivery in kept:
            self._buffer.put_nowait(delivery)

    async def _on_message(self, message: aiormq.abc.DeliveredMessage) -> None:
        frame = message.delivery
        assert isinstance(frame, spec.Basic.Deliver)
        tag = frame.delivery_tag or 0
        if self.auto_ack:
            delivery = RabbitDelivery(self, message, tag, 0, False)
            delivery.settled = True
            self._buffer.put_nowait(delivery)
            return
        if message.channel is self._channel:
            self._unsettled[tag] = None
        previous = previous_deliveries(message.header.properties.headers)
        delivery = RabbitDelivery(self, message, tag, previous, bool(frame.redelivered))
        if frame.redelivered and self.count_deliveries:
            job = asyncio.create_task(self._hand_on(delivery))  # rare: only redeliveries
            self._side_jobs.add(job)
            job.add_done_callback(self._side_jobs.discard)
            return
        self._buffer.put_nowait(delivery)

    # -- getting -----------------------------------------------------------------------------

    async def get(self) -> RabbitDelivery:
        """Wait for the next delivery."""
        if self._closed:
            raise TacoqError(f"the consumer of {self.logical!r} is closed")
        return await self._buffer.get()

    def get_nowait(self) -> RabbitDelivery | None:
        """The next delivery already received, or ``None``."""
        try:
            return self._buffer.get_nowait()
        except asyncio.QueueEmpty:
            return None

    # -- settling ----------------------------------------------------------------------------

    def _claim(self, delivery: RabbitDelivery) -> bool:
        """Mark ``delivery`` settled; False when it was settled before or its channel is gone."""
        if delivery.settled:
            return False
        delivery.settled = True
        channel = delivery.channel
        if channel.is_closed or channel is not self._channel:
            log.info(
                "cannot settle a delivery from %s: its channel was lost (reconnect); "
                "RabbitMQ will redeliver it",
                self.logical,
            )
            return False
        self._unsettled.pop(delivery.tag, None)
        return True

    async def _basic_ack(
        self, channel: aiormq.abc.AbstractChannel, tag: int, multiple: bool
    ) -> None:
        try:
            await channel.basic_ack(tag, multiple=multiple, wait=False)
        except CONNECTION_ERRORS as exc:
            log.info("ack on %s failed (%s); it will be redelivered", self.logical, describe(exc))

    async def _ack_one(self, delivery: RabbitDelivery) -> None:
        if self._claim(delivery):
            await self._basic_ack(delivery.channel, delivery.tag, False)

    async def ack_many(self, deliveries: Sequence[Delivery]) -> None:
        """Ack several deliveries: one ``multiple`` ack for the leading run, then singles."""
        channel = self._channel
        tags: set[int] = set()
        for delivery in deliveries:
            if not isinstance(delivery, RabbitDelivery) or delivery._consumer is not self:
                await delivery.ack()
            elif not delivery.settled:
                if delivery.channel is channel and channel is not None and not channel.is_closed:
                    delivery.settled = True
                    tags.add(delivery.tag)
                else:
                    self._claim(delivery)  # logs "will be redelivered"
        if not tags or channel is None:
            return
        top = None
        for tag in self._unsettled:  # insertion order is delivery order
            if tag not in tags:
                break
            top = tag
        if top is not None:
            while self._unsettled:
                tag = next(iter(self._unsettled))
                if tag > top:
                    break
                del self._unsettled[tag]
                tags.discard(tag)
            await self._basic_ack(channel, top, True)
        for tag in sorted(tags):
            self._unsettled.pop(tag, None)
            await self._basic_ack(channel, tag, False)

    async def _publish_copy(
        self,
        delivery: RabbitDelivery,
        exchange: str,
        routing_key: str,
        extra: dict[str, Any],
        *,
        keep_expiration: bool = False,
    ) -> None:
        original = delivery._message.header.properties
        headers: dict[str, Any] = {
            k: v for k, v in (original.headers or {}).items() if k not in ROUTING_HEADERS
        }
        headers.update(extra)
        # A copy back into the same queue keeps a transient message transient and expiring (a
        # requeued heartbeat; its ttl starts again): the copy of a message that expires must
        # not outlive it. A dead letter is kept, persistent.
        expiration = original.expiration if keep_expiration else None
        transient = expiration is not None and original.delivery_mode == TRANSIENT
        # storable(): what the tolerant decoder kept of invalid UTF-8 must encode again.
        properties = spec.Basic.Properties(
            content_type=storable(original.content_type),
            delivery_mode=TRANSIENT if transient else PERSISTENT,
            priority=original.priority if isinstance(original.priority, int) else None,
            message_id=storable(original.message_id),
            expiration=storable(expiration),
            headers=storable(headers),
        )
        await self.link.publish(exchange, routing_key, delivery._message.body, properties)

    async def _hand_on(self, delivery: RabbitDelivery) -> None:
        """Publish a copy counting one more delivery to the same queue, then ack this one."""
        if delivery.settled:
            return
        count = previous_deliveries(delivery._message.header.properties.headers)
        try:
            await self._publish_copy(
                delivery, "", self.physical, {H_DELIVERIES: str(count + 1)}, keep_expiration=True
            )
        except Exception as exc:
            log.warning("could not requeue a delivery of %s (%s)", self.logical, describe(exc))
            if self._claim(delivery):
                with contextlib.suppress(*CONNECTION_ERRORS):
                    await delivery.channel.basic_reject(delivery.tag, requeue=True, wait=False)
            return
        await self._ack_one(delivery)

    async def _dead_letter(
        self, delivery: RabbitDelivery, reason: str, task_completed: bool
    ) -> None:
        if delivery.settled:
            return
        extra: dict[str, Any] = {H_REASON: reason[:_MAX_REASON], H_ORIGIN: self.logical}
        if H_DEAD_LETTER_ID not in delivery.envelope.headers:
            extra[H_DEAD_LETTER_ID] = str(uuid.uuid4())
        if task_completed:
            extra[H_TASK_COMPLETED] = "1"
        await self._publish_copy(delivery, self.link.topology.dead_exchange, "", extra)
        await self._ack_one(delivery)

    # -- closing -----------------------------------------------------------------------------

    async def cancel(self) -> None:
        """Cancel the subscription (``basic.cancel``) but keep the channel for settling."""
        if self._cancelled or self._closed:
            return
        self._cancelled = True
        channel = self._channel
        if channel is not None and not channel.is_closed:
            try:
                await channel.basic_cancel(self._tag)
            except Exception as exc:  # a lost channel delivers nothing more anyway
                log.info("cancelling the subscription to %s failed (%s)", self.logical, exc)

    async def close(self) -> None:
        """Cancel the subscription and close its channel; unsettled messages are redelivered."""
        if self._closed:
            return
        self._closed = True
        if self._watcher is not None:
            self._watcher.cancel()
            await asyncio.gather(self._watcher, return_exceptions=True)
        for job in list(self._side_jobs):
            job.cancel()
        await asyncio.gather(*self._side_jobs, return_exceptions=True)
        channel = self._channel
        if channel is not None and not channel.is_closed:
            with contextlib.suppress(Exception):
                await channel.basic_cancel(self._tag)
            with contextlib.suppress(Exception):
                await channel.close()
        while not self._buffer.empty():
            self._buffer.get_nowait()
