"""Wire format v1: assignments and updates round-trip; malformed messages are refused by name."""

from __future__ import annotations

import base64
import json
import re
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tacoq.errors import UnknownMessageKind, WireFormatError
from tacoq.model.task import ErrorInfo, Payload, Phase, TaskEvent
from tacoq.model.wire import (
    MAX_HEADER_VALUE_LENGTH,
    UPDATES_CONTENT_TYPE,
    WIRE_VERSION,
    Envelope,
    decode,
    decode_assignment,
    decode_updates,
    encode_assignment,
    encode_updates,
    format_timestamp,
    parse_timestamp,
    payload_from_json,
    payload_to_json,
)

TASK_ID = uuid.UUID("0f0e0d0c-0b0a-4908-8706-050403020100")
CREATED = datetime(2024, 2, 29, 23, 59, 58, 123456, tzinfo=UTC)
STARTED = datetime(2024, 3, 1, 0, 0, 1, 1, tzinfo=UTC)
COMPLETED = datetime(2024, 3, 1, 0, 0, 2, 999999, tzinfo=UTC)


def _assignment(**fields: Any) -> TaskEvent:
    base: dict[str, Any] = {
        "id": TASK_ID,
        "attempt": 1,
        "phase": Phase.ASSIGNED,
        "task_kind": "resize",
        "worker_kind": "images",
        "ttl": 3600,
        "priority": 200,
        "created_at": CREATED,
        "input": Payload("application/json", b'{"w": 640, "h": 480}'),
    }
    base.update(fields)
    return TaskEvent(**base)


def _running(**fields: Any) -> TaskEvent:
    base: dict[str, Any] = {
        "id": TASK_ID,
        "attempt": 2,
        "phase": Phase.RUNNING,
        "task_kind": "resize",
        "worker_kind": "images",
        "ttl": 60,
        "executed_by": "worker-1",
        "started_at": STARTED,
    }
    base.update(fields)
    return TaskEvent(**base)


def _completed(**fields: Any) -> TaskEvent:
    base: dict[str, Any] = {
        "id": TASK_ID,
        "attempt": 2,
        "phase": Phase.COMPLETED,
        "task_kind": "resize",
        "worker_kind": "images",
        "ttl": 60,
        "executed_by": "worker-1",
        "started_at": STARTED,
        "completed_at": COMPLETED,
        "output": Payload("application/json", b'{"url": "s3://x"}'),
    }
    base.update(fields)
    return TaskEvent(**base)


def _with_headers(envelope: Envelope, **changes: str | None) -> Envelope:
    headers = dict(envelope.headers)
    for key, value in changes.items():
        name = "tacoq-" + key.replace("_", "-")
        if value is None:
            headers.pop(name, None)
        else:
            headers[name] = value
    return replace(envelope, headers=headers)


def _updates_body(items: Any) -> Envelope:
    body = json.dumps(items).encode()
    headers = {"tacoq-version": WIRE_VERSION, "tacoq-event": "updates", "tacoq-count": "1"}
    return Envelope(headers, UPDATES_CONTENT_TYPE, body)


# -- assignments -----------------------------------------------------------------------------


def test_assignment_roundtrip() -> None:
    event = _assignment()
    envelope = encode_assignment(event)
    assert decode_assignment(envelope) == event
    assert decode(envelope) == [event]


def test_assignment_headers_and_body() -> None:
    envelope = encode_assignment(_assignment())
    assert dict(envelope.headers) == {
        "tacoq-version": "1",
        "tacoq-event": "assign",
        "tacoq-id": str(TASK_ID),
        "tacoq-task-kind": "resize",
        "tacoq-worker-kind": "images",
        "tacoq-attempt": "1",
        "tacoq-priority": "200",
        "tacoq-ttl": "3600",
        "tacoq-created-at": "2024-02-29T23:59:58.123456Z",
    }
    assert all(k.startswith("tacoq-") for k in envelope.headers)
    assert all(isinstance(v, str) for v in envelope.headers.values())
    assert envelope.content_type == "application/json"
    assert envelope.body == b'{"w": 640, "h": 480}'  # the input, unchanged
    assert envelope.event == "assign"
    assert envelope.worker_kind == "images"
    assert envelope.task_id == str(TASK_ID)


