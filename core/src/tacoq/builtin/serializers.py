"""Built-in plugin: serializers for bytes, str, pydantic models and any JSON value.

Registered last (``trylast``), so a plugin's serializer wins for the types it claims. The JSON
codecs are strict (:func:`tacoq.serialization.strict_json_bytes`): a value JSON cannot carry
(NaN, an infinity, anywhere in it) and a value nested deeper than
:data:`~tacoq.model.strict_json.MAX_JSON_DEPTH` levels of arrays and objects raise
``SerializationError`` when dumped, instead of being written as ``null`` or written at all.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pydantic
from pydantic_core import PydanticSerializationError

from tacoq.contracts.hookspecs import hookimpl
from tacoq.contracts.serializer import Codec, Serializer
from tacoq.errors import SerializationError
from tacoq.serialization import (
    BYTES_CONTENT_TYPE,
    JSON_CONTENT_TYPE,
    TEXT_CONTENT_TYPE,
    describe_validation_error,
    not_serializable,
    strict_json_bytes,
    type_adapter,
)

__all__ = [
    "BytesSerializer",
    "JsonSerializer",
    "PydanticModelSerializer",
    "TextSerializer",
    "tacoq_serializers",
]


class _BytesCodec:
    content_type = BYTES_CONTENT_TYPE

    def dump(self, value: Any) -> bytes:
        if not isinstance(value, bytes | bytearray | memoryview):
            raise SerializationError(f"expected bytes, got {type(value).__name__}")
        return bytes(value)

    def load(self, data: bytes) -> Any:
        return data


class BytesSerializer:
    """``bytes`` as ``application/octet-stream``, untouched."""

    name = "bytes"
    content_type = BYTES_CONTENT_TYPE

    def handles(self, tp: Any) -> bool:
        """Handles ``bytes``."""
        return tp is bytes

    def codec(self, tp: Any) -> Codec:
        """The bytes codec."""
        return _BytesCodec()


class _TextCodec:
    content_type = TEXT_CONTENT_TYPE

    def dump(self, value: Any) -> bytes:
        if not isinstance(value, str):
            raise SerializationError(f"expected str, got {type(value).__name__}")
        try:
            return value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise SerializationError(
                f"the text holds a lone surrogate ({value[exc.start]!r} at index {exc.start}), "
                "which UTF-8 cannot carry"
            ) from None

    def load(self, data: bytes) -> Any:
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise SerializationError(f"text payload is not valid UTF-8: {exc}") from None


class TextSerializer:
    """``str`` as UTF-8 ``text/plain``."""

    name = "text"
    content_type = TEXT_CONTENT_TYPE

    def handles(self, tp: Any) -> bool:
        """Handles ``str``."""
        return tp is str

    def codec(self, tp: Any) -> Codec:
        """The text codec."""
        return _TextCodec()


class _ModelCodec:
    content_type = JSON_CONTENT_TYPE

    def __init__(self, model: type[pydantic.BaseModel]) -> None:
        self.model = model

    def dump(self, value: Any) -> bytes:
        if not isinstance(value, self.model):
            # A dict (or another model) is validated first, so a typo fails at publish.
            try:
                value = self.model.model_validate(value)
            except pydantic.ValidationError as exc:
                raise SerializationError(describe_validation_error(exc)) from None
        serializer = value.__pydantic_serializer__
        try:
            data = serializer.to_json(value)
        except (PydanticSerializationError, ValueError, TypeError) as exc:
            raise not_serializable(exc) from None
        return strict_json_bytes(data, lambda: serializer.to_python(value))

    def load(self, data: bytes) -> Any:
        try:
            return self.model.model_validate_json(data)
        except pydantic.ValidationError as exc:
            raise SerializationError(describe_validation_error(exc)) from None


class PydanticModelSerializer:
    """Pydantic models as JSON, validated on load."""

    name = "pydantic"
    content_type = JSON_CONTENT_TYPE

    def handles(self, tp: Any) -> bool:
        """Handles subclasses of ``pydantic.BaseModel``."""
        return isinstance(tp, type) and issubclass(tp, pydantic.BaseModel)

    def codec(self, tp: Any) -> Codec:
        """A codec for the model ``tp``."""
        return _ModelCodec(tp)


class _JsonCodec:
    content_type = JSON_CONTENT_TYPE

    def __init__(self, adapter: pydantic.TypeAdapter[Any]) -> None:
        self.adapter = adapter

    def dump(self, value: Any) -> bytes:
        try:
            # warnings="error": a value that does not match the type fails here, at publish.
            data = self.adapter.dump_json(value, warnings="error")
        except (PydanticSerializationError, ValueError, TypeError) as exc:
            raise not_serializable(exc) from None
        return strict_json_bytes(data, lambda: self.adapter.dump_python(value))

    def load(self, data: bytes) -> Any:
        try:
            return self.adapter.validate_json(data)
        except pydantic.ValidationError as exc:
            raise SerializationError(describe_validation_error(exc)) from None


class JsonSerializer:
    """Any type pydantic can validate (dict, list, int, dataclasses, TypedDict, ...) as JSON."""

    name = "json"
    content_type = JSON_CONTENT_TYPE

    def handles(self, tp: Any) -> bool:
        """Handles every type pydantic can build a schema for."""
        try:
            type_adapter(tp)
        except (pydantic.PydanticSchemaGenerationError, pydantic.PydanticUserError, TypeError):
            return False
        return True

    def codec(self, tp: Any) -> Codec:
        """A codec validating through a cached ``TypeAdapter``."""
        return _JsonCodec(type_adapter(tp))


@hookimpl(trylast=True)
def tacoq_serializers() -> Sequence[Serializer]:
    """Bytes, text and pydantic first; the catch-all JSON serializer last."""
    return [BytesSerializer(), TextSerializer(), PydanticModelSerializer(), JsonSerializer()]
