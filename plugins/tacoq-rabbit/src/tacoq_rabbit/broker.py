"""The RabbitMQ broker: ``amqp://`` and ``amqps://`` (docs/architecture.md, "Contracts";
``docs/wire-format.md``).

Publishing: an ``assign`` goes to the task exchange with its worker kind's routing key (the
worker queue and the relay's queue are both bound to it); ``updates`` go with the routing key
``relay``. A delayed message goes to the delay exchange (a rung queue, then back to the task
exchange with its routing key and priority); a delayed assignment is also copied to the relay at
once so the task shows ``PENDING`` from the start. Every publish is persistent and returns once
confirmed; many may be in flight on one channel.

Direct replies: a publisher's reply queue is a non-durable queue with ``x-expires``, bound to
the task exchange with its own routing key; an ``updates`` message published with ``reply_to``
carries those keys in a ``BCC`` header, so RabbitMQ routes the one message to the relay's queue
and to those reply queues, and removes the header before delivery.

Control messages (workers online): :meth:`RabbitBroker.send_control` publishes through the default
exchange straight into the namespace's control queue (``<namespace>.control``, bounded; see
:meth:`~tacoq_rabbit.topology.Topology.control`), never routed to the relay's or a worker's
queue: persistent without a ``ttl``, transient with an ``expiration`` with one.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Collection, Sequence

import aiormq.abc
from pamqp import commands as spec

from tacoq.contracts.broker import (
    CONTROL_QUEUE,
    DEAD_LETTER_QUEUE,
    RELAY_QUEUE,
    Broker,
    DeadLetter,
    Health,
    check_not_connected,
    priority_level,
    reply_queue,
    worker_kind_of,
)
from tacoq.errors import TacoqError
from tacoq.model.wire import EVENT_ASSIGN, H_EVENT, H_WORKER_KIND, Envelope, check_reply_address
from tacoq_rabbit import namespace as maintenance
from tacoq_rabbit.codec import (
    control_fields,
    envelope_from,
    header_text,
    outgoing,
    property_fields,
)
from tacoq_rabbit.consumer import RabbitConsumer
from tacoq_rabbit.link import RETRYABLE_ERRORS, Link, describe
from tacoq_rabbit.settings import parse_url
from tacoq_rabbit.topology import (
    H_ORIGIN,
    H_REASON,
    H_TASK_COMPLETED,
    RELAY_ROUTING_KEY,
    REPLY_QUEUE_EXPIRES_MS,
    Topology,
)

__all__ = ["PUBLISH_WINDOW", "RabbitBroker"]

_HEALTH_ERRORS: tuple[type[BaseException], ...] = (*RETRYABLE_ERRORS, TacoqError)

#: How many confirms ``publish_many`` keeps in flight.
PUBLISH_WINDOW = 256


def _check_prefetch(prefetch: int) -> None:
    if isinstance(prefetch, bool) or not isinstance(prefetch, int) or prefetch < 1:
        raise ValueError(f"prefetch must be a positive integer, got {prefetch!r}")


def _level(priority: int) -> int:
    if isinstance(priority, bool) or not isinstance(priority, int):
        raise ValueError(f"priority must be an integer between 0 and 255, got {priority!r}")
    return priority_level(priority)


class RabbitBroker(Broker):
    """A RabbitMQ client in one namespace (aio-pika's transport, aiormq, underneath).

    Options come from the URL's query string or the constructor (which wins):
    ``publish_timeout`` (seconds a publish waits for its confirm, reconnection included;
    default 30), ``connect_timeout`` (seconds ``connect`` keeps trying; default 10) and
    ``max_backoff`` (longest pause between reconnection attempts; default 5). Other query
    parameters (``heartbeat``, ``name``, TLS options) go to the AMQP client.
    """

    scheme = "amqp"
    in_process = False
    supports_replies = True
    supports_control = True

    def __init__(
        self,
        url: str,
        *,
        namespace: str,
        publish_timeout: float | None = None,
        connect_timeout: float | None = None,
    ) -> None:
        super().__init__(url, namespace=namespace)
        self.settings = parse_url(
            url,
            connection_name=f"tacoq {namespace}",
            publish_timeout=publish_timeout,
            connect_timeout=connect_timeout,
        )
        self.topology = Topology(namespace)
        self._link: Link | None = None
        self._consumers: set[RabbitConsumer] = set()

    def __repr__(self) -> str:
        return f"RabbitBroker({self.settings.display_url!r}, namespace={self.namespace!r})"

    @property
    def link(self) -> Link:
        """The supervised connection (raises when not connected)."""
        if self._link is None or self._link.closed:
            raise TacoqError(f"{self!r} is not connected; call connect() first")
        return self._link

    async def connect(self) -> None:
        """Connect (retrying up to ``connect_timeout``) and declare the namespace's topology."""
        if self._link is not None and not self._link.closed:
            return
        link = Link(self.settings, self.topology)
        await link.open()
        self._link = link

    # -- publishing --------------------------------------------------------------------------

    def _route(self, envelope: Envelope) -> tuple[str, str | None]:
        headers = envelope.headers
        if headers.get(H_EVENT) == EVENT_ASSIGN:
            kind = headers.get(H_WORKER_KIND)
            if kind:
                return self.topology.worker_routing_key(kind), kind
        return RELAY_ROUTING_KEY, None

    async def publish(
        self,
        envelope: Envelope,
        *,
        priority: int = 0,
        delay: float | None = None,
        reply_to: Sequence[str] = (),
    ) -> None:
        """Publish persistently; return once confirmed (see the class and module docs)."""
        level = _level(priority)
        link = self.link
        routing_key, kind = self._route(envelope)
        if kind is not None and kind not in link.kinds:
            await link.declare_worker(kind)
        fields = property_fields(envelope, level)
        if reply_to:
            fields["headers"]["BCC"] = [
                self.topology.reply_routing_key(check_reply_address(a)) for a in reply_to
            ]
        body = envelope.body
        messages, rung = outgoing(
            self.topology, routing_key, fields, delay=delay, relay_copy=kind is not None
        )
        if rung is not None:
            await link.declare_rung(rung)
        if len(messages) == 1:
            (only,) = messages
            properties = spec.Basic.Properties(**only.fields)
            await link.publish(only.exchange, only.routing_key, body, properties)
            return
        await asyncio.gather(
            *(
                link.publish(m.exchange, m.routing_key, body, spec.Basic.Properties(**m.fields))
                for m in messages
            )
        )

    async def publish_many(self, items: Sequence[tuple[Envelope, int]]) -> None:
        """Publish several ``(envelope, priority)`` pairs with up to 256 confirms in flight."""
        for start in range(0, len(items), PUBLISH_WINDOW):
            window = items[start : start + PUBLISH_WINDOW]
            await asyncio.gather(*(self.publish(e, priority=p) for e, p in window))

    async def republish(self, queue: str, envelope: Envelope, *, priority: int = 0) -> None:
        """Publish straight into the logical ``queue`` through the default exchange (no relay
        copy), persistently; return once confirmed."""
        physical = self.topology.physical_queue(queue)
        kind = worker_kind_of(queue)
        if kind is not None and kind not in self.link.kinds:
            await self.link.declare_worker(kind)
        properties = spec.Basic.Properties(**property_fields(envelope, _level(priority)))
        await self.link.publish("", physical, envelope.body, properties)

    async def send_control(self, envelope: Envelope, *, ttl: float | None = None) -> None:
        """Publish a control message straight into the control queue (default exchange);
        return once confirmed. ``ttl`` ``None``: persistent (``delivery_mode`` 2). A ``ttl`` in
        seconds: transient (``delivery_mode`` 1) with ``expiration`` = ``ttl`` in milliseconds,
        rounded up, so RabbitMQ drops it unread once it waited that long. Raises
        :class:`ValueError` for a negative, non-finite or too long (over ~49.7 days) ``ttl``."""
        properties = spec.Basic.Properties(**control_fields(envelope, ttl))
        link = self.link
        await link.publish("", self.topology.control_queue, envelope.body, properties)

    async def declare_worker_queue(self, worker_kind: str) -> None:
        """Declare the queue of ``worker_kind`` (priority levels) and the relay's binding."""
        await self.link.declare_worker(worker_kind)

    # -- consuming ---------------------------------------------------------------------------

    async def consume(self, queue: str, *, prefetch: int) -> RabbitConsumer:
        """Consume a logical queue with ``basic.qos`` ``prefetch``.

        Deliveries are counted (a redelivered one is republished with ``tacoq-deliveries``
        first) on worker queues only; the relay's, dead-letter and control queues hand a
        redelivered message out as it is (a requeued or redelivered heartbeat keeps its
        expiration)."""
        _check_prefetch(prefetch)
        physical = self.topology.physical_queue(queue)
        kind = worker_kind_of(queue)
        if kind is not None:
            await self.link.declare_worker(kind)
        consumer = RabbitConsumer(
            self.link,
            queue,
            physical,
            prefetch,
            count_deliveries=queue not in (RELAY_QUEUE, DEAD_LETTER_QUEUE, CONTROL_QUEUE),
        )
        await consumer.start()
        self._consumers.add(consumer)
        return consumer

    async def open_replies(self, address: str, *, prefetch: int = 1000) -> RabbitConsumer:
        """Consume the reply queue of ``address``: non-durable, declared again on every
        resubscription, deleted by RabbitMQ a minute after its consumer is gone; consumed
        without acks (a reply is best effort), so settling a reply sends nothing."""
        _check_prefetch(prefetch)
        physical = self.topology.reply_queue(check_reply_address(address))

        key = self.topology.reply_routing_key(address)
        exchange = self.topology.tasks_exchange

        async def declare(channel: aiormq.abc.AbstractChannel) -> None:
            await channel.queue_declare(
                physical, durable=False, arguments={"x-expires": REPLY_QUEUE_EXPIRES_MS}
            )
            await channel.queue_bind(physical, exchange, routing_key=key)

        consumer = RabbitConsumer(
            self.link,
            reply_queue(address),
            physical,
            prefetch,
            count_deliveries=False,
            declare=declare,
            auto_ack=True,
        )
        await consumer.start()
        self._consumers.add(consumer)
        return consumer

    async def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        """Browse the dead-letter queue: ``basic.get`` without ack, then close the channel so
        RabbitMQ puts every message back where it was."""
        if limit <= 0:
            return []
        connection = await self.link.connection()
        channel = await connection.channel(publisher_confirms=False)
        found: list[DeadLetter] = []
        try:
            while len(found) < limit:
                message = await channel.basic_get(self.topology.dead_queue, no_ack=False)
                if not isinstance(message.delivery, spec.Basic.GetOk):
                    break
                properties = message.header.properties
                headers = properties.headers or {}
                envelope = envelope_from(headers, properties.content_type, message.body)
                origin = header_text(headers.get(H_ORIGIN, ""))
                reason = header_text(headers.get(H_REASON, ""))
                completed = header_text(headers.get(H_TASK_COMPLETED, "")) == "1"
                found.append(DeadLetter(origin, reason, envelope, completed))
        finally:
            with contextlib.suppress(Exception):
                await channel.close()
        return found

    # -- namespace maintenance (a connection of its own: tacoq_rabbit.namespace) ----------------

    async def consumer_count(self, queue: str) -> int | None:
        """Consumers of the logical ``queue`` now (``None`` when it does not exist), asked with
        a passive declare on a connection of its own (nothing is created)."""
        physical = self.topology.physical_queue(queue)
        return await maintenance.consumer_count(self.settings, physical)

    async def delete_namespace(self, worker_kinds: Collection[str] = ()) -> list[str]:
        """Delete the namespace's queues that exist (the relay's, the dead-letter queue, the
        control queue, the delay rungs, the worker queue of each of ``worker_kinds``) and its
        exchanges."""
        check_not_connected(self._link is not None, repr(self))
        return await maintenance.delete_namespace(self.settings, self.namespace, worker_kinds)

    async def health(self) -> Health:
        """Healthy when a fresh channel opens within 5 s; the detail never shows a password."""
        where = f"RabbitMQ at {self.settings.display_url} (namespace {self.namespace})"
        if self._link is None or self._link.closed:
            return Health(False, f"not connected to {where}")
        link = self._link
        if not link.ready.is_set():
            return Health(False, f"reconnecting to {where}: {link.last_error or 'connection lost'}")
        try:
            async with asyncio.timeout(5.0):
                connection = await link.connection(5.0)
                channel = await connection.channel(publisher_confirms=False)
                await channel.close()
        except _HEALTH_ERRORS as exc:
            return Health(False, f"{where} does not answer: {describe(exc)}")
        return Health(True, f"connected to {where}")

    async def close(self) -> None:
        """Close every consumer (unsettled messages are redelivered), then the connection."""
        consumers, self._consumers = list(self._consumers), set()
        for consumer in consumers:
            await consumer.close()
        if self._link is not None:
            await self._link.close()
            self._link = None
