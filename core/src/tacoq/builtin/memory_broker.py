"""The in-process ``memory://`` broker: real routing, priorities, prefetch and redelivery.

Brokers made for the same URL (``memory://`` or ``memory://NAME``) share one :class:`_Server`
kept in a module-level registry; a namespace isolates queues inside it (physical name
``f"{namespace}.{logical}"``). It carries the same :class:`~tacoq.model.wire.Envelope` as the
network brokers, so the embedded mode exercises serialization honestly.

Every operation is O(1): a queue keeps one deque per priority level, consumers pull from it
under one :class:`threading.Lock`, and no asyncio task is created per message. A waiting
consumer is woken on its own loop: directly when the waker runs in the same thread, with
``call_soon_threadsafe`` otherwise (a :class:`~tacoq.publishing.publisher.SyncPublisher` publishes
from a background thread with its own loop).
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import threading
import time
import uuid
from collections import deque
from collections.abc import Collection, Sequence

from tacoq.contracts.broker import (
    CONTROL_QUEUE,
    DEAD_LETTER_QUEUE,
    PRIORITY_LEVELS,
    RELAY_QUEUE,
    Broker,
    Consumer,
    DeadLetter,
    Delivery,
    Health,
    check_not_connected,
    priority_level,
    reply_queue,
    worker_kind_of,
    worker_queue,
)
from tacoq.errors import ConfigError, PublishError, TacoqError
from tacoq.model.wire import (
    EVENT_ASSIGN,
    H_DEAD_LETTER_ID,
    H_EVENT,
    H_WORKER_KIND,
    Envelope,
    check_reply_address,
)

__all__ = ["MemoryBroker", "MemoryConsumer", "MemoryDelivery"]

_LEVELS_DOWN = tuple(range(PRIORITY_LEVELS - 1, -1, -1))
_Waiter = tuple["MemoryConsumer", "asyncio.Future[None]"]


class _Message:
    """One message on one queue, with its priority level and how often it was delivered; a
    dead letter also carries why and where from."""

    __slots__ = ("deliveries", "envelope", "expires", "letter", "level")

    def __init__(
        self,
        envelope: Envelope,
        level: int,
        letter: DeadLetter | None = None,
        expires: float | None = None,
    ) -> None:
        self.envelope = envelope
        self.level = level
        self.deliveries = 0
        self.letter = letter
        #: ``time.monotonic()`` past which the message is dropped unread (``None``: never).
        self.expires = expires


class _Queue:
    """A queue: one FIFO deque per priority level, and the consumers waiting for a message."""

    __slots__ = ("consumers", "count", "levels", "logical", "waiters")

    def __init__(self, logical: str) -> None:
        self.logical = logical
        self.levels: list[deque[_Message]] = [deque() for _ in range(PRIORITY_LEVELS)]
        self.count = 0
        self.waiters: deque[_Waiter] = deque()
        #: Consumers subscribed and not closed (``Broker.consumer_count``).
        self.consumers = 0

    def push(self, message: _Message, *, head: bool = False) -> None:
        """Add a message (redeliveries at the head of their level); wake a waiter (lock held)."""
        if head:
            self.levels[message.level].appendleft(message)
        else:
            self.levels[message.level].append(message)
        self.count += 1
        self.wake_one()

    def wake_one(self) -> None:
        """Wake the first consumer still waiting for a message (server lock held)."""
        waiters = self.waiters
        while waiters:
            consumer, future = waiters.popleft()
            if not future.done() and not consumer.closed:
                _wake(consumer.loop, consumer.thread, future)
                return


class _Delayed:
    """A message held back until ``due`` (``time.monotonic()``), then routed."""

    __slots__ = ("due", "envelope", "level", "namespace", "routed", "seq")

    def __init__(self, due: float, namespace: str, envelope: Envelope, level: int) -> None:
        self.due, self.seq, self.namespace = due, 0, namespace
        self.envelope, self.level, self.routed = envelope, level, False

    def __lt__(self, other: _Delayed) -> bool:
        return (self.due, self.seq) < (other.due, other.seq)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _wake(loop: asyncio.AbstractEventLoop, thread: int, future: asyncio.Future[None]) -> None:
    """Resolve ``future`` on its own loop: directly in its thread, thread-safely otherwise."""
    if threading.get_ident() == thread:
        _resolve(future)
    else:
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody is waiting any more
            loop.call_soon_threadsafe(_resolve, future)


class _Server:
    """The shared in-process broker state for one ``memory://`` URL."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.queues: dict[str, _Queue] = {}
        self.delayed: list[_Delayed] = []
        self.seq = itertools.count()

    def queue(self, namespace: str, logical: str) -> _Queue:
        """The queue ``logical`` of ``namespace``, created if absent (server lock held)."""
        name = f"{namespace}.{logical}"
        queue = self.queues.get(name)
        if queue is None:
            queue = self.queues[name] = _Queue(logical)
        return queue

    def route(self, namespace: str, envelope: Envelope, level: int) -> None:
        """Route an envelope: assignments to their worker queue and the relay (lock held)."""
        headers = envelope.headers
        if headers and headers.get(H_EVENT) == EVENT_ASSIGN:
            kind = headers.get(H_WORKER_KIND)
            if kind:
                self.queue(namespace, worker_queue(kind)).push(_Message(envelope, level))
        self.queue(namespace, RELAY_QUEUE).push(_Message(envelope, level))

    def wake_waiting(self, namespace: str, envelope: Envelope) -> None:
        """Wake the consumers waiting on the queues a delayed envelope will go to (lock held).

        A consumer already waiting set no timer for this message; woken, it looks again and
        times its wait by it, so the message is routed when due even if the publisher's loop
        is gone by then (a closed :class:`~tacoq.publishing.publisher.SyncPublisher`).
        """
        names = [RELAY_QUEUE]
        headers = envelope.headers
        if headers and headers.get(H_EVENT) == EVENT_ASSIGN and headers.get(H_WORKER_KIND):
            names.append(worker_queue(headers[H_WORKER_KIND]))
        for logical in names:
            queue = self.queues.get(f"{namespace}.{logical}")
            if queue is None:
                continue
            waiters, queue.waiters = queue.waiters, deque()
            for consumer, future in waiters:
                if not future.done() and not consumer.closed:
                    _wake(consumer.loop, consumer.thread, future)

    def promote_due(self) -> None:
        """Route every delayed message whose time has come (lock held)."""
        delayed = self.delayed
        now = time.monotonic()
        while delayed and delayed[0].due <= now:
            item = heapq.heappop(delayed)
            item.routed = True
            self.route(item.namespace, item.envelope, item.level)