@pytest.mark.parametrize(
    "payload",
    [
        Payload("application/octet-stream", bytes(range(256))),
        Payload("text/plain; charset=utf-8", "tacos 🌮".encode()),
        Payload("application/json", b""),
    ],
)
def test_assignment_carries_any_input(payload: Payload) -> None:
    event = _assignment(input=payload)
    assert decode_assignment(encode_assignment(event)).input == payload


def test_assignment_priority_and_attempt_bounds_roundtrip() -> None:
    for priority in (0, 255):
        event = _assignment(priority=priority, attempt=1_000_000, ttl=0)
        assert decode_assignment(encode_assignment(event)) == event


def test_assignment_created_at_in_another_zone_is_sent_as_utc() -> None:
    tokyo = timezone(timedelta(hours=9))
    local = datetime(2024, 1, 1, 9, 0, 0, 500, tzinfo=tokyo)
    envelope = encode_assignment(_assignment(created_at=local))
    assert envelope.headers["tacoq-created-at"] == "2024-01-01T00:00:00.000500Z"
    decoded = decode_assignment(envelope).created_at
    assert decoded == local
    assert decoded is not None
    assert decoded.utcoffset() == timedelta(0)


def test_only_assigned_events_are_assignments() -> None:
    with pytest.raises(WireFormatError):
        encode_assignment(_running())
    with pytest.raises(WireFormatError):
        encode_assignment(_assignment(input=None))
    with pytest.raises(WireFormatError):
        encode_assignment(_assignment(created_at=None))


# -- updates ---------------------------------------------------------------------------------


def test_updates_roundtrip_all_fields() -> None:
    trace = (
        "Traceback (most recent call last):\n"
        '  File "handler.py", line 7, in resize\n'
        "    raise ValueError('bad size')\n"
        "ValueError: bad size — ünïcode\n"
    )
    events = [
        _running(),
        _completed(),
        _completed(output=Payload("application/octet-stream", b"\x00\xff\x80 binary")),
        _completed(output=Payload("text/plain; charset=utf-8", "héllo\n".encode())),
        _completed(
            output=None,
            is_error=True,
            error=ErrorInfo(type="ValueError", message="bad size", traceback=trace),
        ),
        _completed(output=None, is_error=True, error=ErrorInfo("DeadLettered", "too many")),
        _completed(executed_by=None, started_at=None, completed_at=None, output=None),
    ]
    envelope = encode_updates(events)
    assert envelope.content_type == UPDATES_CONTENT_TYPE
    assert envelope.headers == {
        "tacoq-version": "1",
        "tacoq-event": "updates",
        "tacoq-count": str(len(events)),
    }
    assert envelope.event == "updates"
    assert envelope.worker_kind is None
    assert envelope.task_id is None
    assert decode_updates(envelope) == events
    assert decode(envelope) == events


def test_updates_carry_text_that_utf8_cannot_hold_and_the_reader_makes_it_storable() -> None:
    # An exception message may carry a lone surrogate (a file name read with surrogateescape)
    # or a NUL: the fast encoder refuses the surrogate, so that message is written by the
    # standard library's; the decoder reads it back as text every store and page can hold.
    odd = _completed(output=None, is_error=True, error=ErrorInfo("OSError", "bad name \udc80\x00!"))
    plain = _completed(output=Payload("text/plain", "naïve 名前 ✓".encode()))
    readable = replace(odd, error=ErrorInfo("OSError", "bad name \\udc80\\x00!"))
    assert decode_updates(encode_updates([odd])) == [readable]
    assert decode_updates(encode_updates([plain])) == [plain]
    assert decode_updates(encode_updates([odd, plain])) == [readable, plain]


def test_updates_body_is_compact_utf8_json() -> None:
    body = encode_updates([_completed(output=Payload("text/plain", "名前".encode()))]).body
    assert b", " not in body
    assert b": " not in body
    assert "名前".encode() in body
    assert json.loads(body)[0]["output"]["data"] == "名前"


def test_updates_keep_outputs_and_tracebacks_out_of_headers() -> None:
    event = _completed(
        is_error=True,
        error=ErrorInfo("RuntimeError", "boom", "Traceback ... secret-ish detail"),
    )
    envelope = encode_updates([event])
    joined = " ".join(envelope.headers.values())
    assert "boom" not in joined
    assert "Traceback" not in joined
    assert "s3://x" not in joined
    assert b"Traceback" in envelope.body


