"""The built-in serializers (bytes, text, pydantic, json) pass the same contract as any plugin."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

import pydantic
import pytest
from typing_extensions import TypedDict

from tacoq.builtin.serializers import (
    BytesSerializer,
    JsonSerializer,
    PydanticModelSerializer,
    TextSerializer,
)
from tacoq.contracts.serializer import Serializer
from tacoq.testing.serializer_contract import (
    GARBAGE_PAYLOADS,
    SerializerContract,
    Unserializable,
    is_media_type,
)


class Resize(pydantic.BaseModel):
    w: int
    h: int
    label: str | None = None


class Job(pydantic.BaseModel):
    name: str
    sizes: list[Resize]
    at: datetime
    tags: dict[str, float] = {}


@dataclasses.dataclass
class Point:
    x: int
    y: int


class Movie(TypedDict):
    title: str
    year: int


class TestBytesSerializer(SerializerContract):
    @pytest.fixture
    def serializer(self) -> Serializer:
        return BytesSerializer()

    @pytest.fixture
    def samples(self) -> list[tuple[Any, Any]]:
        return [(bytes, b""), (bytes, b"\x00\xff binary \x80"), (bytes, bytes(range(256)))]

    @pytest.fixture
    def wrong_values(self) -> list[Any]:
        return [Unserializable(), "text is not bytes", 42]

    @pytest.fixture
    def garbage(self) -> list[bytes]:
        return []  # every byte string is a valid bytes payload


class TestTextSerializer(SerializerContract):
    @pytest.fixture
    def serializer(self) -> Serializer:
        return TextSerializer()

    @pytest.fixture
    def samples(self) -> list[tuple[Any, Any]]:
        return [(str, ""), (str, "plain"), (str, "héllo 🌮\nsecond line\x00")]

    @pytest.fixture
    def wrong_values(self) -> list[Any]:
        return [Unserializable(), b"bytes are not text", 42, None]


class TestPydanticModelSerializer(SerializerContract):
    @pytest.fixture
    def serializer(self) -> Serializer:
        return PydanticModelSerializer()

    @pytest.fixture
    def samples(self) -> list[tuple[Any, Any]]:
        return [
            (Resize, Resize(w=640, h=480)),
            (Resize, Resize(w=1, h=2, label="tiny")),
            (
                Job,
                Job(
                    name="batch",
                    sizes=[Resize(w=1, h=1), Resize(w=2, h=2, label="x")],
                    at=datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC),
                    tags={"weight": 0.5},
                ),
            ),
        ]

    @pytest.fixture
    def wrong_values(self) -> list[Any]:
        # Each is wrong for every sample model: not a mapping, or missing required fields.
        return [Unserializable(), {"unrelated": True}, 42, "not a model"]


class TestJsonSerializer(SerializerContract):
    @pytest.fixture
    def serializer(self) -> Serializer:
        return JsonSerializer()

    @pytest.fixture
    def samples(self) -> list[tuple[Any, Any]]:
        return [
            (dict[str, int], {"a": 1, "b": 2}),
            (list[int], [1, 2, 3]),
            (list[int], []),
            (int, 7),
            (float, 0.1),
            (bool, True),
            (Any, {"nested": [1, "two", None, 3.5, {"k": False}]}),
            (Point, Point(3, 4)),
            (Movie, Movie(title="Tampopo", year=1985)),
            (list[Resize], [Resize(w=1, h=2)]),
        ]


def test_is_media_type() -> None:
    """The contract's media type check accepts real content types and refuses near misses."""
    for good in (
        "application/json",
        "text/plain; charset=utf-8",
        'text/plain;charset="utf-8"',
        "application/vnd.tacoq.updates+json",
        "application/x-msgpack",
    ):
        assert is_media_type(good), good
    for bad in ("", "json", "application/", "/json", "text/plain;", "a b/c", None, b"a/b"):
        assert not is_media_type(bad), bad


def test_default_garbage_is_not_utf8() -> None:
    """The default garbage fails text-based formats, so text and JSON serializers keep it."""
    for data in GARBAGE_PAYLOADS:
        with pytest.raises(UnicodeDecodeError):
            data.decode("utf-8")


class TestContractNeedsOverrides(SerializerContract):
    """A subclass that forgets to override the fixtures fails with a message saying so."""

    @pytest.fixture
    def serializer(self) -> Serializer:
        return JsonSerializer()

    @pytest.fixture
    def samples(self) -> list[tuple[Any, Any]]:
        return []

    def test_samples_are_given(self, samples: list[tuple[Any, Any]]) -> None:
        with pytest.raises(AssertionError, match="at least one"):
            super().test_samples_are_given(samples)
