"""Reading any message RabbitMQ delivers, however odd its properties.

aiormq reads frames with pamqp, whose decoder raises on a few values RabbitMQ itself accepts and
routes: a short string (``content_type``, ``message_id``, any of the short-string properties) or
a header *name* that is not valid UTF-8, a ``timestamp`` (the property or a header value) that
no ``datetime`` can hold, and a header nested a few hundred levels deep (the decoder recurses
past Python's limit). aiormq then closes the connection; on reconnect RabbitMQ delivers the same
message first, and the consumer is wedged for good: one such message stops every relay or
worker that consumes its queue (docs/reliability.md, "Bad input").

:func:`install` replaces those pamqp decoders, process-wide and idempotently, with tolerant
ones: invalid UTF-8 is kept with ``surrogateescape`` (so TacoQ's wire decoder sees a malformed
value and dead-letters the message with a reason), an out-of-range timestamp is read as text
naming its raw value, and a table or array nested more than :data:`MAX_DEPTH` levels is read as
text saying so (its bytes skipped by its length). Valid frames decode exactly as before.

:func:`storable` goes the other way: what a consumer read must encode again when it publishes a
copy (a dead letter, a requeue), although pamqp writes every float as a 4-byte ``f`` and cannot
write ``bytes`` (a long string that was not UTF-8).

The pamqp version is pinned in this package's dependencies, and ``tests/test_poison.py`` and
``tests/test_poison_regressions.py`` publish each of these messages to a real RabbitMQ, so a
pamqp change that breaks this fails the suite.
"""

from __future__ import annotations

import datetime
import math
import struct
import threading
from typing import Any

from pamqp import common, decode

__all__ = ["MAX_DEPTH", "install", "storable"]

#: Tables and arrays nested deeper than this are read as text, not decoded.
MAX_DEPTH = 64
#: The largest magnitude a 4-byte float (how pamqp writes every float) holds.
_FLOAT32_MAX = 3.4028234663852886e38

_installed = False
_nesting = threading.local()


def _short_str(value: bytes) -> tuple[int, str]:
    """pamqp's ``short_str``, keeping invalid UTF-8 as surrogate escapes."""
    try:
        length = common.Struct.byte.unpack(value[0:1])[0]
    except (struct.error, TypeError) as err:
        raise ValueError("Could not unpack short string value") from err
    return length + 1, value[1 : length + 1].decode("utf-8", "surrogateescape")


def _timestamp(value: bytes) -> tuple[int, Any]:
    """pamqp's ``timestamp``; a value no ``datetime`` holds becomes text with its raw value."""
    try:
        raw = common.Struct.timestamp.unpack(value[0:8])[0]
    except (struct.error, TypeError) as err:
        raise ValueError("Could not unpack timestamp value") from err
    seconds = raw / 1000.0 if raw > 0xFFFFFFFF else raw  # pamqp's own rule: likely milliseconds
    try:
        return 8, datetime.datetime.fromtimestamp(seconds, tz=datetime.UTC)
    except (ValueError, OverflowError, OSError):
        return 8, f"timestamp {raw} (out of range)"


def _nested(kind: str, decoder: Any) -> Any:
    """``decoder`` (a table's or an array's) with nesting counted: deeper than
    :data:`MAX_DEPTH`, the value's bytes are skipped (by its 4-byte length) and it reads as
    text, so no header can make the decoder recurse past Python's limit."""

    def decode_nested(value: bytes) -> tuple[int, Any]:
        depth = getattr(_nesting, "depth", 0)
        if depth >= MAX_DEPTH:
            try:
                length = common.Struct.integer.unpack(value[0:4])[0]
            except (struct.error, TypeError) as err:
                raise ValueError(f"Could not unpack {kind} length") from err
            if 4 + length > len(value):
                raise ValueError(f"Field {kind} length exceeds available data")
            return 4 + length, f"({kind} nested more than {MAX_DEPTH} levels deep)"
        _nesting.depth = depth + 1
        try:
            result: tuple[int, Any] = decoder(value)
            return result
        finally:
            _nesting.depth = depth

    return decode_nested


def _field_table(value: bytes) -> tuple[int, dict[str, Any]]:
    """pamqp's ``field_table``, keeping header names of invalid UTF-8 as surrogate escapes."""
    try:
        length = common.Struct.integer.unpack(value[0:4])[0]
        offset = 4
        data: dict[str, Any] = {}
        end = offset + length
        if end > len(value):
            raise ValueError("Field table length exceeds available data")
        while offset < end:
            key_length = common.Struct.byte.unpack_from(value, offset)[0]
            offset += 1
            if offset + key_length > end:
                raise ValueError("Field table key length exceeds data")
            key = value[offset : offset + key_length].decode("utf-8", "surrogateescape")
            offset += key_length
            consumed, result = decode.embedded_value(value[offset:])
            offset += consumed
            data[key] = result
        return end, data
    except (struct.error, TypeError) as err:
        raise ValueError("Could not unpack data") from err


def install() -> None:
    """Make pamqp's decoder tolerant of the values above (once per process)."""
    global _installed
    if _installed:
        return
    table = _nested("table", _field_table)
    array = _nested("array", decode.field_array)  # it decodes its items through TABLE_MAPPING
    decode.METHODS["shortstr"] = _short_str
    decode.METHODS["timestamp"] = _timestamp
    decode.METHODS["table"] = table
    decode.METHODS["array"] = array
    decode.TABLE_MAPPING[b"T"] = _timestamp
    decode.TABLE_MAPPING[b"F"] = table
    decode.TABLE_MAPPING[b"A"] = array
    _installed = True


def storable(value: Any) -> Any:
    """``value`` as pamqp can encode it again, in tables and arrays too: text holding surrogates
    (kept by the tolerant decoder) has them replaced by ``?``; ``bytes`` (a long string that was
    not UTF-8) becomes a byte array; a float a 4-byte float cannot hold (a double sent by
    another client) becomes its text."""
    if isinstance(value, bytes):
        return bytearray(value)
    if isinstance(value, float) and math.isfinite(value) and abs(value) > _FLOAT32_MAX:
        return repr(value)
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return value.encode("utf-8", "replace").decode("utf-8")
        return value
    if isinstance(value, dict):
        return {storable(key): storable(item) for key, item in value.items()}
    if isinstance(value, list):
        return [storable(item) for item in value]
    return value