def test_updates_body_encodes_binary_as_base64_and_text_as_text() -> None:
    binary = _completed(output=Payload("image/png", b"\x89PNG\r\n"))
    text = _completed(output=Payload("application/json", b'{"a": 1}'))
    items = json.loads(encode_updates([binary, text]).body)
    assert items[0]["output"] == {
        "content_type": "image/png",
        "encoding": "base64",
        "data": base64.b64encode(b"\x89PNG\r\n").decode(),
    }
    assert items[1]["output"] == {
        "content_type": "application/json",
        "encoding": "text",
        "data": '{"a": 1}',
    }


def test_textual_payload_with_invalid_utf8_falls_back_to_base64() -> None:
    payload = Payload("text/plain", b"\xff\xfe")
    obj = payload_to_json(payload)
    assert obj["encoding"] == "base64"
    assert payload_from_json(obj) == payload


def test_updates_timestamps_have_microseconds_and_z() -> None:
    items = json.loads(encode_updates([_completed()]).body)
    assert items[0]["started_at"] == "2024-03-01T00:00:01.000001Z"
    assert items[0]["completed_at"] == "2024-03-01T00:00:02.999999Z"


def test_running_events_carry_no_completion_fields() -> None:
    items = json.loads(encode_updates([_running()]).body)
    assert items[0]["phase"] == "running"
    assert "output" not in items[0]
    assert "error" not in items[0]


def test_assigned_events_are_not_updates() -> None:
    with pytest.raises(WireFormatError, match="assign"):
        encode_updates([_assignment()])


def test_a_retry_notice_carries_the_previous_error_and_nothing_else() -> None:
    failure = ErrorInfo("ValueError", "attempt 1 failed", "Traceback ...")
    notice = _assignment(attempt=2, error=failure)
    envelope = encode_updates([notice])
    body = json.loads(envelope.body)
    assert body == [
        {
            "id": str(TASK_ID),
            "attempt": 2,
            "phase": "assigned",
            "task_kind": "resize",
            "worker_kind": "images",
            "ttl": 3600,
            "error": {
                "type": "ValueError",
                "message": "attempt 1 failed",
                "traceback": "Traceback ...",
            },
        }
    ]
    (decoded,) = decode_updates(envelope)
    assert decoded.phase is Phase.ASSIGNED
    assert decoded.error == failure
    assert decoded.input is None
    assert decoded.created_at is None  # never fills the assignment's fields


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"error": None}, "needs an error"),
        ({"executed_by": "w1"}, "no worker fields"),
    ],
)
def test_a_malformed_retry_notice_is_refused(change: dict[str, Any], message: str) -> None:
    notice = _assignment(attempt=2, error=ErrorInfo("ValueError", "x"))
    item = json.loads(encode_updates([notice]).body)[0]
    item.update(change)
    envelope = replace(encode_updates([notice]), body=json.dumps([item]).encode())
    with pytest.raises(WireFormatError, match=message):
        decode_updates(envelope)


def test_empty_updates_are_refused() -> None:
    with pytest.raises(WireFormatError):
        encode_updates([])


# -- timestamps ------------------------------------------------------------------------------


def test_format_and_parse_timestamp() -> None:
    assert format_timestamp(CREATED) == "2024-02-29T23:59:58.123456Z"
    assert parse_timestamp("2024-02-29T23:59:58.123456Z") == CREATED
    assert parse_timestamp("2024-03-01T08:59:58.123456+09:00") == CREATED
    assert parse_timestamp("2024-03-01T08:59:58.123456+09:00").utcoffset() == timedelta(0)


def test_timestamps_in_other_zones_are_written_in_utc() -> None:
    tokyo = timezone(timedelta(hours=9))
    assert format_timestamp(CREATED.astimezone(tokyo)) == "2024-02-29T23:59:58.123456Z"
    whole_second = datetime(2024, 1, 1, 9, 0, tzinfo=tokyo)
    assert format_timestamp(whole_second) == "2024-01-01T00:00:00.000000Z"


@given(st.lists(st.datetimes(timezones=st.just(UTC)), min_size=1, max_size=20))
def test_formatting_matches_isoformat_whatever_came_before(values: list[datetime]) -> None:
    # format_timestamp reuses the date and time of the second it wrote last.
    for value in [*values, *values[:1], *sorted(values)]:
        expected = value.isoformat(timespec="microseconds").replace("+00:00", "Z")
        assert format_timestamp(value) == expected
        assert parse_timestamp(format_timestamp(value)) == value


