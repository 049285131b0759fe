"""The JSON shapes of the relay's HTTP API (``docs/http-api.md``), as pydantic models.

Responses are built from :class:`~tacoq.model.task.Task` rows by :func:`task_to_api`; timestamps
are RFC 3339 UTC ending in ``Z``. A payload carries its content type and an encoding that says
how ``data`` is written, so a string and base64 bytes can never be confused:

- ``json``: the content type is JSON (``application/json``, ``*+json``) and the bytes are strict
  JSON (:mod:`tacoq.model.strict_json`: no NaN, no number beyond a double, no lone surrogate escape,
  at most ``MAX_JSON_DEPTH`` levels deep); ``data`` is the parsed JSON value;
- ``text``: a ``text/*`` content type, or JSON bytes that are not strict JSON but are UTF-8;
  ``data`` is the text, unchanged;
- ``base64``: anything else (or bytes that are not valid UTF-8), base64 of the bytes.

Any stored row can be shown, whatever it holds (it may have been written before a check existed,
or by another client): a payload falls back to ``text`` or ``base64``, and text with a lone
surrogate (which JSON text cannot hold) has it written as ``\\udXXX``.
"""

from __future__ import annotations

import base64
import json
import re
from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

import pydantic_core
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    WithJsonSchema,
    model_validator,
)

from tacoq.errors import WireFormatError
from tacoq.model.options import MAX_DELAY_SECONDS, OPTION_NAMES, TaskOptions
from tacoq.model.strict_json import MAX_JSON_DEPTH, StrictJSONError, deeper_than
from tacoq.model.strict_json import loads as strict_loads
from tacoq.model.task import (
    MAX_PRIORITY,
    ErrorInfo,
    Payload,
    Task,
    TaskStatus,
    escape_surrogates,
    is_json_type,
    media_type,
)
from tacoq.model.wire import (
    MAX_HEADER_VALUE_LENGTH,
    MAX_TTL,
    format_timestamp,
    kind_problem,
    parse_timestamp,
)

__all__ = [
    "BASE64_PATTERN",
    "CANONICAL_UUID_PATTERN",
    "KIND_PATTERN",
    "MAX_TTL",
    "NO_NUL_PATTERN",
    "PRINTABLE_ASCII_PATTERN",
    "ContentType",
    "ErrorBody",
    "ErrorDetail",
    "ErrorOut",
    "HealthOut",
    "Kind",
    "PartHealth",
    "PayloadOut",
    "PublishIn",
    "PublishOut",
    "StatusOut",
    "TaskId",
    "TaskOut",
    "TaskPageOut",
    "payload_from_api",
    "payload_to_api",
    "task_from_api",
    "task_to_api",
]

Encoding = Literal["json", "text", "base64"]


class PayloadOut(BaseModel):
    """An input or output: its content type, how ``data`` is encoded, and the data."""

    content_type: str
    encoding: Encoding
    data: Any = Field(description="The JSON value (json), the text (text) or base64 (base64).")


class ErrorOut(BaseModel):
    """Why a task failed: the exception type, its message and the formatted traceback."""

    type: str
    message: str
    traceback: str | None = None


class TaskOut(BaseModel):
    """One task as the relay's store knows it."""

    id: UUID
    task_kind: str
    worker_kind: str
    priority: int
    status: TaskStatus
    is_error: bool
    error: ErrorOut | None
    input: PayloadOut | None
    output: PayloadOut | None
    created_at: str | None = Field(description="RFC 3339 UTC ending in Z; null until assigned.")
    started_at: str | None
    completed_at: str | None
    executed_by: str | None
    attempt: int
    ttl: int = Field(description="Seconds the record lives after completion.")


class TaskPageOut(BaseModel):
    """One page of ``GET /tasks``: newest first; pass ``next_cursor`` as ``cursor`` for more."""

    tasks: list[TaskOut]
    next_cursor: str | None


def _kind(value: str) -> str:
    problem = kind_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


def _printable_ascii(value: str) -> str:
    if not _PRINTABLE_ASCII.fullmatch(value):
        raise ValueError(
            "must be printable ASCII, such as image/png (brokers carry it in at most 255 bytes)"
        )
    return value


