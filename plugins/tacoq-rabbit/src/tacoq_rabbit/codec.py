"""How an :class:`~tacoq.model.wire.Envelope` maps onto AMQP messages, and back.

Client-neutral (plain dicts), so the aiormq broker and the pika publisher share it: which
exchange and routing key each message of a publish goes to (:func:`outgoing`, the delay ladder
included) and with which basic properties (:func:`property_fields`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tacoq.model.wire import EVENT_ASSIGN, H_EVENT, H_ID, Envelope
from tacoq_rabbit.topology import (
    H_DELAY,
    H_DELIVERIES,
    RELAY_ROUTING_KEY,
    TRANSPORT_HEADERS,
    Topology,
    delay_rung,
)

__all__ = [
    "MAX_CONTROL_TTL",
    "PERSISTENT",
    "ROUTING_HEADERS",
    "TRANSIENT",
    "Outgoing",
    "control_fields",
    "envelope_from",
    "header_text",
    "outgoing",
    "previous_deliveries",
    "property_fields",
]

#: AMQP ``delivery_mode`` of a persistent message.
PERSISTENT = 2
#: AMQP ``delivery_mode`` of a transient message (a heartbeat: lost with a broker restart).
TRANSIENT = 1
#: The longest ``ttl`` of a control message (seconds): RabbitMQ's largest ``expiration``,
#: 2**32 - 1 ms (about 49.7 days).
MAX_CONTROL_TTL = (2**32 - 1) / 1000
#: A delivery count the binding wrote.
_COUNT = re.compile(r"[0-9]{1,6}", re.ASCII)
#: Headers RabbitMQ routes by (sender-selected distribution): never kept on a copy, or a
#: requeue or a dead letter would also land in the queues they name.
ROUTING_HEADERS = frozenset({"CC", "BCC"})


def property_fields(envelope: Envelope, level: int) -> dict[str, Any]:
    """The AMQP basic properties of ``envelope`` at priority ``level`` (0-9)."""
    headers = envelope.headers
    fields: dict[str, Any] = {
        "content_type": envelope.content_type,
        "delivery_mode": PERSISTENT,
        "priority": level,
        "headers": dict(headers),
    }
    if headers.get(H_EVENT) == EVENT_ASSIGN and headers.get(H_ID):
        fields["message_id"] = headers[H_ID]
    return fields


def control_fields(envelope: Envelope, ttl: float | None) -> dict[str, Any]:
    """The AMQP basic properties of a control message: persistent without ``ttl``; with a
    ``ttl`` (seconds), transient with ``expiration`` in milliseconds as text, rounded up (it
    never expires early). Raises :class:`ValueError` for a ttl that is negative, not finite or
    over :data:`MAX_CONTROL_TTL`."""
    fields: dict[str, Any] = {
        "content_type": envelope.content_type,
        "delivery_mode": PERSISTENT,
        "headers": dict(envelope.headers),
    }
    if ttl is not None:
        if (
            isinstance(ttl, bool)
            or not isinstance(ttl, int | float)
            or not math.isfinite(ttl)
            or not 0 <= ttl <= MAX_CONTROL_TTL
        ):
            raise ValueError(
                f"ttl must be a number of seconds between 0 and {MAX_CONTROL_TTL:g}, got {ttl!r}"
            )
        fields["delivery_mode"] = TRANSIENT
        # round first: 2.007 s is 2007 ms, not the 2008 of ceil(2007.0000000000002)
        fields["expiration"] = str(math.ceil(round(ttl * 1000, 6)))
    return fields


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One AMQP message of a publish: where it goes, and its basic properties as a dict."""

    exchange: str
    routing_key: str
    fields: dict[str, Any]


def outgoing(
    topology: Topology,
    routing_key: str,
    fields: dict[str, Any],
    *,
    delay: float | None = None,
    relay_copy: bool = False,
) -> tuple[list[Outgoing], int | None]:
    """The messages of one publish and the delay rung they need declared (``None``: none).

    At once: one message to the tasks exchange. Held back ``delay`` seconds: one message to the
    delay exchange carrying its ``expiration`` and the ``tacoq-delay`` rung, plus, with
    ``relay_copy`` (an assignment), an immediate copy to the relay so it knows the task now.
    """
    if delay is None or delay <= 0:
        return [Outgoing(topology.tasks_exchange, routing_key, fields)], None
    expiration, rung = delay_rung(delay)
    delayed = dict(fields, expiration=str(expiration))
    delayed["headers"] = dict(fields["headers"], **{H_DELAY: str(rung)})
    messages = [Outgoing(topology.delay_exchange, routing_key, delayed)]
    if relay_copy:
        messages.append(Outgoing(topology.tasks_exchange, RELAY_ROUTING_KEY, fields))
    return messages, rung


def header_text(value: object) -> str:
    """A header value as text (AMQP tables may carry bytes, numbers or nested values)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", "replace")
    return str(value)


def previous_deliveries(headers: Mapping[str, Any] | None) -> int:
    """The ``tacoq-deliveries`` count a message copy carries: 1-6 ASCII digits, else 0 (a
    publisher's forged ``1_0`` or non-ASCII digits count nothing)."""
    if not headers or H_DELIVERIES not in headers:
        return 0
    text = header_text(headers[H_DELIVERIES])
    return int(text) if _COUNT.fullmatch(text) else 0


def envelope_from(
    headers: Mapping[str, Any] | None,
    content_type: str | None,
    body: bytes,
    meta: Mapping[str, Any] | None = None,
) -> Envelope:
    """The envelope a consumer sees: every header but ``x-*`` and the binding's own headers."""
    kept: dict[str, str] = (
        {
            name: header_text(value)
            for name, value in headers.items()
            if name not in TRANSPORT_HEADERS and not name.startswith("x-")
        }
        if headers
        else {}
    )
    return Envelope(kept, content_type or "", body, dict(meta) if meta else {})