_servers: dict[str, _Server] = {}
_servers_lock = threading.Lock()


def _server_for(url: str) -> _Server:
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() != "memory":
        raise ConfigError(f"the memory broker serves memory:// URLs, not {url!r}")
    name = rest.strip("/")
    with _servers_lock:
        server = _servers.get(name)
        if server is None:
            server = _servers[name] = _Server()
        return server


_NAMED_QUEUES = (RELAY_QUEUE, DEAD_LETTER_QUEUE, CONTROL_QUEUE)


def _check_queue(queue: str) -> None:
    if queue not in _NAMED_QUEUES and not worker_kind_of(queue):
        raise ValueError(
            f"unknown queue {queue!r}: use worker_queue(kind), RELAY_QUEUE, DEAD_LETTER_QUEUE "
            "or CONTROL_QUEUE"
        )


def _level(priority: int) -> int:
    if isinstance(priority, bool) or not isinstance(priority, int):
        raise ValueError(f"priority must be an integer between 0 and 255, got {priority!r}")
    return priority_level(priority)


class MemoryDelivery(Delivery):
    """One delivery of an in-process message; the first settle wins, later ones are no-ops."""

    __slots__ = (
        "_consumer",
        "_message",
        "dead_lettered",
        "delivery_count",
        "envelope",
        "redelivered",
    )

    def __init__(self, consumer: MemoryConsumer, message: _Message) -> None:
        self._consumer = consumer
        self._message = message
        self.envelope = message.envelope
        self.delivery_count = message.deliveries
        self.redelivered = message.deliveries > 1
        self.dead_lettered = message.letter

    async def ack(self) -> None:
        """The message is done and leaves the queue."""
        self._consumer._settle(self, None)

    async def requeue(self) -> None:
        """Back to the head of its priority level, to be delivered again."""
        self._consumer._settle(self, "requeue")

    async def dead_letter(self, reason: str, *, task_completed: bool = False) -> None:
        """Set the message aside in the namespace's dead-letter queue with ``reason``."""
        self._consumer._settle(self, reason, dead=True, task_completed=task_completed)

    def __repr__(self) -> str:
        return f"MemoryDelivery({self._consumer.queue_name!r}, count={self.delivery_count})"


