"""The serializer contract: a pytest suite every serializer plugin inherits.

Override two fixtures — ``serializer`` (the object your ``tacoq_serializers`` hook returns) and
``samples`` (``(type, value)`` pairs it must handle) — and optionally ``wrong_values`` and
``garbage``::

    from tacoq.testing.serializer_contract import SerializerContract

    class TestMsgpackSerializer(SerializerContract):
        @pytest.fixture
        def serializer(self) -> Serializer:
            return MsgpackSerializer()

        @pytest.fixture
        def samples(self) -> list[tuple[Any, Any]]:
            return [(dict[str, int], {"a": 1}), (list[str], ["x", "y"])]

The suite checks that the serializer claims each sample type, that ``load(dump(value))`` gives
the value back (directly and through a :class:`~tacoq.serialization.SerializerRegistry`), that the
content types are valid ``type/subtype`` media types, and that a wrong value or garbage bytes
raise :class:`~tacoq.errors.SerializationError` — never another exception, which a worker would
report as a crash instead of a bad payload.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from tacoq.contracts.serializer import Codec, Serializer
from tacoq.errors import SerializationError
from tacoq.model.task import Payload
from tacoq.serialization import SerializerRegistry

__all__ = ["GARBAGE_PAYLOADS", "SerializerContract", "Unserializable", "is_media_type"]

_TOKEN = r"[A-Za-z0-9!#$&^_.+-]+"
_MEDIA_TYPE_RE = re.compile(
    rf"^{_TOKEN}/{_TOKEN}(\s*;\s*{_TOKEN}=({_TOKEN}|\"[^\"]*\"))*$",
)

#: Bytes no text-based format decodes: each is invalid UTF-8 (and truncated or unbalanced).
GARBAGE_PAYLOADS: tuple[bytes, ...] = (
    b"\xff\xfe\x00\x81 not a payload {",
    b"\x80",
    b'{"unterminated": [1, \xc3',
)


def is_media_type(value: object) -> bool:
    """True when ``value`` is a ``type/subtype`` media type, optionally with parameters."""
    return isinstance(value, str) and _MEDIA_TYPE_RE.match(value) is not None


class Unserializable:
    """A value no serializer should accept: no fields, no JSON form, no buffer protocol."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<Unserializable>"


class SerializerContract:
    """Inherit (as ``TestSomething(SerializerContract)``) and override the fixtures below."""

    # -- fixtures a plugin overrides --------------------------------------------------------

    @pytest.fixture
    def serializer(self) -> Serializer:
        """The serializer under test. Override it."""
        pytest.fail("override the `serializer` fixture in your SerializerContract subclass")

    @pytest.fixture
    def samples(self) -> list[tuple[Any, Any]]:
        """``(type, value)`` pairs the serializer must handle and round-trip. Override it."""
        pytest.fail("override the `samples` fixture in your SerializerContract subclass")

    @pytest.fixture
    def wrong_values(self) -> list[Any]:
        """Values that are wrong for *every* sample type; dumping one must fail cleanly."""
        return [Unserializable()]

    @pytest.fixture
    def garbage(self) -> list[bytes]:
        """Bytes that must fail to load for every sample type (``[]`` if any bytes are valid)."""
        return list(GARBAGE_PAYLOADS)

    # -- the contract ---------------------------------------------------------------------

    def test_samples_are_given(self, samples: list[tuple[Any, Any]]) -> None:
        """The suite proves nothing without samples."""
        assert samples, "the `samples` fixture must list at least one (type, value) pair"

    def test_is_a_serializer(self, serializer: Serializer) -> None:
        """It follows the ``Serializer`` protocol and has a name to show in errors."""
        assert isinstance(serializer, Serializer)
        assert isinstance(serializer.name, str)
        assert serializer.name.strip(), "a serializer needs a non-empty name"

    def test_content_type_is_a_media_type(
        self, serializer: Serializer, samples: list[tuple[Any, Any]]
    ) -> None:
        """The serializer's and every codec's content type is a valid ``type/subtype``."""
        assert is_media_type(serializer.content_type), serializer.content_type
        for tp, _ in samples:
            codec = serializer.codec(tp)
            assert is_media_type(codec.content_type), (tp, codec.content_type)

    def test_handles_every_sample_type(
        self, serializer: Serializer, samples: list[tuple[Any, Any]]
    ) -> None:
        """``handles`` claims each sample type and ``codec`` makes a ``Codec`` for it."""
        for tp, _ in samples:
            assert serializer.handles(tp), f"{serializer.name} does not handle {tp!r}"
            assert isinstance(serializer.codec(tp), Codec)

    def test_roundtrip(self, serializer: Serializer, samples: list[tuple[Any, Any]]) -> None:
        """``load(dump(value)) == value`` and ``dump`` returns ``bytes``."""
        for tp, value in samples:
            codec = serializer.codec(tp)
            data = codec.dump(value)
            assert isinstance(data, bytes), f"dump of {tp!r} returned {type(data).__name__}"
            assert codec.load(data) == value, f"{tp!r} did not round-trip"

    def test_roundtrip_through_registry(
        self, serializer: Serializer, samples: list[tuple[Any, Any]]
    ) -> None:
        """A registry holding only this serializer encodes and decodes every sample."""
        registry = SerializerRegistry([serializer])
        for tp, value in samples:
            payload = registry.encode(value, tp, what="contract sample")
            assert isinstance(payload, Payload)
            assert registry.decode(payload, tp, what="contract sample") == value

    def test_dump_is_stable(self, serializer: Serializer, samples: list[tuple[Any, Any]]) -> None:
        """Dumping a loaded value again gives the same bytes (no drift on retries)."""
        for tp, value in samples:
            codec = serializer.codec(tp)
            data = codec.dump(value)
            assert codec.dump(codec.load(data)) == data, f"{tp!r} changed on a second dump"

    def test_wrong_value_raises_serialization_error(
        self,
        serializer: Serializer,
        samples: list[tuple[Any, Any]],
        wrong_values: list[Any],
    ) -> None:
        """Dumping a value of the wrong type raises ``SerializationError``, nothing else."""
        for tp, _ in samples:
            codec = serializer.codec(tp)
            for wrong in wrong_values:
                with pytest.raises(SerializationError):
                    codec.dump(wrong)

    def test_garbage_raises_serialization_error(
        self,
        serializer: Serializer,
        samples: list[tuple[Any, Any]],
        garbage: list[bytes],
    ) -> None:
        """Loading garbage bytes raises ``SerializationError``, nothing else."""
        if not garbage:
            pytest.skip("this serializer accepts any bytes")
        for tp, _ in samples:
            codec = serializer.codec(tp)
            for data in garbage:
                with pytest.raises(SerializationError):
                    codec.load(data)
