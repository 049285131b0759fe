"""The broker contract: what every broker plugin implements (docs/architecture.md, "Contracts").

A broker carries :class:`~tacoq.model.wire.Envelope` objects. It routes an ``assign`` envelope to
the queue of its worker kind *and* a copy to the relay's queue, and an ``updates`` envelope to the
relay's queue only. Queue names here are logical (:func:`worker_queue`, :data:`RELAY_QUEUE`);
each broker derives its physical names from its namespace.

All methods are coroutines; factories are cheap and import their heavy client library only when
:meth:`Broker.connect` runs. Namespace maintenance (:meth:`Broker.consumer_count`,
:meth:`Broker.delete_namespace`) works on a broker that is not connected: it opens what it needs,
creates nothing, and closes it (``tacoq namespace delete``, ``tacoq demo``).
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator, Collection, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Protocol, Self

from tacoq.errors import ConfigError, TacoqError
from tacoq.model.wire import Envelope

__all__ = [
    "CONTROL_QUEUE",
    "DEAD_LETTER_QUEUE",
    "DEFAULT_DELIVERY_LIMIT",
    "PRIORITY_LEVELS",
    "RELAY_QUEUE",
    "Broker",
    "BrokerFactory",
    "Consumer",
    "DeadLetter",
    "Delivery",
    "Health",
    "check_not_connected",
    "priority_level",
    "reply_queue",
    "worker_queue",
]

#: Broker priority levels; the API's 0–255 map onto these (docs/architecture.md, "Priorities").
PRIORITY_LEVELS = 10
#: A message delivered more times than this is dead-lettered instead of handled again.
DEFAULT_DELIVERY_LIMIT = 5
#: The logical name of the relay's queue (every assignment copy and every update).
RELAY_QUEUE = "relay"
#: The logical name of the namespace's dead-letter queue. The relay consumes it into the
#: store, which owns dead letters; its deliveries carry :attr:`Delivery.dead_lettered`.
DEAD_LETTER_QUEUE = "dead-letter"
#: The logical name of the control queue: what workers tell the relay about themselves
#: (announcements, heartbeats, goodbyes; docs/workers.md). Only the relay consumes it.
CONTROL_QUEUE = "control"
_WORKER_PREFIX = "worker:"
_REPLY_PREFIX = "reply:"


def priority_level(priority: int) -> int:
    """Map an API priority (0–255) to a broker level (0–9): ``priority * 10 // 256``."""
    if not 0 <= priority <= 255:
        raise ValueError(f"priority must be between 0 and 255, got {priority}")
    return priority * PRIORITY_LEVELS // 256


def worker_queue(worker_kind: str) -> str:
    """The logical name of the queue that feeds workers of ``worker_kind``."""
    return _WORKER_PREFIX + worker_kind


def reply_queue(address: str) -> str:
    """The logical name of the reply queue of a publisher's reply ``address``."""
    return _REPLY_PREFIX + address


def worker_kind_of(queue: str) -> str | None:
    """The worker kind of a logical worker queue name, or ``None`` for the relay's queue."""
    return queue[len(_WORKER_PREFIX) :] if queue.startswith(_WORKER_PREFIX) else None


def check_not_connected(connected: bool, what: str) -> None:
    """Raise :class:`~tacoq.errors.TacoqError` when ``connected``: a namespace is deleted by a
    client that is not connected (a connected one may still declare what is being deleted).
    ``what`` names the client (``the memory broker of namespace 'x'``)."""
    if connected:
        raise TacoqError(f"{what} is connected: close it before deleting its namespace")


