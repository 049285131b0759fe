"""Any stored row can be shown: ``task_to_api`` and the client never raise (issue 16, finding 2).

A row may hold anything: bytes that are not UTF-8, JSON nested deeper than the limit, NaN
literals, text with lone surrogates (written before the fix, or by another client). The API shows
such a payload raw (``text`` or ``base64``) and escapes lone surrogates as ``\\udXXX``, so the
page holding the row serializes, and the client reads it back.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tacoq.model.task import ErrorInfo, Payload, Task, TaskStatus
from tacoq.relay.api_models import TaskOut, TaskPageOut, task_from_api, task_to_api

#: Any code point, lone surrogates included (hypothesis leaves them out by default).
ANY_TEXT = st.text(st.characters(exclude_categories=()), max_size=40)
JSON_TEXTS = st.sampled_from(
    [b"[" * 300 + b"]" * 300, b"[" * 129 + b"]" * 129, b"NaN", b"[Infinity]", b"1e999",
     b'"\\ud800"', b'"\xff"', b"{", b"", b'{"a":1}', b"9" * 5000, b'"\\u0000"']
)  # fmt: skip
CONTENT_TYPES = st.one_of(
    st.sampled_from(["application/json", "text/plain", "application/octet-stream", "x+json"]),
    ANY_TEXT,
)
PAYLOADS = st.builds(Payload, CONTENT_TYPES, st.one_of(st.binary(max_size=64), JSON_TEXTS))
ERRORS = st.builds(ErrorInfo, ANY_TEXT, ANY_TEXT, st.one_of(st.none(), ANY_TEXT))
TIMES = st.one_of(
    st.none(),
    st.datetimes(
        min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.just(UTC)
    ),
)
ROWS = st.builds(
    Task,
    id=st.uuids(),
    task_kind=ANY_TEXT,
    worker_kind=ANY_TEXT,
    status=st.sampled_from(TaskStatus),
    priority=st.integers(-(2**63), 2**63),
    attempt=st.integers(-(2**31), 2**31),
    ttl=st.integers(0, 2**63),
    is_error=st.booleans(),
    error=st.one_of(st.none(), ERRORS),
    input=st.one_of(st.none(), PAYLOADS),
    output=st.one_of(st.none(), PAYLOADS),
    created_at=TIMES,
    started_at=TIMES,
    completed_at=TIMES,
    executed_by=st.one_of(st.none(), ANY_TEXT),
)


@settings(max_examples=300, deadline=None)
@given(rows=st.lists(ROWS, min_size=1, max_size=3))
def test_every_stored_row_renders_and_reads_back(rows: list[Task]) -> None:
    page = TaskPageOut(tasks=[task_to_api(row) for row in rows], next_cursor=None)
    text = page.model_dump_json()
    text.encode("utf-8")  # no lone surrogate left
    json.loads(text, parse_constant=_refuse)  # strict JSON
    for shown in TaskPageOut.model_validate_json(text).tasks:
        back = task_from_api(TaskOut.model_validate(shown.model_dump()))
        assert task_to_api(back) == shown  # showing what the client read gives the same page


def _refuse(name: str) -> Any:
    raise AssertionError(f"{name} in the API's JSON")


def test_a_lone_surrogate_is_escaped_and_other_text_kept() -> None:
    row = Task(
        id=uuid.uuid4(),
        task_kind="k\ud800",
        worker_kind="w\x00",
        error=ErrorInfo("E\udfff", "nul \x00 é 😀 \ud83d", None),
        executed_by="\udc80host",
    )
    out = task_to_api(row)
    assert (out.task_kind, out.worker_kind) == ("k\\ud800", "w\x00")
    assert out.error is not None
    assert (out.error.type, out.error.message) == ("E\\udfff", "nul \x00 é 😀 \\ud83d")
    assert out.executed_by == "\\udc80host"


@pytest.mark.parametrize(
    ("data", "encoding", "shown"),
    [
        (b'{"a": [1, 2.5, "x"]}', "json", {"a": [1, 2.5, "x"]}),
        (b"[" * 128 + b"]" * 128, "json", json.loads(b"[" * 128 + b"]" * 128)),
        pytest.param(b"[" * 129 + b"]" * 129, "text", "[" * 129 + "]" * 129),
        (b"[NaN]", "text", "[NaN]"),
        pytest.param(b"-1e400", "text", "-1e400"),
        pytest.param(b'"\\udc00x"', "text", '"\\udc00x"'),
        (b'"\\ud83d\\ude00"', "json", "\U0001f600"),
        (b"\xff", "base64", "/w=="),
    ],
    ids=["object", "depth-128", "depth-129", "nan", "overflow", "surrogate", "pair", "bad-utf8"],
)
def test_json_payloads_are_json_only_when_strict_json_within_the_limit(
    data: bytes, encoding: str, shown: Any
) -> None:
    from tacoq.relay.api_models import payload_to_api

    out = payload_to_api(Payload("application/json", data))
    assert (out.encoding, out.data) == (encoding, shown)
