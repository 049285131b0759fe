"""The RabbitMQ topology of one namespace, as plain data (no client library is imported).

Every name derives from the namespace, so two namespaces on one broker never meet. The
declarations are returned as :class:`ExchangeSpec` / :class:`QueueSpec` / :class:`BindingSpec`
records in the order they must be applied; any AMQP client (aio-pika here, pika for the sync
publisher, a CLI) can apply them. ``docs/wire-format.md`` ("RabbitMQ binding") is the normative
description.
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass, field
from typing import Any

from tacoq.contracts.broker import (
    CONTROL_QUEUE,
    DEAD_LETTER_QUEUE,
    PRIORITY_LEVELS,
    RELAY_QUEUE,
    worker_kind_of,
)

__all__ = [
    "CONTROL_QUEUE_ARGUMENTS",
    "CONTROL_QUEUE_MAX_BYTES",
    "CONTROL_QUEUE_MAX_LENGTH",
    "DELAY_RUNGS_MS",
    "H_DELAY",
    "H_DELIVERIES",
    "H_ORIGIN",
    "H_REASON",
    "H_TASK_COMPLETED",
    "MAX_DELAY_SECONDS",
    "RELAY_ROUTING_KEY",
    "REPLY_QUEUE_EXPIRES_MS",
    "TRANSPORT_HEADERS",
    "BindingSpec",
    "Declaration",
    "ExchangeSpec",
    "QueueSpec",
    "Topology",
    "delay_rung",
    "safe_name",
]

#: Routing key of ``updates`` messages (and of the relay's copy of a delayed assignment).
RELAY_ROUTING_KEY = "relay"
#: The delay ladder: rung ``k`` holds messages for at most ``125 ms * 2**k`` (125 ms .. ~48.5 d).
DELAY_RUNGS_MS: tuple[int, ...] = tuple(125 * 2**k for k in range(26))
#: The longest delay the ladder can hold, in seconds.
MAX_DELAY_SECONDS = DELAY_RUNGS_MS[-1] / 1000

#: Header: how many deliveries this copy of a message already had (delivery counting).
H_DELIVERIES = "tacoq-deliveries"
#: Header of a dead letter: why it was set aside.
H_REASON = "tacoq-reason"
#: Header of a dead letter: the logical queue it came from.
H_ORIGIN = "tacoq-origin"
#: Header of a dead letter: "1" when the task's COMPLETED was already published.
H_TASK_COMPLETED = "tacoq-task-completed"
#: Header of a delayed message: the rung (milliseconds) that holds it.
H_DELAY = "tacoq-delay"
#: A reply queue is deleted by RabbitMQ once it has had no consumer for this long (x-expires).
REPLY_QUEUE_EXPIRES_MS = 60_000
#: The control queue keeps at most this many messages; beyond it the oldest are dropped
#: (``x-overflow: drop-head``). Normally the relay keeps it empty; the bound is for a namespace
#: whose relay is gone for long (see :meth:`Topology.control`).
CONTROL_QUEUE_MAX_LENGTH = 100_000
#: ... and at most this many bytes of message bodies (512 MiB), whichever comes first.
CONTROL_QUEUE_MAX_BYTES = 512 * 1024 * 1024
#: The arguments of the control queue (fixed at its first declaration: RabbitMQ refuses a
#: declaration with other arguments, so changing them means deleting the queue).
CONTROL_QUEUE_ARGUMENTS: dict[str, Any] = {
    "x-max-length": CONTROL_QUEUE_MAX_LENGTH,
    "x-max-length-bytes": CONTROL_QUEUE_MAX_BYTES,
    "x-overflow": "drop-head",
}
#: Headers the RabbitMQ binding adds; they are not part of the envelope a consumer sees.
TRANSPORT_HEADERS = frozenset({H_DELIVERIES, H_REASON, H_ORIGIN, H_DELAY, H_TASK_COMPLETED})

_SAFE = re.compile(r"[A-Za-z0-9_.:-]{1,100}")
_HASH_PREFIX = 60


def safe_name(kind: str) -> str:
    """A queue-name-safe form of a worker kind.

    A kind of 1-100 characters from ``A-Z a-z 0-9 _ . : -`` is used as is; any other kind becomes
    its first 60 characters with every other character replaced by ``_``, then ``#`` and 16 hex
    digits of its SHA-256. ``#`` never appears in an unhashed name, so no two kinds collide.
    """
    if _SAFE.fullmatch(kind):
        return kind
    digest = hashlib.sha256(kind.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    prefix = re.sub(r"[^A-Za-z0-9_.:-]", "_", kind[:_HASH_PREFIX])
    return f"{prefix}#{digest}"


def delay_rung(delay: float) -> tuple[int, int]:
    """``(expiration_ms, rung_ms)`` for a delay in seconds: the smallest rung that holds it.

    The message carries its own expiration (the delay rounded up to a millisecond) and sits in
    the rung queue whose ``x-message-ttl`` is the rung, so it is never released early and never
    later than its rung's ceiling. Raises :class:`ValueError` beyond :data:`MAX_DELAY_SECONDS`.
    """
    if not math.isfinite(delay) or delay < 0:
        raise ValueError(f"delay must be a finite number of seconds >= 0, got {delay!r}")
    expiration = max(1, math.ceil(delay * 1000))
    for rung in DELAY_RUNGS_MS:
        if expiration <= rung:
            return expiration, rung
    raise ValueError(
        f"delay {delay:.0f}s exceeds the longest delay queue ({MAX_DELAY_SECONDS:.0f}s)"
    )


@dataclass(frozen=True, slots=True)
class ExchangeSpec:
    """A durable exchange to declare."""

    name: str
    type: str


@dataclass(frozen=True, slots=True)
class QueueSpec:
    """A durable queue to declare, with its ``x-`` arguments."""

    name: str
    arguments: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class BindingSpec:
    """A binding of ``queue`` to ``exchange``."""

    queue: str
    exchange: str
    routing_key: str
    arguments: dict[str, Any] = field(default_factory=dict)


Declaration = ExchangeSpec | QueueSpec | BindingSpec


@dataclass(frozen=True, slots=True)
class Topology:
    """Names and declarations for one namespace."""

    namespace: str

    # -- names -----------------------------------------------------------------------------

    @property
    def tasks_exchange(self) -> str:
        """The direct exchange every assignment and update is published to."""
        return f"{self.namespace}.tasks"

    @property
    def dead_exchange(self) -> str:
        """The fanout exchange dead letters are published to."""
        return f"{self.namespace}.dead-letter"

    @property
    def delay_exchange(self) -> str:
        """The headers exchange that sorts delayed messages into their rung queue."""
        return f"{self.namespace}.delay"

    @property
    def relay_queue(self) -> str:
        """The relay's queue: every update and a copy of every assignment."""
        return f"{self.namespace}.relay"

    @property
    def dead_queue(self) -> str:
        """The dead-letter queue."""
        return f"{self.namespace}.dead-letter"

    @property
    def control_queue(self) -> str:
        """The control queue: what workers tell the relay about themselves (published to
        through the default exchange, bound to no exchange)."""
        return f"{self.namespace}.control"

    def worker_routing_key(self, worker_kind: str) -> str:
        """The routing key of assignments for ``worker_kind``."""
        return f"worker.{safe_name(worker_kind)}"

    def worker_queue(self, worker_kind: str) -> str:
        """The physical queue of ``worker_kind``."""
        return f"{self.namespace}.worker.{safe_name(worker_kind)}"

    def delay_queue(self, rung_ms: int) -> str:
        """The physical queue of one delay rung."""
        return f"{self.namespace}.delay.{rung_ms}ms"

    def reply_routing_key(self, address: str) -> str:
        """The routing key that binds a reply queue to the task exchange."""
        return f"reply.{address}"

    def reply_queue(self, address: str) -> str:
        """The physical reply queue of a publisher's reply address (transient, see
        :data:`REPLY_QUEUE_EXPIRES_MS`)."""
        return f"{self.namespace}.reply.{address}"

    def physical_queue(self, logical: str) -> str:
        """The physical name of a logical queue (``worker:<kind>``, ``relay``, ``dead-letter``,
        ``control``)."""
        if logical == RELAY_QUEUE:
            return self.relay_queue
        if logical == DEAD_LETTER_QUEUE:
            return self.dead_queue
        if logical == CONTROL_QUEUE:
            return self.control_queue
        kind = worker_kind_of(logical)
        if kind is None:
            raise ValueError(
                f"unknown queue {logical!r}: use worker_queue(kind), RELAY_QUEUE, "
                "DEAD_LETTER_QUEUE or CONTROL_QUEUE"
            )
        return self.worker_queue(kind)

    # -- declarations ------------------------------------------------------------------------

    def base(self) -> list[Declaration]:
        """Exchanges, the relay's queue, the dead-letter queue and the control queue (every
        client declares these)."""
        return [
            ExchangeSpec(self.tasks_exchange, "direct"),
            ExchangeSpec(self.dead_exchange, "fanout"),
            ExchangeSpec(self.delay_exchange, "headers"),
            QueueSpec(self.relay_queue),
            BindingSpec(self.relay_queue, self.tasks_exchange, RELAY_ROUTING_KEY),
            QueueSpec(self.dead_queue),
            BindingSpec(self.dead_queue, self.dead_exchange, ""),
            self.control(),
        ]

    def control(self) -> QueueSpec:
        """The control queue, bounded: at most :data:`CONTROL_QUEUE_MAX_LENGTH` messages and
        :data:`CONTROL_QUEUE_MAX_BYTES` bytes, the oldest dropped first.

        Why a bound: announcements and goodbyes are persistent and wait for a relay; heartbeats
        expire, but RabbitMQ discards an expired message only once it reaches the head of the
        queue, so behind an unread announcement they pile up too. A namespace whose relay is gone
        for weeks would grow without end. Why drop the oldest (not refuse the newest): a worker
        then never fails to send, and what is kept is the latest news (a worker announces itself
        again every :data:`~tacoq.model.workers.REANNOUNCE_EVERY` heartbeats, so the relay
        learns again whatever was dropped). 100,000 messages is over an hour of heartbeats from a
        hundred workers (5 s apart) with no relay, far beyond any backlog a running relay leaves;
        512 MiB caps the disk and memory a backlog of large announcements (up to 4 MiB each)
        could take."""
        return QueueSpec(self.control_queue, dict(CONTROL_QUEUE_ARGUMENTS))

    def worker(self, worker_kind: str) -> list[Declaration]:
        """The worker queue of ``worker_kind`` (priority levels) and the relay's binding to it."""
        queue = self.worker_queue(worker_kind)
        key = self.worker_routing_key(worker_kind)
        return [
            QueueSpec(queue, {"x-max-priority": PRIORITY_LEVELS}),
            BindingSpec(queue, self.tasks_exchange, key),
            BindingSpec(self.relay_queue, self.tasks_exchange, key),
        ]

    def rung(self, rung_ms: int) -> list[Declaration]:
        """One delay rung: held up to ``rung_ms``, then dead-lettered to the task exchange."""
        queue = self.delay_queue(rung_ms)
        arguments = {"x-message-ttl": rung_ms, "x-dead-letter-exchange": self.tasks_exchange}
        match = {"x-match": "all", H_DELAY: str(rung_ms)}
        return [QueueSpec(queue, arguments), BindingSpec(queue, self.delay_exchange, "", match)]

    def all_queues(self, worker_kinds: tuple[str, ...] | list[str] = ()) -> list[str]:
        """Every queue name of the namespace (for cleanup): base, given kinds, every rung."""
        names = [self.relay_queue, self.dead_queue, self.control_queue]
        names += [self.worker_queue(kind) for kind in worker_kinds]
        names += [self.delay_queue(rung) for rung in DELAY_RUNGS_MS]
        return names

    def all_exchanges(self) -> list[str]:
        """Every exchange name of the namespace."""
        return [self.tasks_exchange, self.dead_exchange, self.delay_exchange]