class MemoryConsumer(Consumer):
    """Pulls from one in-process queue, holding at most ``prefetch`` unsettled deliveries."""

    def __init__(
        self, broker: MemoryBroker, queue: _Queue, prefetch: int, *, transient: bool = False
    ) -> None:
        self._broker = broker
        #: A reply queue's consumer: closing it removes the queue (and drops what it holds).
        self.transient = transient
        self._server = broker._server
        self._queue = queue
        queue.consumers += 1  # made under the server lock
        self.queue_name = queue.logical
        self.prefetch = prefetch
        self.loop = asyncio.get_running_loop()
        self.thread = threading.get_ident()
        self.closed = False
        self._unsettled: dict[MemoryDelivery, None] = {}
        self._capacity_waiters: deque[asyncio.Future[None]] = deque()

    def _take(self) -> MemoryDelivery | None:
        """The next message as a delivery, if allowed and available (server lock held)."""
        if self.closed:
            raise TacoqError(f"the consumer of {self.queue_name!r} is closed")
        if len(self._unsettled) >= self.prefetch:
            return None
        if self._server.delayed:
            self._server.promote_due()
        queue = self._queue
        while True:
            if not queue.count:
                return None
            levels = queue.levels
            for level in _LEVELS_DOWN:
                if levels[level]:
                    message = levels[level].popleft()
                    break
            queue.count -= 1
            if message.expires is None or message.expires >= time.monotonic():
                break  # else it expired unread (a heartbeat nobody took in time): dropped
        message.deliveries += 1
        delivery = MemoryDelivery(self, message)
        self._unsettled[delivery] = None
        return delivery

    def get_nowait(self) -> MemoryDelivery | None:
        """A delivery if one is waiting and the prefetch allows it, else ``None``."""
        with self._server.lock:
            return self._take()

    async def get(self) -> MemoryDelivery:
        """Wait for the next delivery (raises :class:`TacoqError` once the consumer closed)."""
        server = self._server
        while True:
            with server.lock:
                delivery = self._take()
                if delivery is not None:
                    return delivery
                future: asyncio.Future[None] = self.loop.create_future()
                has_room = len(self._unsettled) < self.prefetch
                if has_room:
                    self._queue.waiters.append((self, future))
                else:
                    self._capacity_waiters.append(future)
                    if self._queue.count:  # woken for a message we cannot take: pass it on
                        self._queue.wake_one()
                due = server.delayed[0].due if server.delayed else None
            timer = None
            if due is not None:  # the publisher's loop may be gone: look again when it is due
                delay = max(due - time.monotonic(), 0.0)
                timer = self.loop.call_later(delay, self._tick, future, has_room)
            try:
                await future
            except asyncio.CancelledError:
                with server.lock:
                    self._forget(future, has_room)
                raise
            finally:
                if timer is not None:
                    timer.cancel()

    def _tick(self, future: asyncio.Future[None], has_room: bool) -> None:
        """A delayed message is due: route it and let this waiting ``get`` look again."""
        with self._server.lock:
            self._server.promote_due()
            self._forget(future, has_room)
        _resolve(future)

    def _forget(self, future: asyncio.Future[None], has_room: bool) -> None:
        """A cancelled wait: drop it, and pass on a wake-up it may have swallowed (lock held)."""
        try:
            if has_room:
                self._queue.waiters.remove((self, future))
            else:
                self._capacity_waiters.remove(future)
        except ValueError:
            pass
        if self._queue.count:
            self._queue.wake_one()
        self._wake_capacity()

    def _wake_capacity(self) -> None:
        while self._capacity_waiters:
            future = self._capacity_waiters.popleft()
            if not future.done():
                _wake(self.loop, self.thread, future)
                return

    def _settle(
        self,
        delivery: MemoryDelivery,
        reason: str | None,
        *,
        dead: bool = False,
        task_completed: bool = False,
    ) -> None:
        with self._server.lock:
            if delivery not in self._unsettled:
                return  # settled before, or returned to the queue when the consumer closed
            del self._unsettled[delivery]
            message = delivery._message
            if dead:
                envelope = message.envelope
                if H_DEAD_LETTER_ID not in envelope.headers:
                    headers = {**envelope.headers, H_DEAD_LETTER_ID: str(uuid.uuid4())}
                    envelope = Envelope(headers, envelope.content_type, envelope.body)
                letter = DeadLetter(self.queue_name, reason or "", envelope, task_completed)
                queue = self._server.queue(self._broker.namespace, DEAD_LETTER_QUEUE)
                queue.push(_Message(envelope, 0, letter))
            elif reason is not None:
                self._queue.push(message, head=True)
            if self._capacity_waiters:
                self._wake_capacity()

    async def ack_many(self, deliveries: Sequence[Delivery]) -> None:
        """Acknowledge several deliveries under one lock acquisition."""
        others = []
        with self._server.lock:
            for delivery in deliveries:
                if isinstance(delivery, MemoryDelivery) and delivery._consumer is self:
                    self._unsettled.pop(delivery, None)
                else:
                    others.append(delivery)
            for _ in range(len(self._capacity_waiters)):
                self._wake_capacity()
        for delivery in others:
            await delivery.ack()

    async def close(self) -> None:
        """Stop consuming; unsettled deliveries go back to their queue, to be redelivered."""
        with self._server.lock:
            self._close_locked()
        self._broker._consumers.discard(self)

    def _close_locked(self) -> None:
        if self.closed:
            return
        self.closed = True
        queue = self._queue
        queue.consumers -= 1
        for delivery in reversed(self._unsettled):
            queue.push(delivery._message, head=True)
        self._unsettled.clear()
        mine = [w for w in queue.waiters if w[0] is self]
        for waiter in mine:
            queue.waiters.remove(waiter)
            _wake(self.loop, self.thread, waiter[1])
        while self._capacity_waiters:
            _wake(self.loop, self.thread, self._capacity_waiters.popleft())
        if self.transient:
            name = f"{self._broker.namespace}.{queue.logical}"
            if self._server.queues.get(name) is queue:
                del self._server.queues[name]

    def __repr__(self) -> str:
        return f"MemoryConsumer({self.queue_name!r}, prefetch={self.prefetch})"


