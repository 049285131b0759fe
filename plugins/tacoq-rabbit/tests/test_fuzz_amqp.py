"""Fuzzing the AMQP level: what a consumer reads of any message, and what it makes of it.

- Any header table of AMQP values a publisher (pika) can send, with any content type and body,
  is read by the consumer's decoder (pamqp made tolerant) without an error (an error there
  drops the connection and wedges the queue), becomes an envelope (``envelope_from``) that
  decodes to events or ``WireFormatError``, and can be copied again (a dead letter, a requeue).
- Any hostile envelope (:mod:`tacoq.testing.poison`) published as AMQP properties reads back
  the same way.
- Header tables with every value type the consumer can receive (doubles, bytes from long
  strings that are not UTF-8, byte arrays, names kept with ``surrogateescape``...) become
  envelopes that decode to events or ``WireFormatError``.
- The tolerant decoders, given any bytes (random, or valid encodings cut and flipped), return a
  value or raise ``ValueError`` (pamqp's documented error), never ``UnicodeDecodeError``,
  ``OverflowError`` or anything else.

No broker is needed: these are the decoders the consumer runs on every frame. The findings
this fuzzing made are regression tests in ``test_poison_regressions.py``.
"""

from __future__ import annotations

import struct
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pika
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pamqp import commands, decode
from pamqp import encode as pamqp_encode

from tacoq.model.wire import Envelope
from tacoq.testing.poison import amqp_header_tables, amqp_values, bodies, hostile_envelopes
from tacoq.testing.storable import classify
from tacoq_rabbit import tolerant
from tacoq_rabbit.codec import envelope_from
from tacoq_rabbit.testing import amqp_properties, as_received

tolerant.install()

FUZZ = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
SHORT_STRINGS = st.text(max_size=20) | st.binary(max_size=20) | st.sampled_from([b"\xff\xfe"])


def _copy_encodes(received: commands.Basic.Properties) -> None:
    """What the consumer publishes for a dead letter or a requeue encodes (``_publish_copy``)."""
    commands.Basic.Properties(
        content_type=tolerant.storable(received.content_type),
        delivery_mode=2,
        message_id=tolerant.storable(received.message_id),
        headers=tolerant.storable(dict(received.headers or {})),
    ).marshal()


@FUZZ
@given(
    table=amqp_header_tables(floats=False),
    content_type=SHORT_STRINGS,
    message_id=SHORT_STRINGS,
    timestamp=st.integers(0, 2**64 - 1),
    body=bodies(),
)
def test_any_table_pika_sends_is_read_decoded_and_copyable(
    table: dict[str, Any], content_type: Any, message_id: Any, timestamp: int, body: bytes
) -> None:
    properties = pika.BasicProperties(
        content_type=content_type, message_id=message_id, timestamp=timestamp, headers=table
    )
    received = as_received(properties)  # an error here drops the consumer's connection
    classify(envelope_from(received.headers, received.content_type, body))
    _copy_encodes(received)


@FUZZ
@given(hostile_envelopes())
def test_any_hostile_envelope_sent_over_amqp_is_read_and_decoded(envelope: Envelope) -> None:
    received = as_received(amqp_properties(envelope))
    classify(envelope_from(received.headers, received.content_type, envelope.body))
    _copy_encodes(received)


def _received_values() -> st.SearchStrategy[Any]:
    """Values as pamqp hands them to the consumer: besides :func:`amqp_values` (doubles
    included), bytes (a long string that is not UTF-8), byte arrays, out-of-range timestamps
    as the tolerant decoder reads them."""
    extra = st.one_of(
        st.binary(max_size=8),
        st.binary(max_size=8).map(bytearray),
        st.integers(0, 2**64 - 1).map(lambda raw: f"timestamp {raw} (out of range)"),
    )
    return amqp_values() | extra


_RECEIVED_NAMES = st.text(max_size=10) | st.binary(max_size=10).map(
    lambda raw: raw.decode("utf-8", "surrogateescape")
)


