"""Helpers for tests against a real RabbitMQ: publishing raw messages, and what a consumer reads.

- :func:`amqp_properties` turns any :class:`~tacoq.model.wire.Envelope` (hostile ones from
  :mod:`tacoq.testing.poison` too) into AMQP properties pika can publish: text a header or
  short string cannot carry (lone surrogates) travels as bytes that are not UTF-8, a name or
  short string over 255 bytes is cut;
- :class:`RawProperties` publishes a header table given as raw field-table bytes (values pika
  cannot write: doubles, long strings that are not UTF-8, any nesting);
- :func:`as_received` encodes properties as pika sends them and decodes them as this plugin's
  consumer reads them (pamqp with :mod:`tacoq_rabbit.tolerant`); :func:`envelope_received` is
  the envelope a relay or worker then sees, so a test predicts what a consumer will do with a
  message it publishes by decoding that envelope;
- :func:`publish_raw` publishes with pika, confirmed, straight into a queue;
- :func:`queue_names` lists every queue on the local RabbitMQ with ``rabbitmqctl`` (AMQP cannot),
  so a test sees what a command left behind.

Imports pika and pamqp (never import it from the hook module).
"""

from __future__ import annotations

import shutil
import struct
import subprocess
import time
import unittest
from collections.abc import Iterable, Mapping
from typing import Any

import pika
from pamqp import commands, header

from tacoq.model.wire import Envelope
from tacoq_rabbit import tolerant
from tacoq_rabbit.codec import envelope_from

__all__ = [
    "LIST_ATTEMPTS",
    "MAX_SHORT_STRING",
    "RawProperties",
    "amqp_properties",
    "as_received",
    "envelope_received",
    "publish_raw",
    "queue_names",
]

#: How many times :func:`queue_names` runs ``rabbitmqctl`` before giving up (it fails now and
#: then while queues come and go under it).
LIST_ATTEMPTS = 5
#: The most bytes an AMQP short string (a property, a header name) holds.
MAX_SHORT_STRING = 255
_FLAG_CONTENT_TYPE = 1 << 15
_FLAG_HEADERS = 1 << 13


def _short(text: str | bytes) -> str | bytes:
    """A short string pika can send: text as it is when it is UTF-8 and short enough, else its
    bytes (``surrogatepass``: a lone surrogate becomes bytes that are not UTF-8), cut to 255."""
    if isinstance(text, bytes):
        return text[:MAX_SHORT_STRING]
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass")[:MAX_SHORT_STRING]
    return text if len(data) <= MAX_SHORT_STRING else data[:MAX_SHORT_STRING]


def _value(text: str) -> str | bytes:
    """A header value pika can send: the text, or its bytes when it is not UTF-8 (pika sends
    bytes as an AMQP byte array)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass")
    return text


def amqp_properties(envelope: Envelope, *, first: Mapping[str, Any] | None = None) -> Any:
    """Persistent ``pika.BasicProperties`` carrying ``envelope``'s headers and content type,
    as close as AMQP allows (see the module). ``first`` headers (a test's marker) come first."""
    headers: dict[Any, Any] = dict(first or {})
    for name, value in envelope.headers.items():
        key = _short(name)
        if key not in headers:
            headers[key] = _value(value)
    return pika.BasicProperties(
        content_type=_short(envelope.content_type), headers=headers, delivery_mode=2
    )


class RawProperties(pika.BasicProperties):  # type: ignore[misc]  # pika is untyped
    """Properties whose header table is given as raw AMQP field-table bytes (without the
    length prefix), and an optional content type: for values pika cannot encode."""

    def __init__(self, table: bytes, content_type: str | None = None) -> None:
        super().__init__(content_type=content_type)
        self.raw_table = table

    def encode(self) -> list[bytes]:
        """The property flags and values as pika puts them in a content header frame."""
        flags = _FLAG_HEADERS
        pieces: list[bytes] = []
        if self.content_type is not None:
            flags |= _FLAG_CONTENT_TYPE
            ctype = self.content_type.encode("utf-8")
            pieces += [struct.pack(">B", len(ctype)), ctype]
        pieces += [struct.pack(">I", len(self.raw_table)), self.raw_table]
        return [struct.pack(">H", flags), *pieces]


def as_received(properties: Any) -> commands.Basic.Properties:
    """``properties`` encoded as pika sends them, decoded as this plugin's consumer reads them
    (RabbitMQ passes them on unchanged). Raises what the consumer's decoder would raise."""
    tolerant.install()
    data = b"".join(properties.encode())
    offset, flags = header.ContentHeader._get_flags(data)
    received = commands.Basic.Properties()
    received.unmarshal(flags, data[offset:])
    return received


def envelope_received(properties: Any, body: bytes) -> Envelope:
    """The envelope a relay or worker sees for a message published with ``properties``."""
    received = as_received(properties)
    return envelope_from(received.headers, received.content_type, body)


def publish_raw(url: str, queue: str, messages: Iterable[tuple[Any, bytes]]) -> int:
    """Publish ``(properties, body)`` pairs with pika straight into ``queue`` (the default
    exchange), each confirmed; how many were published."""
    connection = pika.BlockingConnection(pika.URLParameters(url))
    count = 0
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        for properties, body in messages:
            channel.basic_publish("", queue, body, properties, mandatory=True)
            count += 1
    finally:
        if connection.is_open:
            connection.close()
    return count


def queue_names(vhost: str = "/") -> set[str]:
    """Every queue of ``vhost`` on the local RabbitMQ, as ``rabbitmqctl -q list_queues name``
    lists them. Skips the calling test when ``rabbitmqctl`` is not on ``PATH`` (RabbitMQ runs
    in Docker), or fails it when ``TACOQ_REQUIRE_SERVICES=1``."""
    from tacoq.testing.services import services_required

    ctl = shutil.which("rabbitmqctl")
    if ctl is None:
        reason = "rabbitmqctl is not on PATH: the queue listing needs the local RabbitMQ's tools"
        if services_required():
            raise AssertionError(reason)
        raise unittest.SkipTest(reason)  # pytest skips the test (no pytest import here)
    for attempt in range(LIST_ATTEMPTS):
        done = subprocess.run(
            [ctl, "-q", "list_queues", "-p", vhost, "name"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if done.returncode == 0:
            names = {line.strip() for line in done.stdout.splitlines() if line.strip()}
            return names - {"name"}  # the header line, printed by newer versions even with -q
        time.sleep(0.2 * (attempt + 1))
    raise AssertionError(
        f"rabbitmqctl list_queues failed {LIST_ATTEMPTS} times (exit {done.returncode}): "
        f"{done.stderr.strip() or done.stdout.strip()}"
    )