def _canonical_uuid(value: Any) -> Any:
    if not isinstance(value, str) or not _CANONICAL_UUID.fullmatch(value):
        raise ValueError(
            "must be a UUID in its canonical form, such as 7f6c0d3e-5d1b-4a53-9f3c-2f0c0d5f4f10"
        )
    return value


def _json_integer(value: Any) -> Any:
    """An integer as JSON Schema means it: an integral number (``5`` or ``5.0``), not a string
    or a boolean."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("Input should be an integer")
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError("Input should be an integer, without a fractional part")
        return int(value)
    return value


def _json_number(value: Any) -> Any:
    """A number as JSON has it, not a string or a boolean."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("Input should be a number")
    return value


def _rfc3339(value: Any) -> Any:
    """An RFC 3339 time with its offset (``2026-12-03T10:00:00Z``), parsed by the wire's rule."""
    if not isinstance(value, str):
        raise ValueError("Input should be an RFC 3339 time, such as 2026-12-03T10:00:00Z")
    try:
        return parse_timestamp(value)
    except WireFormatError as exc:
        raise ValueError(str(exc)) from None


NO_NUL_PATTERN = "^[^\\u0000]*$"
KIND_PATTERN = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$"
PRINTABLE_ASCII_PATTERN = "^[\\x20-\\x7e]+$"
CANONICAL_UUID_PATTERN = (
    "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
)
BASE64_PATTERN = "^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$"
_PRINTABLE_ASCII = re.compile(r"[\x20-\x7e]+")
_CANONICAL_UUID = re.compile(CANONICAL_UUID_PATTERN)
_BASE64 = re.compile(BASE64_PATTERN)

#: A task or worker kind: 1-255 characters, none a control character (NUL included) or a lone
#: surrogate (``tacoq.model.wire.kind_problem``: they become headers, queue names, columns). The
#: schema's pattern leaves the surrogates out (JSON Schema validators in other languages cannot
#: hold them in a character class); the validator refuses a lone one all the same.
Kind = Annotated[
    str,
    Field(
        min_length=1,
        max_length=MAX_HEADER_VALUE_LENGTH,
        json_schema_extra={"pattern": KIND_PATTERN},
    ),
    AfterValidator(_kind),
]
#: A media type: 1-255 printable ASCII characters (an AMQP property holds at most 255 bytes).
ContentType = Annotated[
    str,
    Field(min_length=1, max_length=255, json_schema_extra={"pattern": PRINTABLE_ASCII_PATTERN}),
    AfterValidator(_printable_ascii),
]
#: A task id in the canonical text form of a UUID.
TaskId = Annotated[
    UUID,
    BeforeValidator(_canonical_uuid),
    WithJsonSchema({"type": "string", "format": "uuid", "pattern": CANONICAL_UUID_PATTERN}),
]
#: A priority, an integer as JSON Schema has it (``5`` and ``5.0``).
Priority = Annotated[int, Field(ge=0, le=MAX_PRIORITY), BeforeValidator(_json_integer)]
#: A ttl in seconds, an integer as JSON Schema has it.
Ttl = Annotated[int, Field(ge=0, le=MAX_TTL), BeforeValidator(_json_integer)]
#: Seconds to hold a task back: a JSON number from 0 to ``MAX_DELAY_SECONDS``.
Countdown = Annotated[
    float, Field(ge=0, le=MAX_DELAY_SECONDS, allow_inf_nan=False), BeforeValidator(_json_number)
]
#: A time: RFC 3339 with its offset, the wire's subset (``tacoq.model.wire.parse_timestamp``).
Timestamp = Annotated[
    datetime,
    BeforeValidator(_rfc3339),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]
#: Bytes in standard base64 with padding.
Base64Text = Annotated[str, Field(json_schema_extra={"pattern": BASE64_PATTERN})]