def test_naive_timestamp_is_refused() -> None:
    with pytest.raises(WireFormatError, match="naive"):
        format_timestamp(datetime(2024, 1, 1))
    with pytest.raises(WireFormatError, match="no time zone"):
        parse_timestamp("2024-01-01T00:00:00.000000")
    envelope = _with_headers(
        encode_assignment(_assignment()), created_at="2024-01-01T00:00:00.000000"
    )
    with pytest.raises(WireFormatError, match="no time zone"):
        decode(envelope)


def test_naive_timestamp_in_updates_is_refused() -> None:
    item = json.loads(encode_updates([_completed()]).body)[0]
    item["completed_at"] = "2024-03-01T00:00:02"
    with pytest.raises(WireFormatError, match="no time zone"):
        decode(_updates_body([item]))


def test_encoding_a_naive_time_is_refused() -> None:
    with pytest.raises(WireFormatError, match="naive"):
        encode_assignment(_assignment(created_at=datetime(2024, 1, 1)))
    with pytest.raises(WireFormatError, match="naive"):
        encode_updates([_running(started_at=datetime(2024, 1, 1))])


@pytest.mark.parametrize("text", ["yesterday", "", "2024-13-01T00:00:00Z"])
def test_garbage_timestamp_is_refused(text: str) -> None:
    with pytest.raises(WireFormatError, match="invalid timestamp"):
        parse_timestamp(text)


# -- malformed assignments -------------------------------------------------------------------


@pytest.mark.parametrize(
    "header",
    ["id", "task_kind", "worker_kind", "attempt", "priority", "ttl", "created_at"],
)
def test_missing_header_is_named(header: str) -> None:
    envelope = _with_headers(encode_assignment(_assignment()), **{header: None})
    name = "tacoq-" + header.replace("_", "-")
    with pytest.raises(WireFormatError, match=f"missing header {name}"):
        decode(envelope)


@pytest.mark.parametrize("value", ["not-a-uuid", "", "1234"])
def test_bad_uuid_is_refused(value: str) -> None:
    envelope = _with_headers(encode_assignment(_assignment()), id=value)
    with pytest.raises(WireFormatError, match="tacoq-id is not a UUID"):
        decode(envelope)


@pytest.mark.parametrize("value", ["0", "1000001"])
def test_attempt_out_of_range_is_refused(value: str) -> None:
    envelope = _with_headers(encode_assignment(_assignment()), attempt=value)
    with pytest.raises(WireFormatError, match=rf"tacoq-attempt is {value}, outside 1\.\.1000000"):
        decode(envelope)


@pytest.mark.parametrize(("header", "value"), [("priority", "256"), ("ttl", "2147483648")])
def test_other_integer_headers_out_of_range(header: str, value: str) -> None:
    envelope = _with_headers(encode_assignment(_assignment()), **{header: value})
    with pytest.raises(WireFormatError, match="outside"):
        decode(envelope)


@pytest.mark.parametrize("value", ["-1", "+1", " 1", "1 ", "1_0", "١", "0x1", "1.0", "", "1e3"])
def test_integer_headers_are_decimal_ascii_digits_only(value: str) -> None:
    for header in ("attempt", "priority", "ttl"):
        envelope = _with_headers(encode_assignment(_assignment()), **{header: value})
        with pytest.raises(WireFormatError, match="not an integer"):
            decode(envelope)


def test_non_integer_header_is_refused() -> None:
    envelope = _with_headers(encode_assignment(_assignment()), attempt="two")
    with pytest.raises(WireFormatError, match="tacoq-attempt is not an integer"):
        decode(envelope)


def test_non_string_header_is_refused() -> None:
    envelope = encode_assignment(_assignment())
    headers: dict[str, Any] = {**envelope.headers, "tacoq-task-kind": 42}
    with pytest.raises(WireFormatError, match="must be a string"):
        decode(replace(envelope, headers=headers))


@pytest.mark.parametrize("version", ["2", "0", "", None])
def test_unknown_version_is_named(version: str | None) -> None:
    for envelope in (encode_assignment(_assignment()), encode_updates([_running()])):
        changed = _with_headers(envelope, version=version)
        with pytest.raises(WireFormatError, match="unknown wire version") as info:
            decode(changed)
        assert repr(version) in str(info.value)
        assert f"version {WIRE_VERSION}" in str(info.value)