class MemoryBroker(Broker):
    """The built-in in-process broker for ``memory://`` and ``memory://NAME`` URLs."""

    scheme = "memory"
    in_process = True
    supports_replies = True
    supports_control = True

    def __init__(self, url: str, *, namespace: str) -> None:
        super().__init__(url, namespace=namespace)
        self._server = _server_for(url)
        self._consumers: set[MemoryConsumer] = set()
        self._closed = False
        self._connected = False

    async def connect(self) -> None:
        """Declare the relay's queue and the control queue (idempotent); there is nothing to
        open."""
        self._closed = False
        self._connected = True
        with self._server.lock:
            self._server.queue(self.namespace, RELAY_QUEUE)
            self._server.queue(self.namespace, CONTROL_QUEUE)

    def _check_open(self) -> None:
        if self._closed:
            raise PublishError(f"the memory broker of namespace {self.namespace!r} is closed")

    async def publish(
        self,
        envelope: Envelope,
        *,
        priority: int = 0,
        delay: float | None = None,
        reply_to: Sequence[str] = (),
    ) -> None:
        """Route the envelope now (confirmed at once), or after ``delay`` seconds; a copy
        goes to each existing reply queue of ``reply_to``."""
        level = _level(priority)
        self._check_open()
        server = self._server
        if reply_to:
            names = [f"{self.namespace}.{reply_queue(check_reply_address(a))}" for a in reply_to]
            with server.lock:
                for name in names:
                    if (queue := server.queues.get(name)) is not None:
                        queue.push(_Message(envelope, 0))
        if delay is not None and delay > 0:
            item = _Delayed(time.monotonic() + delay, self.namespace, envelope, level)
            with server.lock:
                item.seq = next(server.seq)
                heapq.heappush(server.delayed, item)
                server.wake_waiting(self.namespace, envelope)
            asyncio.get_running_loop().call_later(delay, self._fire, item)
            return
        with server.lock:
            server.route(self.namespace, envelope, level)

    def _fire(self, item: _Delayed) -> None:
        """A delayed message's timer: route what is due, or look again a little later."""
        with self._server.lock:
            self._server.promote_due()
        if not item.routed:  # the loop's clock fired a hair early
            delay = max(item.due - time.monotonic(), 0.001)
            asyncio.get_running_loop().call_later(delay, self._fire, item)

    async def publish_many(self, items: Sequence[tuple[Envelope, int]]) -> None:
        """Route several ``(envelope, priority)`` pairs under one lock acquisition."""
        routed = [(envelope, _level(priority)) for envelope, priority in items]
        self._check_open()
        with self._server.lock:
            for envelope, level in routed:
                self._server.route(self.namespace, envelope, level)

    async def send_control(self, envelope: Envelope, *, ttl: float | None = None) -> None:
        """Put a control message on the control queue; with ``ttl``, dropped unread after
        ``ttl`` seconds."""
        self._check_open()
        expires = None if ttl is None else time.monotonic() + ttl
        with self._server.lock:
            queue = self._server.queue(self.namespace, CONTROL_QUEUE)
            queue.push(_Message(envelope, 0, expires=expires))

    async def republish(self, queue: str, envelope: Envelope, *, priority: int = 0) -> None:
        """Put ``envelope`` straight into the logical ``queue`` (no routing, no relay copy)."""
        level = _level(priority)
        _check_queue(queue)
        self._check_open()
        with self._server.lock:
            self._server.queue(self.namespace, queue).push(_Message(envelope, level))

    def _check_consumable(self, prefetch: int) -> None:
        if isinstance(prefetch, bool) or not isinstance(prefetch, int) or prefetch < 1:
            raise ValueError(f"prefetch must be a positive integer, got {prefetch!r}")
        if self._closed:
            raise TacoqError(f"the memory broker of namespace {self.namespace!r} is closed")

    async def declare_worker_queue(self, worker_kind: str) -> None:
        """Create the queue of ``worker_kind`` so tasks wait there for a worker."""
        with self._server.lock:
            self._server.queue(self.namespace, worker_queue(worker_kind))

    async def consume(self, queue: str, *, prefetch: int) -> MemoryConsumer:
        """Consume a logical queue (created if absent) with at most ``prefetch`` unsettled."""
        _check_queue(queue)
        self._check_consumable(prefetch)
        with self._server.lock:
            consumer = MemoryConsumer(self, self._server.queue(self.namespace, queue), prefetch)
        self._consumers.add(consumer)
        return consumer

    async def open_replies(self, address: str, *, prefetch: int = 1000) -> MemoryConsumer:
        """Consume the reply queue ``address`` (created now; removed when its consumer closes)."""
        logical = reply_queue(check_reply_address(address))
        self._check_consumable(prefetch)
        with self._server.lock:
            queue = self._server.queue(self.namespace, logical)
            consumer = MemoryConsumer(self, queue, prefetch, transient=True)
        self._consumers.add(consumer)
        return consumer

    async def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        """The first ``limit`` dead letters waiting in this namespace's dead-letter queue
        (oldest first), without removing them; the relay consumes them into its store."""
        with self._server.lock:
            queue = self._server.queues.get(f"{self.namespace}.{DEAD_LETTER_QUEUE}")
            waiting = [m.letter for level in queue.levels for m in level] if queue else []
        return [letter for letter in waiting if letter is not None][: max(limit, 0)]

    async def consumer_count(self, queue: str) -> int | None:
        """Consumers of the logical ``queue`` now (``None`` when it does not exist)."""
        with self._server.lock:
            found = self._server.queues.get(f"{self.namespace}.{queue}")
            return None if found is None else found.consumers

    async def delete_namespace(self, worker_kinds: Collection[str] = ()) -> list[str]:
        """Remove every queue of the namespace (the server lists them all, so ``worker_kinds``
        adds nothing) and its delayed messages; consumers still subscribed keep what they hold.
        """
        check_not_connected(self._connected, f"the memory broker of namespace {self.namespace!r}")
        prefix = self.namespace + "."
        server = self._server
        with server.lock:
            doomed = sorted(name for name in server.queues if name.startswith(prefix))
            for name in doomed:
                del server.queues[name]
            kept = []
            for item in server.delayed:
                if item.namespace == self.namespace:
                    item.routed = True  # dropped: its timer stops looking for it
                else:
                    kept.append(item)
            heapq.heapify(kept)
            server.delayed = kept
        return [f"queue {name}" for name in doomed]

    async def health(self) -> Health:
        """Healthy while open."""
        if self._closed:
            return Health(False, "memory broker is closed")
        return Health(True, "in-process memory broker")

    async def close(self) -> None:
        """Close every consumer of this broker; their unsettled deliveries are redelivered.

        Delayed messages and queued tasks stay in the shared server: they outlive a client.
        """
        self._closed = True
        self._connected = False
        with self._server.lock:
            for consumer in self._consumers:
                consumer._close_locked()
        self._consumers.clear()

    def stats(self) -> dict[str, int]:
        """Ready messages per logical queue of this namespace, for diagnostics."""
        prefix = self.namespace + "."
        with self._server.lock:
            found = self._server.queues.items()
            return {q.logical: q.count for name, q in found if name.startswith(prefix)}