def _publish_rules(schema: dict[str, Any]) -> None:
    """What ``PublishIn``'s validators check, said in JSON Schema: ``input_base64`` excludes
    ``input``, ``content_type`` needs ``input_base64``, ``countdown`` excludes ``eta``."""
    is_string = {"type": "string"}
    schema["allOf"] = [
        {
            "if": {"required": ["input_base64"], "properties": {"input_base64": is_string}},
            "then": {"not": {"required": ["input"]}},
        },
        {
            "if": {"required": ["content_type"], "properties": {"content_type": is_string}},
            "then": {"required": ["input_base64"], "properties": {"input_base64": is_string}},
        },
        {
            "if": {"required": ["countdown"], "properties": {"countdown": {"type": "number"}}},
            "then": {"not": {"required": ["eta"], "properties": {"eta": is_string}}},
        },
    ]


class PublishIn(BaseModel):
    """A task to publish. Give ``input`` (any JSON value, sent as ``application/json``) or
    ``input_base64`` (bytes, with ``content_type``, default ``application/octet-stream``)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_publish_rules)

    task_kind: Kind
    worker_kind: Kind
    input: Any = Field(
        default=None,
        description=f"The input as a JSON value, at most {MAX_JSON_DEPTH} levels deep.",
    )
    input_base64: Base64Text | None = Field(
        default=None, description="The input bytes, base64 (RFC 4648, with padding)."
    )
    content_type: ContentType | None = Field(default=None, description="Only with input_base64.")
    priority: Priority = 0
    ttl: Ttl | None = Field(default=None, description="Default: the relay's --default-ttl.")
    id: TaskId | None = Field(default=None, description="Choose the id; makes retries safe.")
    countdown: Countdown | None = Field(
        default=None,
        description=f"Seconds to hold the task back, at most {MAX_DELAY_SECONDS:.0f} (48.5 days).",
    )
    eta: Timestamp | None = Field(
        default=None,
        description="When to run it, RFC 3339 with its offset; not with countdown. At most "
        "48.5 days ahead; a past time runs it at once.",
    )
    _payload: Payload | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _one_delay(self) -> PublishIn:
        if self.countdown is not None and self.eta is not None:
            raise ValueError("countdown or eta: give one, not both")
        return self

    def options(self) -> TaskOptions:
        """The task options of this publish (every field named like one)."""
        return TaskOptions.of(None, {name: getattr(self, name) for name in OPTION_NAMES})

    @model_validator(mode="after")
    def _one_input(self) -> PublishIn:
        if self.input_base64 is not None:
            if "input" in self.model_fields_set:
                raise ValueError("give input or input_base64, not both")
            if not _BASE64.fullmatch(self.input_base64):
                raise ValueError("input_base64 is not valid base64 (RFC 4648, with padding)")
            data = base64.b64decode(self.input_base64)
            self._payload = Payload(self.content_type or "application/octet-stream", data)
        elif self.content_type is not None:
            raise ValueError(
                "content_type goes with input_base64 (a JSON input is always application/json)"
            )
        else:
            text = pydantic_core.to_json(self.input)
            if deeper_than(text, MAX_JSON_DEPTH):
                raise ValueError(
                    f"input is nested deeper than {MAX_JSON_DEPTH} levels of arrays and objects "
                    "(the limit of JSON payloads)"
                )
            self._payload = Payload("application/json", text)
        return self

    def payload(self) -> Payload:
        """The serialized input: JSON for ``input``, the decoded bytes for ``input_base64``."""
        assert self._payload is not None  # set by validation
        return self._payload


class PublishOut(BaseModel):
    """The id of the published task; ``created`` is false when it already existed."""

    id: UUID
    created: bool


class StatusOut(BaseModel):
    """``GET /health/live`` and ``GET /health/ready``: ``ok``, and nothing more."""

    status: Literal["ok"]


class PartHealth(BaseModel):
    """One part's health: ``ok`` and a short, credential-free detail."""

    ok: bool
    detail: str


class HealthOut(BaseModel):
    """``GET /health``: each part's health and the relay's counters since it started (answered
    ``200`` whatever the parts' state: ``status`` and ``failing`` say it)."""

    status: Literal["ok", "unavailable"]
    failing: list[str] = Field(description="The parts that are not ok (store, broker).")
    store: PartHealth
    broker: PartHealth | None = Field(description="null when this relay uses no broker.")
    consumer: bool
    cleanup: bool
    stats: dict[str, int | float]


