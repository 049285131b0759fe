"""JSON payloads are strict: no NaN or infinities, at most ``MAX_JSON_DEPTH`` levels deep.

The JSON serializer refuses what JSON cannot carry when it dumps (a handler returning NaN used
to be stored as ``null``: issue 15, finding 5), and the depth limit holds on every publish path
(typed and by-name, ``Publisher`` and ``SyncPublisher``) and for outputs (issue 16, finding 2).
Worker tests run on the in-process broker and store, as in ``test_worker.py``.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from tacoq.errors import SerializationError
from tacoq.model import strict_json
from tacoq.model.task import Task
from tacoq.plugins import default_registry
from tacoq.publishing.publisher import Publisher, SyncPublisher
from tacoq.relay.engine import RelayEngine
from tacoq.testing import fresh_namespace
from tacoq.testing.system import in_process_system
from tacoq.worker import WorkerApp

LIMIT = 128


def nested(depth: int) -> Any:
    """A list ``depth`` levels deep around 1."""
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


class Reading(BaseModel):
    value: float
    note: str | None = None


class Wrapper(BaseModel):
    inner: Any


@dataclasses.dataclass
class Point:
    x: float


# -- strict_json ---------------------------------------------------------------------------------


def depth_of(value: Any) -> int:
    """The nesting of arrays and objects in ``value``, the slow and obvious way."""
    if isinstance(value, list):
        return 1 + max(map(depth_of, value), default=0)
    if isinstance(value, dict):
        return 1 + max(map(depth_of, value.values()), default=0)
    return 0


TRICKY_TEXT = st.text(st.sampled_from('[]{}"\\ab\u00e9\n'), max_size=6)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | TRICKY_TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TRICKY_TEXT, inner, max_size=3),
    max_leaves=40,
)


@settings(max_examples=400, deadline=None)
@given(value=JSON_VALUES, extra=st.integers(0, 6), ascii=st.booleans(), indent=st.booleans())
def test_deeper_than_agrees_with_the_obvious_depth(
    value: Any, extra: int, ascii: bool, indent: bool
) -> None:
    import json

    for _ in range(extra):  # deeper than the strategy goes by itself
        value = [value]
    depth = depth_of(value)
    text = json.dumps(value, ensure_ascii=ascii, indent=1 if indent else None).encode()
    for limit in {0, 1, depth - 1, depth, depth + 1, 8}:
        if limit >= 0:
            assert strict_json.deeper_than(text, limit) is (depth > limit), (text, limit)


@pytest.mark.parametrize("limit", [0, 3, 9, 128])
def test_the_bracket_walk_alone_agrees_too(limit: int) -> None:
    for depth in range(max(limit - 2, 0), limit + 3):
        for inner in (b"1", b"", b'"[[{"'):
            text = b"[" * depth + inner + b"]" * depth
            assert strict_json._deeper_walking(b"[" * depth + b"]" * depth, limit) is (
                depth > limit
            )
            assert strict_json.deeper_than(text, limit) is (depth > limit)


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        (b"NaN", "NaN"),
        (b'{"a": [Infinity]}', "Infinity"),
        (b"-Infinity", "Infinity"),
        (b"[1e999]", "1e999"),
        (b'{"x": -12.5E+0400}', "-12.5E+0400"),
        (b"1" + b"0" * 400 + b".5", "beyond the range"),
        (b'"\\udc00"', "surrogate"),
        (b'"\xff\xfe"', "UTF-8 at byte 1"),
        (b"[" * 129 + b"]" * 129, "deeper than 128"),
        (b"[" * 5000 + b"]" * 5000, "deeper than 128"),
        (b"{", "not valid JSON"),
        (b"", "not valid JSON"),
    ],
)
def test_loads_says_why_text_is_not_strict_json(text: bytes, needle: str) -> None:
    with pytest.raises(strict_json.StrictJSONError, match=re.escape(needle)):
        strict_json.loads(text)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        (b'"\\ud83d\\ude00"', "\U0001f600"),
        (b"1e308", 1e308),
        (b"-1e-999", -0.0),
        (b'"\\u0000"', "\x00"),
        (b'{"1e999": "[[[["}', {"1e999": "[[[["}),
        (b"9" * 400, int("9" * 400)),
    ],
)
def test_loads_takes_strict_json(text: bytes, value: Any) -> None:
    assert strict_json.loads(text) == value


def test_non_finite_names_the_path() -> None:
    assert strict_json.non_finite({"a": [1, {"b": float("-inf")}]}) == ("$.a[1].b", float("-inf"))
    assert strict_json.non_finite([0.5, None, "nan"]) is None


# -- the serializer -------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
@pytest.mark.parametrize(
    ("tp", "make"),
    [
        (Any, lambda f: f),
        (Any, lambda f: {"a": [1, f]}),
        (list[float], lambda f: [0.5, f]),
        (dict[str, Any], lambda f: {"deep": {"x": f}}),
        (Reading, lambda f: Reading(value=f)),
        (Reading, lambda f: {"value": f}),
        (Wrapper, lambda f: Wrapper(inner=[f])),
        (Point, lambda f: Point(f)),
    ],
    ids=["any", "any-nested", "list", "dict", "model", "model-from-dict", "model-any", "dataclass"],
)
def test_json_cannot_carry_nan_or_infinity(tp: Any, make: Any, bad: float) -> None:
    codec = default_registry().codec_for(tp)
    with pytest.raises(SerializationError, match=r"NaN|nfinity|not finite"):
        codec.dump(make(bad))


def test_finite_floats_and_nulls_still_dump() -> None:
    codec = default_registry().codec_for(Reading)
    assert codec.load(codec.dump(Reading(value=1e308, note=None))) == Reading(value=1e308)
    assert default_registry().codec_for(Any).dump([None, 0.5, "NaN"]) == b'[null,0.5,"NaN"]'


@pytest.mark.parametrize("depth", [LIMIT + 1, 200, 255, 300])
@pytest.mark.parametrize("tp", [Any, Wrapper])
def test_json_deeper_than_the_limit_is_refused(tp: Any, depth: int) -> None:
    value = nested(depth) if tp is Any else Wrapper(inner=nested(depth - 1))
    with pytest.raises(SerializationError, match=f"deeper than {LIMIT}"):
        default_registry().codec_for(tp).dump(value)


def test_json_at_the_limit_dumps() -> None:
    assert default_registry().codec_for(Any).dump(nested(LIMIT)).count(b"[") == LIMIT
    assert b'"[[[[' in default_registry().codec_for(Any).dump({"text": "[" * 1000})


# -- every publish path ---------------------------------------------------------------------------


APP = WorkerApp("strict")


@APP.task
async def take_any(value: Any) -> Any:
    return value


@APP.task
async def take_model(value: Wrapper) -> int:
    return 1


async def test_async_publishes_refuse_input_deeper_than_the_limit() -> None:
    ns = fresh_namespace("strict")
    async with Publisher(f"memory://{ns}", namespace=ns) as pub:
        for task, value, options in (
            (take_any, nested(LIMIT + 1), {}),
            (take_model, Wrapper(inner=nested(LIMIT)), {}),
            ("take_any", nested(LIMIT + 1), {"worker_kind": "strict"}),
            ("take_any", {"x": float("nan")}, {"worker_kind": "strict"}),
        ):
            with pytest.raises(SerializationError, match="input of task 'take_"):
                await pub.publish(task, value, **options)
        assert (await pub.publish(take_any, nested(LIMIT))).task_kind == "take_any"


def test_sync_publishes_refuse_input_deeper_than_the_limit() -> None:
    ns = fresh_namespace("strict")
    with SyncPublisher(f"memory://{ns}", namespace=ns) as pub:
        with pytest.raises(SerializationError, match=f"deeper than {LIMIT}"):
            pub.publish(take_any, nested(LIMIT + 1))
        with pytest.raises(SerializationError, match=f"deeper than {LIMIT}"):
            pub.publish("take_any", nested(LIMIT + 1), worker_kind="strict")


# -- outputs: the task completes as a SerializationError ------------------------------------------


@asynccontextmanager
async def system(app: WorkerApp) -> AsyncIterator[tuple[Publisher, RelayEngine]]:
    """A publisher and a relay on a fresh memory:// server, with a worker of ``app``."""
    async with in_process_system("strict-out") as found:
        found.serve(app)
        yield found.pub, found.relay