@dataclass(frozen=True, slots=True)
class Health:
    """A component's health: ``ok`` and a short, credential-free detail."""

    ok: bool
    detail: str = ""


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A dead-lettered message as the broker keeps it, with the reason it was set aside.

    ``queue`` is the logical queue it came from (its origin). The envelope carries the dead
    letter's id in ``tacoq-dead-letter-id`` (:data:`tacoq.model.wire.H_DEAD_LETTER_ID`).
    ``task_completed`` is True when whoever set it aside already published the task's
    ``COMPLETED`` event (a worker's ``DeadLettered`` completion), so the relay need not.
    """

    queue: str
    reason: str
    envelope: Envelope
    task_completed: bool = False


class Delivery(abc.ABC):
    """One delivered message. Settle it exactly once: ack, requeue or dead-letter."""

    envelope: Envelope
    #: True when the broker delivered this message before (to this or another consumer).
    redelivered: bool
    #: How many times it has been delivered, this time included (1 for a first delivery).
    delivery_count: int
    #: On the dead-letter queue only: where the message came from and why it was set aside.
    dead_lettered: DeadLetter | None = None

    @abc.abstractmethod
    async def ack(self) -> None:
        """Acknowledge: the message is done and leaves the queue.

        After a reconnect the delivery's channel is gone; the ack then fails silently and the
        message will be redelivered (at-least-once).
        """

    @abc.abstractmethod
    async def requeue(self) -> None:
        """Put the message back on its queue for another delivery."""

    @abc.abstractmethod
    async def dead_letter(self, reason: str, *, task_completed: bool = False) -> None:
        """Move the message to the dead-letter queue with ``reason`` (then it is acked).

        The copy keeps the envelope's ``tacoq-dead-letter-id`` header, or gets a new one
        (``str(uuid4())``) when it has none, and records the logical queue it came from.
        ``task_completed=True`` says the task's ``COMPLETED`` event was already published
        (:attr:`DeadLetter.task_completed`).
        """


class Consumer(abc.ABC):
    """A subscription to one queue, with at most ``prefetch`` unsettled deliveries."""

    @abc.abstractmethod
    async def get(self) -> Delivery:
        """Wait for the next delivery."""

    @abc.abstractmethod
    def get_nowait(self) -> Delivery | None:
        """The next delivery already received, or ``None`` when nothing more is waiting."""

    async def ack_many(self, deliveries: Sequence[Delivery]) -> None:
        """Acknowledge several deliveries (brokers may do it in one ``multiple`` ack)."""
        for delivery in deliveries:
            await delivery.ack()

    async def cancel(self) -> None:  # noqa: B027 (optional: a no-op unless push-based)
        """Stop receiving new deliveries, but keep settling the ones already received.

        A stopping worker calls this first, so it is not handed tasks it will never start.
        The default does nothing, which is right for brokers that only deliver on :meth:`get`
        (such as ``memory://``); push-based brokers cancel their subscription here.
        """

    @abc.abstractmethod
    async def close(self) -> None:
        """Stop consuming; unsettled deliveries go back to the queue."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def __aiter__(self) -> AsyncIterator[Delivery]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Delivery]:
        while True:
            yield await self.get()


class Broker(abc.ABC):
    """A connection to a broker in one namespace."""

    #: The URL scheme(s) this broker serves, for messages.
    scheme: str = ""
    #: True when the broker supports direct replies: :meth:`open_replies`, and ``reply_to``
    #: on :meth:`publish`. Workers never pass ``reply_to`` to a broker without it.
    supports_replies: bool = False
    #: True when the broker carries control messages: :meth:`send_control`, and
    #: :data:`CONTROL_QUEUE` for :meth:`consume`. Workers on a broker without it run unseen.
    supports_control: bool = False
    #: True when the broker lives inside this process (``memory://``): separate processes
    #: (``tacoq worker``, ``tacoq relay``) refuse such brokers.
    in_process: bool = False

    def __init__(self, url: str, *, namespace: str) -> None:
        self.url = url
        self.namespace = namespace

    @abc.abstractmethod
    async def connect(self) -> None:
        """Open connections and declare the shared topology (idempotent)."""

    @abc.abstractmethod
    async def publish(
        self,
        envelope: Envelope,
        *,
        priority: int = 0,
        delay: float | None = None,
        reply_to: Sequence[str] = (),
    ) -> None:
        """Publish and return once the broker confirmed it.

        ``priority`` is the API's 0–255; ``delay`` (seconds) holds the message back before it
        is routed. ``reply_to`` (only for ``updates``, only given to brokers that set
        :attr:`supports_replies`) lists reply addresses whose queues also get this message,
        if they still exist (direct replies). Raises :class:`~tacoq.errors.PublishError`
        when not confirmed in time.
        """

    async def publish_many(self, items: Sequence[tuple[Envelope, int]]) -> None:
        """Publish several ``(envelope, priority)`` pairs with many confirms in flight."""
        for envelope, priority in items:
            await self.publish(envelope, priority=priority)

    async def republish(self, queue: str, envelope: Envelope, *, priority: int = 0) -> None:
        """Publish ``envelope`` straight into the logical ``queue`` and return once confirmed.

        No routing happens: nothing else (not the relay) gets a copy. Requeueing a dead letter
        into the relay's queue uses this. Brokers that cannot keep this default, which raises
        :class:`~tacoq.errors.ConfigError`.
        """
        raise ConfigError(f"the {self.scheme or type(self).__name__} broker cannot republish")

    async def send_control(self, envelope: Envelope, *, ttl: float | None = None) -> None:
        """Send a control message to :data:`CONTROL_QUEUE` and return once confirmed.

        ``ttl`` ``None``: persistent, kept until the relay takes it (announcements, goodbyes).
        A ``ttl`` in seconds: transient, and dropped unread once it waited that long
        (heartbeats: a relay that was down gets no backlog of them). Brokers without
        :attr:`supports_control` keep this default, which raises
        :class:`~tacoq.errors.ConfigError`.
        """
        raise ConfigError(
            f"the {self.scheme or type(self).__name__} broker carries no control messages"
        )

    @abc.abstractmethod
    async def declare_worker_queue(self, worker_kind: str) -> None:
        """Make sure the queue of ``worker_kind`` exists, so a task can wait there for a worker."""

    @abc.abstractmethod
    async def consume(self, queue: str, *, prefetch: int) -> Consumer:
        """Start consuming a logical queue (:func:`worker_queue`, :data:`RELAY_QUEUE`,
        :data:`DEAD_LETTER_QUEUE`, or :data:`CONTROL_QUEUE` when :attr:`supports_control`)."""

    async def open_replies(self, address: str, *, prefetch: int = 1000) -> Consumer:
        """Create the private reply queue of ``address`` and consume it (direct replies).

        A publisher calls this once for its own address
        (:func:`tacoq.model.wire.check_reply_address`); workers then publish the updates that
        complete the tasks it published with ``reply=True`` with ``reply_to=[address]``, so a copy
        lands here too. The queue is transient: it need not survive a broker restart, and the
        broker removes it some time after its consumer is gone. Brokers without
        :attr:`supports_replies` keep this default, which raises :class:`~tacoq.errors.ConfigError`.
        """
        raise ConfigError(f"the {self.scheme or type(self).__name__} broker has no direct replies")

    @abc.abstractmethod
    async def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        """The first ``limit`` dead-lettered messages, without removing them."""

    # -- namespace maintenance (connected or not; see the module doc) ----------------------------

    async def consumer_count(self, queue: str) -> int | None:
        """How many consumers the logical ``queue`` of this namespace has now, or ``None`` when
        the queue does not exist.

        Works whether or not this broker is connected, and creates nothing. ``tacoq namespace
        delete`` and ``tacoq demo`` ask it about :data:`RELAY_QUEUE`: a consumer there means a
        relay serves the namespace. Brokers that cannot tell keep this default, which raises
        :class:`~tacoq.errors.ConfigError`.
        """
        raise ConfigError(
            f"the {self.scheme or type(self).__name__} broker cannot count a queue's consumers"
        )

    async def delete_namespace(self, worker_kinds: Collection[str] = ()) -> list[str]:
        """Delete every queue and exchange of this namespace, with the messages in them; return
        what was deleted, each as ``"queue NAME"`` or ``"exchange NAME"`` (physical names), and
        nothing when the namespace does not exist.

        A broker that can list its queues deletes them all; one that cannot (AMQP without the
        management plugin) deletes those it can name: the relay's queue, the dead-letter queue,
        its internal queues (delay queues) and the worker queue of each of ``worker_kinds``
        (``Store.worker_kinds`` and the operator know them). Called on a broker that is not
        connected (raises :class:`~tacoq.errors.TacoqError` otherwise; see
        :func:`check_not_connected`): it opens what it needs and closes it. Whether a relay or
        worker still consumes there is the caller's to check first (:meth:`consumer_count`).
        Brokers that cannot delete keep this default, which raises
        :class:`~tacoq.errors.ConfigError`.
        """
        raise ConfigError(
            f"the {self.scheme or type(self).__name__} broker cannot delete a namespace"
        )

    @abc.abstractmethod
    async def health(self) -> Health:
        """Whether the broker answers."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Close connections; unsettled deliveries return to their queues."""

    async def __aenter__(self) -> Self:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


class BrokerFactory(Protocol):
    """Makes a broker for a URL; returned by plugins from ``tacoq_broker_schemes``."""

    def __call__(self, url: str, *, namespace: str) -> Broker:
        """Create (but do not connect) a broker; import heavy clients lazily."""
        ...
