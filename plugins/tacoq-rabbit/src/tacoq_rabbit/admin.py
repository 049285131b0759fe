"""Operating a namespace on RabbitMQ (behind ``tacoq rabbit``): declare, status, dead letters.

Blocking (pika), one connection per :class:`RabbitAdmin`.

**Queue discovery.** Without RabbitMQ's management plugin (no HTTP API here) AMQP cannot list
queues. ``status`` therefore asks about the names it can know: the relay's queue, the
dead-letter queue and the 26 delay rungs (shown only when they exist), the worker kinds given
with ``--kind``, and every worker kind named as the origin of a dead letter. Each is a passive
``queue.declare`` (which reports depth and consumers and creates nothing; a missing queue
closes the channel with 404, so a new channel is opened). There is deliberately no registry of
worker kinds: every publisher and worker would have to write to it on each declare, and it could
still drift from the real queues; a missing ``--kind`` is shown as missing instead.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from types import TracebackType
from typing import Any, Self

import pika
import pika.exceptions

from tacoq.contracts.broker import CONTROL_QUEUE, RELAY_QUEUE, worker_kind_of, worker_queue
from tacoq.errors import ConfigError
from tacoq_rabbit.codec import header_text
from tacoq_rabbit.pika_link import (
    ConfirmChannel,
    apply_declarations,
    describe,
    open_connection,
)
from tacoq_rabbit.settings import parse_url
from tacoq_rabbit.topology import (
    DELAY_RUNGS_MS,
    H_DELIVERIES,
    H_ORIGIN,
    H_REASON,
    Topology,
)

__all__ = ["DEFAULT_SCAN", "DeadLetterInfo", "QueueStatus", "RabbitAdmin", "RequeueResult"]

#: How many dead letters ``status`` browses to count them by origin.
DEFAULT_SCAN = 10_000


@dataclass(frozen=True, slots=True)
class QueueStatus:
    """One queue: its role, whether it exists, depth (ready messages), consumers, dead letters."""

    name: str
    role: str
    exists: bool
    depth: int | None
    consumers: int | None
    dead_lettered: int | None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        return asdict(self)


@dataclass(frozen=True, slots=True)
class DeadLetterInfo:
    """One dead letter, as ``dlq list`` shows it."""

    reason: str
    origin: str
    task_id: str | None
    event: str | None
    size: int
    deliveries: int

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        return asdict(self)


@dataclass(frozen=True, slots=True)
class RequeueResult:
    """What ``dlq requeue`` did."""

    requeued: int
    skipped: int  # dead letters without a usable origin, left in the dead-letter queue


class RabbitAdmin:
    """Administrative operations on one namespace: ``with RabbitAdmin(url, ns) as admin``."""

    def __init__(self, url: str, namespace: str) -> None:
        self.namespace = namespace
        self.settings = parse_url(url, connection_name=f"tacoq cli {namespace}")
        self.topology = Topology(namespace)
        self._connection: Any = open_connection(self.settings)
        self._channel: Any = self._connection.channel()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection (unacked messages go back to their queues)."""
        with contextlib.suppress(Exception):
            if self._connection.is_open:
                self._connection.close()

    def _fresh_channel(self) -> Any:
        if self._channel is None or not self._channel.is_open:
            self._channel = self._connection.channel()
        return self._channel

    # -- declare -----------------------------------------------------------------------------

    def declare(self, kinds: Sequence[str]) -> list[str]:
        """Declare the base topology and each kind's worker queue (idempotent); the queues."""
        channel = self._fresh_channel()
        declarations = self.topology.base()
        for kind in kinds:
            declarations += self.topology.worker(kind)
        try:
            apply_declarations(channel, declarations)
        except pika.exceptions.ChannelClosedByBroker as exc:
            raise ConfigError(
                f"RabbitMQ refused the declaration (an entity exists with other arguments?): "
                f"{describe(exc)}"
            ) from None
        return [
            self.topology.relay_queue,
            self.topology.dead_queue,
            self.topology.control_queue,
        ] + [self.topology.worker_queue(kind) for kind in kinds]

    # -- status ------------------------------------------------------------------------------

    def _passive(self, name: str) -> tuple[int, int] | None:
        """``(depth, consumers)`` of queue ``name``, or ``None`` when it does not exist."""
        channel = self._fresh_channel()
        try:
            ok = channel.queue_declare(name, passive=True)
        except pika.exceptions.ChannelClosedByBroker as exc:
            if exc.reply_code == 404:
                return None
            raise
        return ok.method.message_count, ok.method.consumer_count

    def status(self, kinds: Sequence[str] = (), *, scan: int = DEFAULT_SCAN) -> list[QueueStatus]:
        """Every known queue of the namespace (see the module doc) with its numbers."""
        letters = self.dead_letters(scan)
        by_origin = Counter(letter.origin for letter in letters)
        found_kinds = [worker_kind_of(origin) for origin in by_origin]
        all_kinds = list(dict.fromkeys([*kinds, *(k for k in found_kinds if k is not None)]))
        topology = self.topology
        wanted: list[tuple[str, str, str | None]] = [
            (topology.relay_queue, "relay", RELAY_QUEUE),
            (topology.dead_queue, "dead-letter", None),
            (topology.control_queue, "control", CONTROL_QUEUE),
        ]
        wanted += [(topology.worker_queue(k), f"worker {k}", worker_queue(k)) for k in all_kinds]
        rows = []
        for name, role, logical in wanted:
            found = self._passive(name)
            dead = by_origin.get(logical, 0) if logical is not None else None
            if found is None:
                rows.append(QueueStatus(name, role, False, None, None, dead))
            else:
                rows.append(QueueStatus(name, role, True, found[0], found[1], dead))
        for rung in DELAY_RUNGS_MS:
            found = self._passive(topology.delay_queue(rung))
            if found is not None:
                name = topology.delay_queue(rung)
                rows.append(QueueStatus(name, f"delay {rung} ms", True, *found, None))
        return rows

    # -- dead letters ------------------------------------------------------------------------

    def dead_letters(self, limit: int) -> list[DeadLetterInfo]:
        """Browse up to ``limit`` dead letters without removing them (``basic.get`` without ack
        on a channel of its own, then that channel is closed: RabbitMQ puts them back)."""
        if limit <= 0 or self._passive(self.topology.dead_queue) is None:
            return []
        channel = self._connection.channel()
        found: list[DeadLetterInfo] = []
        try:
            while len(found) < limit:
                method, properties, body = channel.basic_get(self.topology.dead_queue)
                if method is None:
                    break
                found.append(_info(properties, body))
        finally:
            with contextlib.suppress(Exception):
                channel.close()
        return found

    def requeue(self, limit: int | None = None) -> RequeueResult:
        """Move up to ``limit`` dead letters back to the queue they came from.

        Each is republished (confirmed) through the default exchange straight to its original
        queue — so a requeued assignment is not copied to the relay a second time — without the
        dead-letter headers and with its delivery count reset, then acked. A dead letter
        without a known origin stays where it is.
        """
        confirm = ConfirmChannel(self._connection, self.settings.publish_timeout)
        requeued = skipped = 0
        try:
            while limit is None or requeued + skipped < limit:
                method, properties, body = confirm.channel.basic_get(self.topology.dead_queue)
                if method is None:
                    break
                target = self._target(properties)
                if target is None:
                    skipped += 1  # held unacked until the channel closes: it returns in place
                    continue
                headers = {
                    k: v
                    for k, v in (properties.headers or {}).items()
                    if k not in (H_REASON, H_ORIGIN, H_DELIVERIES)
                }
                properties.headers = headers
                confirm.publish(("", target, body, properties))
                confirm.wait_all()
                confirm.channel.basic_ack(method.delivery_tag)
                requeued += 1
        finally:
            with contextlib.suppress(Exception):
                confirm.channel.close()
        return RequeueResult(requeued, skipped)

    def _target(self, properties: Any) -> str | None:
        origin = header_text((properties.headers or {}).get(H_ORIGIN, ""))
        if origin == RELAY_QUEUE:
            return self.topology.relay_queue
        if worker_kind_of(origin) is not None:
            return self.topology.physical_queue(origin)
        return None

    def purge(self) -> int:
        """Delete every dead letter; returns how many there were."""
        if self._passive(self.topology.dead_queue) is None:
            return 0
        ok = self._fresh_channel().queue_purge(self.topology.dead_queue)
        return int(ok.method.message_count)

    def purge_relay(self) -> int:
        """Delete every message waiting in the relay's queue (for benchmarks and tests; in
        production the relay would lose those updates); returns how many there were."""
        ok = self._fresh_channel().queue_purge(self.topology.relay_queue)
        return int(ok.method.message_count)


def _info(properties: Any, body: bytes) -> DeadLetterInfo:
    headers = properties.headers or {}
    deliveries = header_text(headers.get(H_DELIVERIES, "0"))
    return DeadLetterInfo(
        reason=header_text(headers.get(H_REASON, "")),
        origin=header_text(headers.get(H_ORIGIN, "")),
        task_id=_opt(headers.get("tacoq-id")),
        event=_opt(headers.get("tacoq-event")),
        size=len(body),
        deliveries=int(deliveries) if deliveries.isdigit() else 0,
    )


def _opt(value: object) -> str | None:
    return None if value is None else header_text(value)


def kinds_of(values: Iterable[str] | None) -> list[str]:
    """Worker kinds from repeated ``--kind`` options, without duplicates, in order."""
    return list(dict.fromkeys(values or ()))