@pytest.mark.parametrize("event", ["cancel", "", None])
def test_unknown_event_type_is_named(event: str | None) -> None:
    envelope = _with_headers(encode_assignment(_assignment()), event=event)
    with pytest.raises(WireFormatError, match="unknown event type") as info:
        decode(envelope)
    assert repr(event) in str(info.value)


def test_no_headers_at_all() -> None:
    with pytest.raises(WireFormatError):
        decode(Envelope({}, "application/json", b"{}"))


# -- malformed updates -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [b"", b"not json", b"\xff\xfe\x00", b'[{"id": ', b"[" * 100_000],
)
def test_garbage_updates_body_is_refused(body: bytes) -> None:
    envelope = replace(encode_updates([_running()]), body=body)
    with pytest.raises(WireFormatError, match="not valid JSON"):
        decode(envelope)


@pytest.mark.parametrize("items", [{"id": "x"}, "text", 42, None, []])
def test_non_list_or_empty_updates_body_is_refused(items: Any) -> None:
    with pytest.raises(WireFormatError, match="non-empty JSON array"):
        decode(_updates_body(items))


@pytest.mark.parametrize(
    "content_type",
    ["application/json", "text/plain", "application/vnd.tacoq.updates+xml"],
)
def test_updates_with_wrong_content_type_are_refused(content_type: str) -> None:
    envelope = replace(encode_updates([_running()]), content_type=content_type)
    with pytest.raises(WireFormatError, match=re.escape(UPDATES_CONTENT_TYPE)) as info:
        decode(envelope)
    assert repr(content_type) in str(info.value)


def _bad_item(**changes: Any) -> dict[str, Any]:
    item: dict[str, Any] = json.loads(encode_updates([_completed()]).body)[0]
    for key, value in changes.items():
        if value is _DROP:
            item.pop(key)
        else:
            item[key] = value
    return item


_DROP = object()


@pytest.mark.parametrize(
    "changes",
    [
        {"phase": "assigned"},
        {"phase": "finished"},
        {"phase": _DROP},
        {"id": _DROP},
        {"id": "not-a-uuid"},
        {"id": 17},
        {"attempt": 0},
        {"attempt": "1"},
        {"attempt": True},
        {"ttl": -1},
        {"ttl": 1.5},
        {"task_kind": 3},
        {"worker_kind": None},
        {"executed_by": 5},
        {"is_error": "yes"},
        {"started_at": 12},
        {"completed_at": "soon"},
        {"output": "raw"},
        {"output": {"content_type": "a/b", "encoding": "rot13", "data": "x"}},
        {"output": {"content_type": "a/b", "encoding": "base64", "data": "***"}},
        {"output": {"content_type": None, "encoding": "text", "data": "x"}},
        {"error": "boom"},
        {"error": {"message": "no type"}},
        {"error": {"type": "E", "message": "m", "traceback": 12}},
    ],
)
def test_malformed_update_event_is_refused(changes: dict[str, Any]) -> None:
    with pytest.raises(WireFormatError):
        decode(_updates_body([_bad_item(**changes)]))


def test_update_event_must_be_an_object() -> None:
    with pytest.raises(WireFormatError, match="JSON object"):
        decode(_updates_body(["not an object"]))


def test_one_bad_event_refuses_the_whole_message() -> None:
    good = json.loads(encode_updates([_running()]).body)[0]
    with pytest.raises(WireFormatError):
        decode(_updates_body([good, _bad_item(attempt=-3)]))


# -- header bounds ---------------------------------------------------------------------------


@pytest.mark.parametrize("field", ["task_kind", "worker_kind"])
def test_header_value_over_the_bound_is_refused(field: str) -> None:
    long_name = "k" * (MAX_HEADER_VALUE_LENGTH + 1)
    with pytest.raises(WireFormatError) as info:
        encode_assignment(_assignment(**{field: long_name}))
    message = str(info.value)
    assert "tacoq-" + field.replace("_", "-") in message
    assert str(MAX_HEADER_VALUE_LENGTH + 1) in message
    assert str(MAX_HEADER_VALUE_LENGTH) in message