@FUZZ
@given(
    headers=st.dictionaries(_RECEIVED_NAMES, _received_values(), max_size=6)
    | st.builds(
        lambda base, extra: {**base, **extra},
        st.fixed_dictionaries({"tacoq-version": st.just("1"), "tacoq-event": st.just("assign")}),
        st.dictionaries(st.sampled_from(["tacoq-id", "tacoq-attempt"]), _received_values()),
    ),
    content_type=st.none() | st.text(max_size=10),
    body=bodies(),
)
def test_any_received_table_becomes_an_envelope_that_decodes_or_is_malformed(
    headers: dict[str, Any], content_type: str | None, body: bytes
) -> None:
    envelope = envelope_from(headers, content_type, body)
    assert all(isinstance(v, str) for v in envelope.headers.values())
    classify(envelope)


# -- the tolerant decoders on any bytes --------------------------------------------------------


def _encoded_tables() -> st.SearchStrategy[bytes]:
    """Field tables as pamqp encodes them (values pamqp can write), without the length prefix."""

    def encodable(value: Any) -> Any:
        if isinstance(value, bytes):
            return bytearray(value)
        if isinstance(value, float):
            return Decimal(1)  # pamqp writes floats as 4-byte floats: most do not fit
        if isinstance(value, dict):
            return {k: encodable(v) for k, v in value.items()}
        if isinstance(value, list):
            return [encodable(v) for v in value]
        return value

    def encoded(table: dict[str, Any]) -> bytes:
        try:
            return pamqp_encode.field_table(encodable(table))[4:]
        except (TypeError, ValueError, struct.error):
            return b""

    return st.dictionaries(st.text(max_size=8), amqp_values(), max_size=4).map(encoded)


@st.composite
def _frame_bytes(draw: st.DrawFn) -> bytes:
    """Random bytes, or a valid field-table encoding cut, flipped or spliced."""
    if draw(st.booleans()):
        return draw(st.binary(max_size=200))
    data = bytearray(draw(_encoded_tables()))
    data = bytearray(struct.pack(">I", len(data))) + data
    for _ in range(draw(st.integers(0, 3))):
        if not data:
            break
        where = draw(st.integers(0, len(data) - 1))
        action = draw(st.sampled_from(["flip", "cut", "insert", "length"]))
        if action == "flip":
            data[where] = draw(st.integers(0, 255))
        elif action == "cut":
            del data[where:]
        elif action == "insert":
            data[where:where] = draw(st.binary(min_size=1, max_size=8))
        else:
            data[0:4] = struct.pack(">I", draw(st.integers(0, 2**32 - 1)))
    return bytes(data)


def _value_or_value_error(decoder: Any, data: bytes) -> None:
    try:
        decoder(data)
    except UnicodeDecodeError as exc:
        raise AssertionError(f"{decoder.__name__}({data!r}) raised {exc!r}") from None
    except ValueError:
        pass


@FUZZ
@given(_frame_bytes())
def test_the_tolerant_decoders_return_a_value_or_raise_value_error(data: bytes) -> None:
    # the decoders pamqp looks up when it reads a frame (tolerant.install() replaced some)
    for kind in ("table", "array", "shortstr", "longstr", "timestamp", "decimal", "byte_array"):
        _value_or_value_error(decode.METHODS[kind], data)
    _value_or_value_error(decode.embedded_value, data)


@FUZZ
@given(st.integers(0, 2**16 - 1), _frame_bytes())
def test_any_property_bytes_decode_or_raise_value_error(flags: int, data: bytes) -> None:
    """``Basic.Properties.unmarshal``, which aiormq runs on each content header frame."""
    _value_or_value_error(lambda raw: commands.Basic.Properties().unmarshal(flags & ~1, raw), data)


def test_the_tolerant_decoders_are_installed() -> None:
    """The properties above hold for the decoders the consumer really uses."""
    assert decode.METHODS["shortstr"] is tolerant._short_str
    assert decode.TABLE_MAPPING[b"T"] is tolerant._timestamp
    assert decode.TABLE_MAPPING[b"F"] is decode.METHODS["table"]  # nesting counted
    assert decode.TABLE_MAPPING[b"A"] is decode.METHODS["array"]
    key = b"\x01\x80" + b"V"  # a header name of invalid UTF-8, a void value
    assert decode.METHODS["table"](struct.pack(">I", len(key)) + key) == (
        4 + len(key),
        {"\udc80": None},
    )
    moment = datetime(2030, 1, 1, tzinfo=UTC)
    assert decode.METHODS["timestamp"](struct.pack(">Q", int(moment.timestamp()))) == (8, moment)
    assert decode.METHODS["shortstr"](b"\x01\x80") == (2, "\udc80")