class InputError(BaseModel):
    """Where an input does not match its task's contract (``loc``, a path from ``input``)."""

    loc: list[str | int]
    msg: str


class ErrorDetail(BaseModel):
    """What went wrong: a stable ``type`` to branch on and a message for people; an input
    refused by ``--check-input`` (type ``invalid_input``) also lists its ``errors``."""

    type: str
    message: str
    errors: list[InputError] | None = None


class ErrorBody(BaseModel):
    """Every error response: ``{"error": {"type": ..., "message": ...}}``."""

    error: ErrorDetail


def payload_to_api(payload: Payload) -> PayloadOut:
    """A payload with the encoding its content type calls for (see the module docstring)."""
    content_type = escape_surrogates(payload.content_type)
    is_json = is_json_type(content_type)
    if is_json:
        try:
            value = strict_loads(payload.data)
            return PayloadOut(content_type=content_type, encoding="json", data=value)
        except StrictJSONError:
            pass  # not strict JSON after all: fall through to text or base64
    if is_json or media_type(content_type).startswith("text/"):
        try:
            text = payload.data.decode("utf-8")  # never a surrogate: UTF-8 cannot encode one
            return PayloadOut(content_type=content_type, encoding="text", data=text)
        except UnicodeDecodeError:
            pass
    data = base64.b64encode(payload.data).decode("ascii")
    return PayloadOut(content_type=content_type, encoding="base64", data=data)


def task_to_api(task: Task) -> TaskOut:
    """The API shape of a stored task; never fails, whatever the row holds."""
    err = task.error
    executed_by = task.executed_by
    return TaskOut(
        id=task.id,
        task_kind=escape_surrogates(task.task_kind),
        worker_kind=escape_surrogates(task.worker_kind),
        priority=task.priority,
        status=task.status,
        is_error=task.is_error,
        error=None if err is None else ErrorOut(**_error_fields(err)),
        input=None if task.input is None else payload_to_api(task.input),
        output=None if task.output is None else payload_to_api(task.output),
        created_at=_time(task.created_at),
        started_at=_time(task.started_at),
        completed_at=_time(task.completed_at),
        executed_by=None if executed_by is None else escape_surrogates(executed_by),
        attempt=task.attempt,
        ttl=task.ttl,
    )


def _error_fields(err: ErrorInfo) -> dict[str, Any]:
    traceback = None if err.traceback is None else escape_surrogates(err.traceback)
    return {
        "type": escape_surrogates(err.type),
        "message": escape_surrogates(err.message),
        "traceback": traceback,
    }


def _time(value: datetime | None) -> str | None:
    return None if value is None else format_timestamp(value)


def payload_from_api(payload: PayloadOut | None) -> Payload | None:
    """The bytes of an API payload back (the inverse of :func:`payload_to_api`)."""
    if payload is None:
        return None
    if payload.encoding == "json":
        text = json.dumps(payload.data, separators=(",", ":"), ensure_ascii=False)
        return Payload(payload.content_type, text.encode("utf-8", "backslashreplace"))
    if payload.encoding == "text":
        return Payload(payload.content_type, str(payload.data).encode("utf-8", "backslashreplace"))
    return Payload(payload.content_type, base64.b64decode(str(payload.data)))


def task_from_api(out: TaskOut) -> Task:
    """A :class:`~tacoq.model.task.Task` from its API shape (what the relay client returns)."""
    err = out.error
    return Task(
        id=out.id,
        task_kind=out.task_kind,
        worker_kind=out.worker_kind,
        status=out.status,
        priority=out.priority,
        attempt=out.attempt,
        ttl=out.ttl,
        is_error=out.is_error,
        error=None if err is None else ErrorInfo(err.type, err.message, err.traceback),
        input=payload_from_api(out.input),
        output=payload_from_api(out.output),
        created_at=_parse_time(out.created_at),
        started_at=_parse_time(out.started_at),
        completed_at=_parse_time(out.completed_at),
        executed_by=out.executed_by,
    )


def _parse_time(value: str | None) -> datetime | None:
    return None if value is None else parse_timestamp(value)
