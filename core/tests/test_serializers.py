"""SerializerRegistry: choosing a serializer by annotation, errors that name things, size limits,
and ``Task.result`` decoding through the process-wide registry."""

from __future__ import annotations

import dataclasses
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pydantic
import pytest

from tacoq.builtin.serializers import (
    BytesSerializer,
    JsonSerializer,
    PydanticModelSerializer,
    TextSerializer,
)
from tacoq.errors import PayloadTooLarge, SerializationError, TacoqError, TaskFailed
from tacoq.model.task import ErrorInfo, Payload, Task, TaskStatus
from tacoq.plugins import build_plugin_host, default_registry, reset_plugin_host
from tacoq.serialization import (
    BYTES_CONTENT_TYPE,
    DEFAULT_MAX_PAYLOAD_BYTES,
    JSON_CONTENT_TYPE,
    TEXT_CONTENT_TYPE,
    SerializerRegistry,
    check_payload_size,
)


class ResizeInput(pydantic.BaseModel):
    w: int
    h: int


class ResizeOutput(pydantic.BaseModel):
    url: str
    bytes_written: int


@dataclasses.dataclass
class Point:
    x: int
    y: int


class Widget:
    """A plain class pydantic cannot build a schema for."""


@pytest.fixture
def registry() -> SerializerRegistry:
    """The built-in serializers in their registration order."""
    return SerializerRegistry(
        [BytesSerializer(), TextSerializer(), PydanticModelSerializer(), JsonSerializer()]
    )


@pytest.fixture
def builtins_only() -> Iterator[None]:
    """A process-wide plugin host with only the built-ins, restored afterwards."""
    reset_plugin_host(build_plugin_host(env={"TACOQ_DISABLE_PLUGIN_AUTOLOAD": "1"}))
    yield
    reset_plugin_host(None)


# -- choosing by annotation ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tp", "content_type"),
    [
        (bytes, BYTES_CONTENT_TYPE),
        (str, TEXT_CONTENT_TYPE),
        (ResizeInput, JSON_CONTENT_TYPE),
        (dict, JSON_CONTENT_TYPE),
        (dict[str, int], JSON_CONTENT_TYPE),
        (list[int], JSON_CONTENT_TYPE),
        (Point, JSON_CONTENT_TYPE),
        (int, JSON_CONTENT_TYPE),
        (Any, JSON_CONTENT_TYPE),
    ],
)
def test_codec_content_type_by_annotation(
    registry: SerializerRegistry, tp: Any, content_type: str
) -> None:
    assert registry.codec_for(tp).content_type == content_type


def test_serializer_chosen_by_annotation(registry: SerializerRegistry) -> None:
    """bytes/str get their own serializers, models pydantic, everything else json."""

    def chosen(tp: Any) -> str:
        return next(s.name for s in registry.serializers if s.handles(tp))

    assert chosen(bytes) == "bytes"
    assert chosen(str) == "text"
    assert chosen(ResizeInput) == "pydantic"
    assert chosen(dict) == "json"
    assert chosen(list[int]) == "json"
    assert chosen(Point) == "json"


def test_codecs_are_cached_per_type(registry: SerializerRegistry) -> None:
    assert registry.codec_for(list[int]) is registry.codec_for(list[int])
    assert registry.codec_for(ResizeInput) is registry.codec_for(ResizeInput)


@pytest.mark.parametrize(
    ("value", "tp"),
    [
        (b"\x00\x01", bytes),
        ("héllo", str),
        (ResizeInput(w=1, h=2), ResizeInput),
        ({"a": 1}, dict),
        ([1, 2, 3], list[int]),
        (Point(1, 2), Point),
    ],
)
def test_encode_decode_roundtrip(registry: SerializerRegistry, value: Any, tp: Any) -> None:
    payload = registry.encode(value, tp)
    assert isinstance(payload, Payload)
    assert registry.decode(payload, tp) == value


def test_encode_without_type_uses_the_value_type(registry: SerializerRegistry) -> None:
    assert registry.encode(b"raw").content_type == BYTES_CONTENT_TYPE
    assert registry.encode("text").content_type == TEXT_CONTENT_TYPE
    model = registry.encode(ResizeInput(w=3, h=4))
    assert model == Payload(JSON_CONTENT_TYPE, b'{"w":3,"h":4}')
    assert registry.encode({"k": [1, None]}) == Payload(JSON_CONTENT_TYPE, b'{"k":[1,null]}')


def test_encode_validates_a_dict_into_the_model(registry: SerializerRegistry) -> None:
    """A typed publish given a dict is validated into the model (a typo fails at publish)."""
    payload = registry.encode({"w": "5", "h": 6}, ResizeInput)
    assert registry.decode(payload, ResizeInput) == ResizeInput(w=5, h=6)