OUT = WorkerApp("strict-out")


@OUT.task
async def give_nan(kind: str) -> Any:
    return {"nan": float("nan"), "inf": float("inf")}.get(kind, float("-inf"))


@OUT.task
async def give_reading(kind: str) -> Reading:
    return Reading(value=float(kind))


@OUT.task
async def give_deep(depth: int) -> Any:
    return nested(depth)


async def completed(relay: RelayEngine, task: Task) -> Task:
    row = await relay.store.wait(task.id, 15)
    assert row is not None
    assert row.is_completed, row
    return row


@pytest.mark.parametrize("kind", ["nan", "inf", "-inf"])
async def test_a_handler_returning_nan_completes_as_a_serialization_error(kind: str) -> None:
    async with system(OUT) as (pub, relay):
        row = await completed(relay, await pub.publish(give_nan, kind))
        model = await completed(relay, await pub.publish(give_reading, kind))
    for done in (row, model):
        assert done.is_error, done.output
        assert done.output is None
        assert done.error is not None
        assert done.error.type == "SerializationError"


async def test_a_handler_returning_json_deeper_than_the_limit_completes_as_an_error() -> None:
    async with system(OUT) as (pub, relay):
        deep = await completed(relay, await pub.publish(give_deep, LIMIT + 1))
        fine = await completed(relay, await pub.publish(give_deep, LIMIT))
    assert deep.is_error
    assert deep.error is not None
    assert deep.error.type == "SerializationError"
    assert f"deeper than {LIMIT}" in deep.error.message
    assert not fine.is_error
    assert fine.output is not None
    assert fine.output.data.count(b"[") == LIMIT