def test_header_value_at_the_bound_is_accepted() -> None:
    event = _assignment(task_kind="k" * MAX_HEADER_VALUE_LENGTH)
    assert decode(encode_assignment(event)) == [event]


# -- values that parse but cannot be used (issue 15, finding 1) ----------------------------------


@pytest.mark.parametrize("text", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
def test_a_timestamp_that_cannot_become_utc_is_malformed(text: str) -> None:
    with pytest.raises(WireFormatError, match="timestamp"):
        parse_timestamp(text)
    assignment = _with_headers(encode_assignment(_assignment()), created_at=text)
    with pytest.raises(WireFormatError, match="timestamp"):
        decode(assignment)
    item = json.loads(encode_updates([_running()]).body)[0]
    item["started_at"] = text
    updates = Envelope(
        {"tacoq-version": "1", "tacoq-event": "updates"},
        UPDATES_CONTENT_TYPE,
        json.dumps([item]).encode(),
    )
    with pytest.raises(WireFormatError, match="timestamp"):
        decode(updates)


def test_a_text_payload_with_a_lone_surrogate_is_malformed() -> None:
    with pytest.raises(WireFormatError, match="surrogate"):
        payload_from_json({"content_type": "text/plain", "encoding": "text", "data": "\ud800"})
    item = json.loads(encode_updates([_completed()]).body)[0]
    item["output"] = {"content_type": "text/plain", "encoding": "text", "data": "\ud800"}
    updates = Envelope(
        {"tacoq-version": "1", "tacoq-event": "updates"},
        UPDATES_CONTENT_TYPE,
        json.dumps([item]).encode(),  # json.dumps writes the lone surrogate as \ud800
    )
    with pytest.raises(WireFormatError, match="surrogate"):
        decode(updates)


# -- exactly as strict as docs/wire-format.md ----------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "2024-01-01T00:00:00Z",
        "2024-01-01t00:00:00z",
        "2024-01-01T00:00:00.1Z",
        "2024-01-01T00:00:00.123456789Z",  # nanoseconds (Go's RFC3339Nano) are cut to micro
        "2024-01-01T01:00:00+01:00",
        "2023-12-31T23:00:00-01:00",
    ],
)
def test_the_documented_timestamp_forms_are_accepted(text: str) -> None:
    value = parse_timestamp(text)
    assert value.tzinfo is UTC
    assert value.replace(microsecond=0) == datetime(2024, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    "text",
    [
        "2024-01-01x00:00:00Z",  # fromisoformat takes any separator
        "2024-01-01 00:00:00Z",
        "20240101T000000Z",  # ISO 8601 basic form
        "2024-W01-1T00:00:00Z",  # ISO week dates
        "2024-01-01T00:00Z",  # no seconds
        "2024-01-01T00:00:00+0100",
        "2024-01-01T00:00:00+01",
        "2024-01-01T00:00:00,5Z",
        "2024-01-01T00:00:00.Z",
        "2024-01-01T00:00:00.1234567890Z",
        "2024-01-01T24:00:00Z",
        "2024-02-30T00:00:00Z",
        "0000-01-01T00:00:00Z",
        "２０２４-01-01T00:00:00Z",
        "2024-01-01T00:00:00Z\x00",
        "\ud800",
        "",
    ],
)
def test_other_timestamp_forms_are_malformed(text: str) -> None:
    with pytest.raises(WireFormatError, match="timestamp"):
        parse_timestamp(text)


@pytest.mark.parametrize(
    "value",
    [
        "0F0E0D0C-0B0A-4908-8706-050403020100",  # upper case
        "{0f0e0d0c-0b0a-4908-8706-050403020100}",
        "urn:uuid:0f0e0d0c-0b0a-4908-8706-050403020100",
        "0f0e0d0c0b0a49088706050403020100",  # no hyphens
        " 0f0e0d0c-0b0a-4908-8706-050403020100",
    ],
)
def test_a_task_id_must_be_a_canonical_uuid(value: str) -> None:
    with pytest.raises(WireFormatError, match="not a UUID in canonical form"):
        decode(_with_headers(encode_assignment(_assignment()), id=value))
    item = json.loads(encode_updates([_running()]).body)[0]
    item["id"] = value
    with pytest.raises(WireFormatError, match="not a UUID in canonical form"):
        decode(_updates_body([item]))


