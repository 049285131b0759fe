"""Serialization: choosing a serializer for a type, and decoding payloads by content type.

A serializer (:class:`~tacoq.contracts.serializer.Serializer`, the contract) says which Python
types it handles and makes a codec bound to one type; :class:`SerializerRegistry` asks the
installed serializers in order and keeps each codec, so the hot path only calls
``dump``/``load``. Serializers come from plugins through the ``tacoq_serializers`` hook; the
built-ins (:mod:`tacoq.builtin.serializers`) are registered last, so a plugin's serializer wins
for the types it claims. This module also holds what every JSON codec shares to stay strict
(:func:`strict_json_bytes`; :mod:`tacoq.model.strict_json`) and the payload limits.
"""

from __future__ import annotations

import contextlib
import functools
import json
from collections.abc import Callable, Sequence
from typing import Any

import pydantic
import pydantic_core
from pydantic_core import PydanticSerializationError

from tacoq.contracts.serializer import Codec, Serializer
from tacoq.errors import PayloadTooLarge, SerializationError
from tacoq.model.strict_json import MAX_JSON_DEPTH, deeper_than, non_finite
from tacoq.model.task import Payload, is_json_type, media_type

__all__ = [
    "BYTES_CONTENT_TYPE",
    "DEFAULT_MAX_PAYLOAD_BYTES",
    "JSON_CONTENT_TYPE",
    "TEXT_CONTENT_TYPE",
    "SerializerRegistry",
    "check_json_payload",
    "check_payload_size",
    "describe_validation_error",
    "not_serializable",
    "strict_json_bytes",
    "type_adapter",
]

JSON_CONTENT_TYPE = "application/json"
TEXT_CONTENT_TYPE = "text/plain; charset=utf-8"
BYTES_CONTENT_TYPE = "application/octet-stream"
#: Payloads over this size are refused at publish time (1 MiB).
DEFAULT_MAX_PAYLOAD_BYTES = 1024 * 1024


def describe_validation_error(exc: pydantic.ValidationError) -> str:
    """One line naming each failing field: ``w: Input should be a valid integer; h: ...``."""
    parts = []
    for err in exc.errors(include_url=False, include_input=False):
        loc = ".".join(str(p) for p in err["loc"]) or "(value)"
        parts.append(f"{loc}: {err['msg']}")
    return "; ".join(parts)


def strict_json_bytes(data: bytes, as_python: Callable[[], Any]) -> bytes:
    """``data`` (JSON a codec dumped) if JSON can carry it, else ``SerializationError``.

    pydantic writes NaN and infinities as ``null`` (or, configured so, as ``NaN``): only when
    the text holds such a token is the value's Python form (``as_python()``) searched for them.
    """
    if b"null" in data or b"NaN" in data or b"Infinity" in data:
        found = _non_finite(as_python())
        if found is not None:
            where, number = found
            place = "the value" if where == "$" else f"the value at {where[1:].lstrip('.')}"
            raise SerializationError(f"{place} is {number!r}: JSON has no NaN or infinity")
    if deeper_than(data, MAX_JSON_DEPTH):
        raise SerializationError(_TOO_DEEP)
    return data


_TOO_DEEP = (
    f"the value is nested deeper than {MAX_JSON_DEPTH} levels of arrays and objects "
    "(the limit of JSON payloads)"
)


def not_serializable(exc: Exception) -> SerializationError:
    """The ``SerializationError`` for a value a JSON codec could not write."""
    if "Maximum serialization depth" in str(exc):  # pydantic's own limit, past 255 levels
        return SerializationError(_TOO_DEEP)
    return SerializationError(f"value is not JSON-serializable: {exc}")


def _non_finite(value: Any) -> tuple[str, float] | None:
    """:func:`~tacoq.model.strict_json.non_finite`, after a fast look: pydantic-core writes
    ``value`` with NaN as ``NaN``; only text that then holds the token is searched in Python."""
    try:
        probe = pydantic_core.to_json(
            value, inf_nan_mode="constants", bytes_mode="base64", serialize_unknown=True
        )
    except (PydanticSerializationError, ValueError, TypeError):
        return non_finite(value)
    if b"NaN" not in probe and b"Infinity" not in probe:
        return None
    return non_finite(value)


