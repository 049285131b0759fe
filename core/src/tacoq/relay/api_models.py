"""The JSON shapes of the relay's HTTP API (``docs/http-api.md``), as pydantic models.

Responses are built from :class:`~tacoq.models.Task` rows by :func:`task_to_api`; timestamps
are RFC 3339 UTC ending in ``Z``. A payload carries its content type and an encoding that says
how ``data`` is written, so a string and base64 bytes can never be confused:

- ``json``: the content type is JSON (``application/json``, ``*+json``) and the bytes are strict
  JSON (:mod:`tacoq.strict_json`: no NaN, no number beyond a double, no lone surrogate escape,
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
from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, StrictInt, model_validator

from tacoq.models import MAX_PRIORITY, ErrorInfo, Payload, Task, TaskStatus
from tacoq.strict_json import StrictJSONError
from tacoq.strict_json import loads as strict_loads
from tacoq.wire import MAX_HEADER_VALUE_LENGTH, format_timestamp, parse_timestamp

__all__ = [
    "ErrorBody",
    "ErrorDetail",
    "ErrorOut",
    "HealthOut",
    "PartHealth",
    "PayloadOut",
    "PublishIn",
    "PublishOut",
    "TaskOut",
    "TaskPageOut",
    "payload_from_api",
    "payload_to_api",
    "readable",
    "task_from_api",
    "task_to_api",
]

#: The largest ttl the wire format carries (``tacoq-ttl`` header bound).
MAX_TTL = 2**31 - 1

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


class PublishIn(BaseModel):
    """A task to publish. Give ``input`` (any JSON value, sent as ``application/json``) or
    ``input_base64`` (bytes, with ``content_type``, default ``application/octet-stream``)."""

    model_config = ConfigDict(extra="forbid")

    task_kind: str = Field(min_length=1, max_length=MAX_HEADER_VALUE_LENGTH)
    worker_kind: str = Field(min_length=1, max_length=MAX_HEADER_VALUE_LENGTH)
    input: Any = Field(default=None, description="The input as a JSON value.")
    input_base64: str | None = Field(default=None, description="The input bytes, base64.")
    content_type: str | None = Field(
        default=None, min_length=1, max_length=255, description="Only with input_base64."
    )
    priority: StrictInt = Field(default=0, ge=0, le=MAX_PRIORITY)
    ttl: StrictInt | None = Field(
        default=None, ge=0, le=MAX_TTL, description="Default: the relay's --default-ttl."
    )
    id: UUID | None = Field(default=None, description="Choose the id; makes retries safe.")

    @model_validator(mode="after")
    def _one_input(self) -> PublishIn:
        if self.input_base64 is not None:
            if "input" in self.model_fields_set:
                raise ValueError("give input or input_base64, not both")
            try:
                base64.b64decode(self.input_base64, validate=True)
            except ValueError:
                raise ValueError("input_base64 is not valid base64") from None
        elif self.content_type is not None:
            raise ValueError(
                "content_type goes with input_base64 (a JSON input is always application/json)"
            )
        return self

    def payload(self) -> Payload:
        """The serialized input: JSON for ``input``, the decoded bytes for ``input_base64``."""
        if self.input_base64 is not None:
            data = base64.b64decode(self.input_base64, validate=True)
            return Payload(self.content_type or "application/octet-stream", data)
        text = json.dumps(self.input, separators=(",", ":"), ensure_ascii=False)
        return Payload("application/json", text.encode())


class PublishOut(BaseModel):
    """The id of the published task; ``created`` is false when it already existed."""

    id: UUID
    created: bool


class PartHealth(BaseModel):
    """One part's health: ``ok`` and a short, credential-free detail."""

    ok: bool
    detail: str


class HealthOut(BaseModel):
    """``GET /health``: each part's health and the relay's counters since it started."""

    status: Literal["ok", "unavailable"]
    failing: list[str] = Field(description="The parts that are not ok (store, broker).")
    store: PartHealth
    broker: PartHealth | None = Field(description="null when this relay uses no broker.")
    consumer: bool
    cleanup: bool
    stats: dict[str, int | float]


class ErrorDetail(BaseModel):
    """What went wrong: a stable ``type`` to branch on and a message for people."""

    type: str
    message: str


class ErrorBody(BaseModel):
    """Every error response: ``{"error": {"type": ..., "message": ...}}``."""

    error: ErrorDetail


def _base_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def readable(text: str) -> str:
    """``text`` with each lone surrogate written as ``\\udXXX`` (JSON text cannot hold one);
    any other text is returned as it is."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def payload_to_api(payload: Payload) -> PayloadOut:
    """A payload with the encoding its content type calls for (see the module docstring)."""
    content_type = readable(payload.content_type)
    base = _base_type(content_type)
    is_json = base == "application/json" or base.endswith("+json")
    if is_json:
        try:
            value = strict_loads(payload.data)
            return PayloadOut(content_type=content_type, encoding="json", data=value)
        except StrictJSONError:
            pass  # not strict JSON after all: fall through to text or base64
    if base.startswith("text/") or is_json:
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
        task_kind=readable(task.task_kind),
        worker_kind=readable(task.worker_kind),
        priority=task.priority,
        status=task.status,
        is_error=task.is_error,
        error=None if err is None else ErrorOut(**_error_fields(err)),
        input=None if task.input is None else payload_to_api(task.input),
        output=None if task.output is None else payload_to_api(task.output),
        created_at=_time(task.created_at),
        started_at=_time(task.started_at),
        completed_at=_time(task.completed_at),
        executed_by=None if executed_by is None else readable(executed_by),
        attempt=task.attempt,
        ttl=task.ttl,
    )


def _error_fields(err: ErrorInfo) -> dict[str, Any]:
    traceback = None if err.traceback is None else readable(err.traceback)
    return {"type": readable(err.type), "message": readable(err.message), "traceback": traceback}


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
    """A :class:`~tacoq.models.Task` from its API shape (what the relay client returns)."""
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