def test_decode_untyped_by_content_type(registry: SerializerRegistry) -> None:
    assert registry.decode(Payload(JSON_CONTENT_TYPE, b'{"a": [1, 2]}')) == {"a": [1, 2]}
    assert registry.decode(Payload("application/problem+json", b"[true]")) == [True]
    assert registry.decode(Payload(TEXT_CONTENT_TYPE, "ü".encode())) == "ü"
    assert registry.decode(Payload(BYTES_CONTENT_TYPE, b"\xff")) == b"\xff"


# -- errors that name things -----------------------------------------------------------------


@pytest.mark.parametrize("tp", [Widget, type(threading.Lock())])
def test_unhandled_type_names_the_type_and_the_serializers(
    registry: SerializerRegistry, tp: Any
) -> None:
    with pytest.raises(SerializationError) as info:
        registry.codec_for(tp, what="input of task resize")
    message = str(info.value)
    assert tp.__name__ in message
    assert "input of task resize" in message
    assert "installed serializers: bytes, text, pydantic, json" in message


def test_unhandled_type_with_no_serializers() -> None:
    with pytest.raises(SerializationError, match="installed serializers: none"):
        SerializerRegistry([]).codec_for(int)


def test_encode_of_an_unhandled_value_names_what(registry: SerializerRegistry) -> None:
    with pytest.raises(SerializationError, match="Widget") as info:
        registry.encode(Widget(), Widget, what="input of task resize")
    assert "input of task resize" in str(info.value)


def test_encode_validation_error_names_field_and_what(registry: SerializerRegistry) -> None:
    with pytest.raises(SerializationError) as info:
        registry.encode({"w": "wide", "h": 2}, ResizeInput, what="input of task resize")
    message = str(info.value)
    assert message.startswith("input of task resize cannot be serialized")
    assert "w: " in message
    assert "valid integer" in message
    assert "h:" not in message  # only the failing field is named


def test_encode_missing_field_is_named(registry: SerializerRegistry) -> None:
    with pytest.raises(SerializationError, match=r"h: Field required"):
        registry.encode({"w": 1}, ResizeInput, what="input of task resize")


def test_decode_validation_error_names_field_and_what(registry: SerializerRegistry) -> None:
    payload = Payload(JSON_CONTENT_TYPE, b'{"w": 1, "h": "tall"}')
    with pytest.raises(SerializationError) as info:
        registry.decode(payload, ResizeInput, what="input of task resize")
    message = str(info.value)
    assert message.startswith("input of task resize is invalid")
    assert "h: Input should be a valid integer" in message


def test_decode_nested_field_path_is_named(registry: SerializerRegistry) -> None:
    payload = Payload(JSON_CONTENT_TYPE, b'[{"x": 1, "y": 2}, {"x": 1, "y": "no"}]')
    with pytest.raises(SerializationError, match=r"1\.y: Input should be a valid integer"):
        registry.decode(payload, list[Point], what="output of task plot")


def test_json_value_of_the_wrong_type_fails_at_encode(registry: SerializerRegistry) -> None:
    """A typed publish of ``list[int]`` given a string fails at publish, not in the worker."""
    with pytest.raises(SerializationError, match="input of task sum cannot be serialized"):
        registry.encode("not a list", list[int], what="input of task sum")
    with pytest.raises(SerializationError):
        registry.encode([1, "two"], list[int], what="input of task sum")


def test_wrong_content_type_is_refused(registry: SerializerRegistry) -> None:
    with pytest.raises(SerializationError, match="expected content type") as info:
        registry.decode(Payload(BYTES_CONTENT_TYPE, b"x"), str, what="input of task echo")
    assert "input of task echo" in str(info.value)


def test_invalid_utf8_text_is_refused(registry: SerializerRegistry) -> None:
    with pytest.raises(SerializationError, match="UTF-8"):
        registry.decode(Payload(TEXT_CONTENT_TYPE, b"\xff"), str, what="input of task echo")


def test_garbage_json_is_refused_untyped(registry: SerializerRegistry) -> None:
    with pytest.raises(SerializationError, match="not valid JSON"):
        registry.decode(Payload(JSON_CONTENT_TYPE, b"{nope"))


def test_deeply_nested_json_is_a_serialization_error(registry: SerializerRegistry) -> None:
    """A hostile payload gives SerializationError, never RecursionError."""
    payload = Payload(JSON_CONTENT_TYPE, b"[" * 100_000)
    with pytest.raises(SerializationError):
        registry.decode(payload)
    with pytest.raises(SerializationError):
        registry.decode(payload, list[Any])


# -- by-name publishes send JSON -------------------------------------------------------------


def test_json_decodes_into_the_handler_model(registry: SerializerRegistry) -> None:
    """A by-name or REST publish sends JSON; the worker validates it into its model."""
    payload = Payload(JSON_CONTENT_TYPE, b'{"w": 10, "h": "20"}')
    assert registry.decode(payload, ResizeInput) == ResizeInput(w=10, h=20)


def test_json_with_a_suffix_content_type_decodes_into_a_model(
    registry: SerializerRegistry,
) -> None:
    payload = Payload("application/vnd.example+json", b'{"w": 1, "h": 2}')
    assert registry.decode(payload, ResizeInput) == ResizeInput(w=1, h=2)