BAD_NAMES = {
    "empty": "",
    "NUL": "a\x00b",
    "a control character": "a\nb",
    "a lone surrogate": "a\ud800",
    "256 characters": "k" * 256,
}


@pytest.mark.parametrize("case", list(BAD_NAMES))
def test_a_kind_or_content_type_that_no_store_can_hold_is_malformed(case: str) -> None:
    bad = BAD_NAMES[case]
    for header in ("task_kind", "worker_kind"):
        with pytest.raises(WireFormatError, match=f"tacoq-{header.replace('_', '-')}"):
            decode(_with_headers(encode_assignment(_assignment()), **{header: bad}))
        with pytest.raises(WireFormatError, match=f"tacoq-{header.replace('_', '-')}"):
            encode_assignment(_assignment(**{header: bad}))
        item = json.loads(encode_updates([_running()]).body)[0]
        item[header] = bad
        with pytest.raises(WireFormatError, match=header):
            decode(_updates_body([item]))
    with pytest.raises(WireFormatError, match="content type"):
        decode(replace(encode_assignment(_assignment()), content_type=bad))
    item = json.loads(encode_updates([_completed()]).body)[0]
    item["output"]["content_type"] = bad
    with pytest.raises(WireFormatError, match="content_type"):
        decode(_updates_body([item]))


def test_a_name_of_255_characters_of_any_script_is_fine() -> None:
    name = "名" * 255
    event = _assignment(task_kind=name, worker_kind=name)
    assert decode(encode_assignment(event)) == [event]


@pytest.mark.parametrize(
    ("field", "value"),
    [("attempt", 1_000_001), ("attempt", 10**30), ("ttl", 2**31), ("ttl", 10**30)],
)
def test_update_integers_out_of_the_wire_range_are_malformed(field: str, value: int) -> None:
    item = json.loads(encode_updates([_running()]).body)[0]
    item[field] = value
    with pytest.raises(WireFormatError, match=field):
        decode(_updates_body([item]))


@pytest.mark.parametrize("message", [42, None, ["list"], {"a": 1}])
def test_an_error_message_must_be_a_string(message: Any) -> None:
    item = json.loads(encode_updates([_completed(is_error=True, error=ErrorInfo("E", "m"))]).body)[
        0
    ]
    item["error"]["message"] = message
    with pytest.raises(WireFormatError, match="message must be a string"):
        decode(_updates_body([item]))


def test_free_text_is_made_storable_and_bounded_not_refused() -> None:
    item = json.loads(encode_updates([_completed(is_error=True, error=ErrorInfo("E", "m"))]).body)[
        0
    ]
    item["executed_by"] = "w\x00" + "x" * 1000
    item["error"] = {"type": "T\udc80", "message": "m" * 100_000, "traceback": "tb\x00"}
    (event,) = decode(_updates_body([item]))
    assert event.executed_by is not None
    assert event.executed_by.startswith("w\\x00xxx")
    assert event.executed_by.endswith("more characters cut]")
    assert event.error is not None
    assert event.error.type == "T\\udc80"
    assert event.error.message.startswith("m" * 65_536 + "... [34,464 more characters cut]")
    assert event.error.traceback == "tb\\x00"


@pytest.mark.parametrize("event", ["cancel", "heartbeat", "schedule-v2"])
def test_a_well_formed_unknown_message_kind_is_forward_compatible(event: str) -> None:
    envelope = _with_headers(encode_assignment(_assignment()), event=event)
    with pytest.raises(UnknownMessageKind) as info:
        decode(envelope)
    assert info.value.kind == event


@pytest.mark.parametrize("event", ["", "Cancel", "can cel", "x" * 65, "\x00", "cancel\n", None])
def test_an_ill_formed_message_kind_is_malformed_not_unknown(event: str | None) -> None:
    envelope = _with_headers(encode_assignment(_assignment()), event=event)
    with pytest.raises(WireFormatError) as info:
        decode(envelope)
    assert not isinstance(info.value, UnknownMessageKind)


def test_an_unknown_kind_of_another_wire_version_is_malformed() -> None:
    envelope = _with_headers(encode_assignment(_assignment()), event="cancel", version="2")
    with pytest.raises(WireFormatError, match="unknown wire version") as info:
        decode(envelope)
    assert not isinstance(info.value, UnknownMessageKind)
