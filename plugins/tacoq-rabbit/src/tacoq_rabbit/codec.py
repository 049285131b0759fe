"""How an :class:`~tacoq.model.wire.Envelope` maps onto AMQP message properties, and back.

Client-neutral (plain dicts), so the aio-pika broker and the pika publisher share it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from tacoq.model.wire import EVENT_ASSIGN, H_EVENT, H_ID, Envelope
from tacoq_rabbit.topology import H_DELIVERIES, TRANSPORT_HEADERS

__all__ = [
    "PERSISTENT",
    "ROUTING_HEADERS",
    "envelope_from",
    "header_text",
    "previous_deliveries",
    "property_fields",
]

#: AMQP ``delivery_mode`` of a persistent message.
PERSISTENT = 2
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