def test_json_decodes_into_str_and_dataclass_handlers(registry: SerializerRegistry) -> None:
    assert registry.decode(Payload(JSON_CONTENT_TYPE, b'"hi"'), str) == "hi"
    assert registry.decode(Payload(JSON_CONTENT_TYPE, b'{"x": 1, "y": 2}'), Point) == Point(1, 2)


def test_by_name_json_is_still_validated(registry: SerializerRegistry) -> None:
    payload = Payload(JSON_CONTENT_TYPE, b'{"w": 10}')
    with pytest.raises(SerializationError, match="input of task resize is invalid: h: "):
        registry.decode(payload, ResizeInput, what="input of task resize")


# -- payload size ----------------------------------------------------------------------------


def test_default_max_payload_is_one_mib() -> None:
    assert DEFAULT_MAX_PAYLOAD_BYTES == 1024 * 1024


def test_payload_at_the_limit_is_accepted() -> None:
    check_payload_size(Payload(BYTES_CONTENT_TYPE, b"x" * 1000), 1000, what="input")


def test_payload_over_the_limit_names_both_sizes() -> None:
    payload = Payload(BYTES_CONTENT_TYPE, b"x" * 2_000_000)
    with pytest.raises(PayloadTooLarge) as info:
        check_payload_size(payload, DEFAULT_MAX_PAYLOAD_BYTES, what="input of task resize")
    message = str(info.value)
    assert "input of task resize" in message
    assert "2,000,000 bytes" in message
    assert "1,048,576 bytes" in message
    assert "max_payload_bytes" in message
    assert isinstance(info.value, SerializationError)


# -- Task.result -----------------------------------------------------------------------------


def _task(**fields: Any) -> Task:
    base: dict[str, Any] = {
        "id": uuid.UUID("12345678-1234-5678-1234-567812345678"),
        "task_kind": "resize",
        "worker_kind": "images",
    }
    base.update(fields)
    return Task(**base)


def test_default_registry_comes_from_the_plugin_host(builtins_only: None) -> None:
    assert [s.name for s in default_registry().serializers] == [
        "bytes",
        "text",
        "pydantic",
        "json",
    ]
    assert default_registry() is default_registry()


def test_result_into_model(builtins_only: None) -> None:
    task = _task(
        status=TaskStatus.COMPLETED,
        output=Payload(JSON_CONTENT_TYPE, b'{"url": "s3://x.png", "bytes_written": 12}'),
        completed_at=datetime(2024, 1, 1, tzinfo=UTC),
    )
    result = task.result(ResizeOutput)
    assert isinstance(result, ResizeOutput)
    assert result == ResizeOutput(url="s3://x.png", bytes_written=12)


def test_result_untyped(builtins_only: None) -> None:
    task = _task(status=TaskStatus.COMPLETED, output=Payload(JSON_CONTENT_TYPE, b"[1, 2]"))
    assert task.result() == [1, 2]
    text = _task(status=TaskStatus.COMPLETED, output=Payload(TEXT_CONTENT_TYPE, b"done"))
    assert text.result() == "done"
    assert text.result(str) == "done"


def test_result_without_output_is_none(builtins_only: None) -> None:
    assert _task(status=TaskStatus.COMPLETED).result() is None


def test_result_invalid_output_names_the_task(builtins_only: None) -> None:
    task = _task(
        status=TaskStatus.COMPLETED,
        output=Payload(JSON_CONTENT_TYPE, b'{"url": "s3://x.png"}'),
    )
    with pytest.raises(SerializationError) as info:
        task.result(ResizeOutput)
    assert f"output of task {task.id}" in str(info.value)
    assert "bytes_written" in str(info.value)


def test_result_raises_task_failed_with_details(builtins_only: None) -> None:
    trace = 'Traceback (most recent call last):\n  File "h.py", line 3\nValueError: bad size\n'
    task = _task(
        status=TaskStatus.COMPLETED,
        is_error=True,
        error=ErrorInfo(type="ValueError", message="bad size", traceback=trace),
    )
    with pytest.raises(TaskFailed) as info:
        task.result(ResizeOutput)
    failed = info.value
    assert failed.task_id == task.id
    assert failed.error_type == "ValueError"
    assert failed.message == "bad size"
    assert failed.traceback == trace
    assert "ValueError: bad size" in str(failed)
    assert isinstance(failed, TacoqError)


def test_result_failed_without_details(builtins_only: None) -> None:
    task = _task(status=TaskStatus.COMPLETED, is_error=True)
    with pytest.raises(TaskFailed) as info:
        task.result()
    assert info.value.error_type == "UnknownError"
    assert info.value.traceback is None


@pytest.mark.parametrize("status", [TaskStatus.PENDING, TaskStatus.RUNNING])
def test_result_while_not_completed(builtins_only: None, status: TaskStatus) -> None:
    task = _task(status=status)
    with pytest.raises(TacoqError, match="has not completed yet") as info:
        task.result()
    assert not isinstance(info.value, TaskFailed)
    assert str(task.id) in str(info.value)