@functools.lru_cache(maxsize=512)
def type_adapter(tp: Any) -> pydantic.TypeAdapter[Any]:
    """pydantic's ``TypeAdapter`` of ``tp``, made once per type."""
    return pydantic.TypeAdapter(tp)


def _type_name(tp: Any) -> str:
    return getattr(tp, "__qualname__", None) or repr(tp)


class SerializerRegistry:
    """Chooses a serializer for a type (first that handles it) and decodes payloads."""

    def __init__(self, serializers: Sequence[Serializer]) -> None:
        self.serializers = list(serializers)
        self._codecs: dict[Any, Codec] = {}

    def codec_for(self, tp: Any, *, what: str = "value") -> Codec:
        """The codec for ``tp``; raises ``SerializationError`` when no serializer handles it."""
        try:
            return self._codecs[tp]
        except (KeyError, TypeError):
            pass
        for serializer in self.serializers:
            if serializer.handles(tp):
                codec = serializer.codec(tp)
                # unhashable annotations are rare; they just skip the cache
                with contextlib.suppress(TypeError):
                    self._codecs[tp] = codec
                return codec
        names = ", ".join(s.name for s in self.serializers) or "none"
        raise SerializationError(
            f"no serializer for type {_type_name(tp)} ({what}); installed serializers: {names}"
        )

    def encode(self, value: Any, tp: Any = None, *, what: str = "value") -> Payload:
        """Serialize ``value`` (as ``tp`` when given, else as its own type) into a payload."""
        if tp is None:
            tp = _natural_type(value)
        codec = self.codec_for(tp, what=what)
        try:
            return Payload(codec.content_type, codec.dump(value))
        except SerializationError as exc:
            raise SerializationError(f"{what} cannot be serialized: {exc}") from None

    def decode(self, payload: Payload, tp: Any = None, *, what: str = "value") -> Any:
        """Deserialize a payload into ``tp`` (validated), or by content type if ``tp`` is None."""
        try:
            if tp is None:
                return _decode_untyped(payload)
            codec = self.codec_for(tp, what=what)
            exact = codec.content_type == payload.content_type  # a typed publish: no parsing
            if exact or media_type(codec.content_type) == media_type(payload.content_type):
                return codec.load(payload.data)
            if is_json_type(payload.content_type):
                # A by-name or REST publish sent JSON; validate it into the handler's type.
                return type_adapter(tp).validate_json(payload.data)
            raise SerializationError(
                f"expected content type {codec.content_type} for {_type_name(tp)}, "
                f"got {payload.content_type}"
            )
        except pydantic.ValidationError as exc:
            raise SerializationError(
                f"{what} is invalid: {describe_validation_error(exc)}"
            ) from None
        except SerializationError as exc:
            raise SerializationError(f"{what} is invalid: {exc}") from None


def _natural_type(value: Any) -> Any:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes
    if isinstance(value, str):
        return str
    if isinstance(value, pydantic.BaseModel):
        return type(value)
    return Any


def _decode_untyped(payload: Payload) -> Any:
    base = media_type(payload.content_type)
    if is_json_type(base):
        try:
            return json.loads(payload.data)
        except (ValueError, RecursionError) as exc:
            raise SerializationError(f"payload is not valid JSON: {exc}") from None
    if base.startswith("text/"):
        try:
            return payload.data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise SerializationError(f"text payload is not valid UTF-8: {exc}") from None
    return payload.data


def check_payload_size(payload: Payload, limit: int, *, what: str) -> None:
    """Refuse a payload larger than ``limit`` bytes with a message naming ``what``."""
    if len(payload.data) > limit:
        raise PayloadTooLarge(
            f"{what} is {len(payload.data):,} bytes, over the limit of {limit:,} bytes "
            f"(max_payload_bytes)"
        )


def check_json_payload(payload: Payload, *, what: str) -> None:
    """Refuse a JSON payload nested deeper than :data:`~tacoq.model.strict_json.MAX_JSON_DEPTH`
    (any serializer's: the built-in ones refuse it themselves) with a message naming ``what``."""
    if is_json_type(payload.content_type) and deeper_than(payload.data, MAX_JSON_DEPTH):
        raise SerializationError(f"{what} is invalid: {_TOO_DEEP}")
