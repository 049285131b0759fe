"""Wire format version 1: how events travel as broker-neutral envelopes.

An :class:`Envelope` is what every broker carries: a small set of string headers, a content
type and body bytes. Two kinds of message exist (``tacoq-event``):

- ``assign``: one task assignment. Headers carry the id, kinds, attempt, priority, ttl and
  ``created_at``; the body is the serialized input, unchanged, with its own content type.
- ``updates``: one or more RUNNING/COMPLETED events in a JSON body. Outputs and error details
  (tracebacks) travel in the body, never in headers.

An assignment may also carry ``tacoq-reply-to``, a publisher's reply address: the worker then
sends the task's COMPLETED event straight to that address as well (an ``updates`` message with
one event), besides the relay's copy (direct replies, :mod:`tacoq.publishing.replies`).

``docs/wire-format.md`` is the normative description; this module is its implementation.
"""

from __future__ import annotations

import base64
import functools
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import pydantic
import pydantic_core

from tacoq.errors import UnknownMessageKind, WireFormatError
from tacoq.model.strict_json import MAX_JSON_DEPTH, deeper_than
from tacoq.model.task import (
    MAX_ERROR_TEXT,
    MAX_NAME_TEXT,
    ErrorInfo,
    Payload,
    Phase,
    TaskEvent,
    is_json_type,
    media_type,
    readable_text,
)
from tacoq.model.workers import (
    Announcement,
    ControlMessage,
    Goodbye,
    Heartbeat,
    describe_invalid,
)

__all__ = [
    "HEADER_PREFIX",
    "MAX_HEADER_VALUE_LENGTH",
    "UPDATES_CONTENT_TYPE",
    "WIRE_VERSION",
    "Envelope",
    "check_reply_address",
    "decode",
    "decode_assignment",
    "decode_updates",
    "encode_assignment",
    "encode_updates",
    "format_timestamp",
    "kind_problem",
    "parse_timestamp",
    "raise_unknown_kind",
    "reply_address",
]

WIRE_VERSION = "1"
HEADER_PREFIX = "tacoq-"
#: Headers are bounded so no broker's header limit is ever reached by a long kind name.
MAX_HEADER_VALUE_LENGTH = 255
UPDATES_CONTENT_TYPE = "application/vnd.tacoq.updates+json"

H_VERSION = "tacoq-version"
H_EVENT = "tacoq-event"
H_ID = "tacoq-id"
H_TASK_KIND = "tacoq-task-kind"
H_WORKER_KIND = "tacoq-worker-kind"
H_ATTEMPT = "tacoq-attempt"
H_PRIORITY = "tacoq-priority"
H_TTL = "tacoq-ttl"
H_CREATED_AT = "tacoq-created-at"
H_COUNT = "tacoq-count"
#: Optional header of an ``assign`` message: where to send the COMPLETED event directly.
H_REPLY_TO = "tacoq-reply-to"
#: Optional header of any dead-lettered message: the dead letter's id (a UUID), kept when it is
#: requeued and dead-lettered again, so the store counts it on one record.
H_DEAD_LETTER_ID = "tacoq-dead-letter-id"
#: Optional header of a requeued dead letter: how many times it has been requeued.
H_REQUEUES = "tacoq-requeues"
#: The highest attempt number and ttl (seconds) the wire carries.
MAX_ATTEMPT = 1_000_000
MAX_TTL = 2**31 - 1
_REPLY_ADDRESS = re.compile(r"[A-Za-z0-9_-]{1,64}")
#: A kind (task, worker) or content type: 1-255 characters, none a control character or a
#: lone surrogate (stores and brokers cannot hold those).
_NAME = re.compile(r"[^\x00-\x1f\x7f-\x9f\ud800-\udfff]{1,255}")
#: The RFC 3339 subset the wire uses (docs/wire-format.md, "Timestamps").
_TIMESTAMP = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,9})?"
    r"(?:[Zz]|[+-][0-9]{2}:[0-9]{2})",
    re.ASCII,
)
#: A decimal integer header: ASCII digits only (no sign, spaces, underscores or other digits).
_DIGITS = re.compile(r"[0-9]{1,10}", re.ASCII)
#: A task id: a canonical, lower-case, hyphenated UUID.
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.ASCII)
#: What a message kind (``tacoq-event``) may look like; a well-formed kind this TacoQ does not
#: know is forward-compatible (:class:`~tacoq.errors.UnknownMessageKind`), anything else is
#: malformed.
_MESSAGE_KIND = re.compile(r"[a-z][a-z0-9-]{0,63}", re.ASCII)

EVENT_ASSIGN = "assign"
EVENT_UPDATES = "updates"
#: The control messages a worker sends to the relay (docs/workers.md).
EVENT_ANNOUNCE = "announce"
EVENT_HEARTBEAT = "heartbeat"
EVENT_GOODBYE = "goodbye"
CONTROL_CONTENT_TYPE = "application/vnd.tacoq.control+json"
#: The largest control message a relay reads (an announcement with many contracts).
MAX_CONTROL_BYTES = 4 * 1024 * 1024
_CONTROL_TYPES: dict[str, type[Announcement] | type[Heartbeat] | type[Goodbye]] = {
    EVENT_ANNOUNCE: Announcement,
    EVENT_HEARTBEAT: Heartbeat,
    EVENT_GOODBYE: Goodbye,
}


@dataclass(frozen=True, slots=True)
class Envelope:
    """A message as every broker carries it: string headers, a content type and body bytes."""

    headers: Mapping[str, str]
    content_type: str
    body: bytes
    meta: Mapping[str, Any] = field(default_factory=dict, compare=False)

    @property
    def event(self) -> str | None:
        """The ``tacoq-event`` header (``assign`` or ``updates``), if present."""
        return self.headers.get(H_EVENT)

    @property
    def worker_kind(self) -> str | None:
        """The worker kind an assignment is routed to (``None`` for updates)."""
        return self.headers.get(H_WORKER_KIND)

    @property
    def task_id(self) -> str | None:
        """The task id header, if present (assignments only)."""
        return self.headers.get(H_ID)


#: The last second :func:`format_timestamp` wrote: ``((year, ..., second), "YYYY-MM-DDTHH:MM:SS")``,
#: replaced whole, so a thread never sees half of it.
_last_second: tuple[tuple[int, ...], str] = ((), "")


def format_timestamp(value: datetime) -> str:
    """RFC 3339 UTC with microseconds, ending in ``Z``."""
    global _last_second
    if value.tzinfo is None:
        raise WireFormatError(f"timestamp {value!r} is naive; TacoQ only uses UTC-aware times")
    if value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    # Two per update event, and a busy worker's fall within the same second: the date and time
    # are formatted once per second (isoformat of an aware time is the slow part).
    key = (value.year, value.month, value.day, value.hour, value.minute, value.second)
    last = _last_second
    if key != last[0]:
        last = _last_second = (key, value.isoformat(timespec="seconds")[:-6])
    return f"{last[1]}.{value.microsecond:06d}Z"


def parse_timestamp(text: str) -> datetime:
    """Parse a timestamp of the wire's RFC 3339 subset into an aware UTC datetime.

    ``YYYY-MM-DDTHH:MM:SS``, optionally ``.`` and 1-9 fraction digits (cut to microseconds),
    then ``Z`` or ``±HH:MM``; ``T`` and ``Z`` may be lower-case. A value that cannot become a
    UTC datetime (a month 13, a time before year 1 or after year 9999 once in UTC) raises
    :class:`WireFormatError` like any malformed one.
    """
    if not isinstance(text, str) or not _TIMESTAMP.fullmatch(text):
        if isinstance(text, str) and _TIMESTAMP.fullmatch(text + "Z"):
            raise WireFormatError(f"timestamp {text!r} has no time zone")
        raise WireFormatError(
            f"invalid timestamp {quoted(text)}: expected YYYY-MM-DDTHH:MM:SS[.fraction] "
            "with Z or an offset ±HH:MM"
        )
    if text[-1] == "z" or text[10] == "t":
        text = f"{text[:10]}T{text[11:-1]}{text[-1].upper()}"
    try:
        value = datetime.fromisoformat(text)
        if value.tzinfo is UTC:  # "...Z", as TacoQ writes them: nothing to convert
            return value
        return value.astimezone(UTC)
    except (ValueError, OverflowError) as exc:
        raise WireFormatError(f"invalid timestamp {text!r}: {exc}") from None


def quoted(value: object, limit: int = 64) -> str:
    """``repr`` of ``value`` as text, cut to ``limit`` characters: error messages become log
    lines and dead-letter reasons, and a header may be 70,000 characters long."""
    text = str(value)
    return repr(text[:limit]) + ("..." if len(text) > limit else "")


def kind_problem(value: object) -> str | None:
    """Why ``value`` cannot be a kind (task or worker) or a content type, or ``None`` if it can.

    Such names are 1-255 characters, none of them a control character (NUL included) or a lone
    surrogate: they become header values, queue names and store columns.
    """
    if not isinstance(value, str):
        return f"must be a string, not {type(value).__name__}"
    if _NAME.fullmatch(value):
        return None
    if not value:
        return "must not be empty"
    if len(value) > MAX_HEADER_VALUE_LENGTH:
        return f"is {len(value)} characters long; the limit is {MAX_HEADER_VALUE_LENGTH}"
    return "must not hold control characters (such as NUL) or lone surrogates"


def _name(what: str, value: object) -> str:
    problem = kind_problem(value)
    if problem is not None:
        raise WireFormatError(f"{what} {problem}: {quoted(value)}")
    return value  # type: ignore[return-value]  # kind_problem checked it is a str


def check_reply_address(address: str) -> str:
    """``address`` if it is a valid reply address (1-64 of ``A-Z a-z 0-9 _ -``), else raise."""
    if not isinstance(address, str) or not _REPLY_ADDRESS.fullmatch(address):
        raise WireFormatError(
            f"reply address {str(address)[:80]!r} is not 1-64 characters of A-Z a-z 0-9 _ -"
        )
    return address


def reply_address(envelope: Envelope) -> str | None:
    """The reply address an ``assign`` envelope carries, ``None`` when it has none.

    Raises :class:`WireFormatError` for a malformed one.
    """
    address = envelope.headers.get(H_REPLY_TO)
    return None if address is None else check_reply_address(address)


def encode_assignment(event: TaskEvent, *, reply_to: str | None = None) -> Envelope:
    """The ``assign`` message for an ASSIGNED event; the body is the serialized input.

    ``reply_to`` (a publisher's reply address) asks the worker for a direct reply.
    """
    if event.phase is not Phase.ASSIGNED or event.input is None or event.created_at is None:
        raise WireFormatError("only an ASSIGNED event with input and created_at is an assignment")
    headers = {
        H_VERSION: WIRE_VERSION,
        H_EVENT: EVENT_ASSIGN,
        H_ID: str(event.id),
        H_TASK_KIND: _name(f"header {H_TASK_KIND}", event.task_kind),
        H_WORKER_KIND: _name(f"header {H_WORKER_KIND}", event.worker_kind),
        H_ATTEMPT: str(event.attempt),
        H_PRIORITY: str(event.priority),
        H_TTL: str(event.ttl),
        H_CREATED_AT: format_timestamp(event.created_at),
    }
    if reply_to is not None:
        headers[H_REPLY_TO] = check_reply_address(reply_to)
    content_type = _name("the input's content type", event.input.content_type)
    return Envelope(headers, content_type, event.input.data)


def _header(headers: Mapping[str, str], name: str) -> str:
    try:
        value = headers[name]
    except KeyError:
        raise WireFormatError(f"missing header {name}") from None
    if not isinstance(value, str):
        raise WireFormatError(f"header {name} must be a string, got {type(value).__name__}")
    return value


def _int_header(headers: Mapping[str, str], name: str, low: int, high: int) -> int:
    text = _header(headers, name)
    if not _DIGITS.fullmatch(text):
        raise WireFormatError(
            f"header {name} is not an integer (decimal ASCII digits only): {quoted(text, 40)}"
        )
    value = int(text)
    if not low <= value <= high:
        raise WireFormatError(f"header {name} is {value}, outside {low}..{high}")
    return value


def _check_version(envelope: Envelope) -> None:
    version = envelope.headers.get(H_VERSION)
    if version != WIRE_VERSION:
        raise WireFormatError(
            f"unknown wire version {quoted(version) if version is not None else None} "
            f"(this TacoQ speaks version {WIRE_VERSION})"
        )


def decode_assignment(envelope: Envelope) -> TaskEvent:
    """Read an ``assign`` message back into its ASSIGNED event."""
    _check_version(envelope)
    event = envelope.headers.get(H_EVENT)
    if event != EVENT_ASSIGN:
        raise WireFormatError(f"expected an {EVENT_ASSIGN!r} message, got event {quoted(event)}")
    headers = envelope.headers
    return TaskEvent(
        id=_task_id(_header(headers, H_ID), f"header {H_ID}"),
        attempt=_int_header(headers, H_ATTEMPT, 1, MAX_ATTEMPT),
        phase=Phase.ASSIGNED,
        task_kind=_name(f"header {H_TASK_KIND}", _header(headers, H_TASK_KIND)),
        worker_kind=_name(f"header {H_WORKER_KIND}", _header(headers, H_WORKER_KIND)),
        priority=_int_header(headers, H_PRIORITY, 0, 255),
        ttl=_int_header(headers, H_TTL, 0, MAX_TTL),
        created_at=parse_timestamp(_header(headers, H_CREATED_AT)),
        input=Payload(_name("the content type", envelope.content_type), envelope.body),
    )


def _task_id(text: object, what: str) -> UUID:
    """A task id of the canonical lower-case hyphenated form (``str(uuid)``), else raise."""
    if not isinstance(text, str) or not _UUID.fullmatch(text):
        raise WireFormatError(
            f"{what} is not a UUID in canonical form (lower-case, hyphenated): {quoted(text)}"
        )
    return UUID(text)


# -- updates -----------------------------------------------------------------------------------


@functools.lru_cache(maxsize=256)
def _is_textual(content_type: str) -> bool:
    return media_type(content_type).startswith("text/") or is_json_type(content_type)


def payload_to_json(payload: Payload) -> dict[str, Any]:
    """A payload as ``{content_type, encoding, data}``: text for textual types, else base64."""
    if _is_textual(payload.content_type):
        try:
            return {
                "content_type": payload.content_type,
                "encoding": "text",
                "data": payload.data.decode("utf-8"),
            }
        except UnicodeDecodeError:
            pass
    return {
        "content_type": payload.content_type,
        "encoding": "base64",
        "data": base64.b64encode(payload.data).decode("ascii"),
    }


def payload_from_json(obj: Any) -> Payload:
    """The inverse of :func:`payload_to_json`."""
    if not isinstance(obj, dict):
        raise WireFormatError("a payload must be an object")
    content_type = obj.get("content_type")
    encoding = obj.get("encoding")
    data = obj.get("data")
    if not isinstance(data, str):
        raise WireFormatError("a payload needs a string content_type and data")
    content_type = _name("a payload's content_type", content_type)
    if encoding == "text":
        try:
            return Payload(content_type, data.encode("utf-8"))
        except UnicodeEncodeError:
            raise WireFormatError(
                "text payload data holds a lone surrogate (not UTF-8); binary data travels "
                "as base64"
            ) from None
    if encoding == "base64":
        try:
            return Payload(content_type, base64.b64decode(data, validate=True))
        except ValueError:
            raise WireFormatError("payload data is not valid base64") from None
    raise WireFormatError(f"unknown payload encoding {quoted(encoding)}")


def _error_to_json(error: ErrorInfo | None) -> dict[str, Any] | None:
    if error is None:
        return None
    return {"type": error.type, "message": error.message, "traceback": error.traceback}


def _event_to_json(event: TaskEvent) -> dict[str, Any]:
    if event.phase is Phase.ASSIGNED:
        # A retry notice: the worker that failed attempt n says why attempt n+1 exists. The
        # assignment itself (input, priority, created_at) travels as an ``assign`` message.
        if event.error is None:
            raise WireFormatError("ASSIGNED events travel as assign messages, not as updates")
        return {
            "id": str(event.id),
            "attempt": event.attempt,
            "phase": "assigned",
            "task_kind": event.task_kind,
            "worker_kind": event.worker_kind,
            "ttl": event.ttl,
            "error": _error_to_json(event.error),
        }
    obj: dict[str, Any] = {
        "id": str(event.id),
        "attempt": event.attempt,
        "phase": event.phase.name.lower(),
        "task_kind": event.task_kind,
        "worker_kind": event.worker_kind,
        "ttl": event.ttl,
        "executed_by": event.executed_by,
        "started_at": format_timestamp(event.started_at) if event.started_at else None,
    }
    if event.phase is Phase.COMPLETED:
        obj["completed_at"] = format_timestamp(event.completed_at) if event.completed_at else None
        obj["is_error"] = event.is_error
        obj["output"] = payload_to_json(event.output) if event.output is not None else None
        obj["error"] = _error_to_json(event.error)
    return obj


_PHASES = {"assigned": Phase.ASSIGNED, "running": Phase.RUNNING, "completed": Phase.COMPLETED}


def _opt_time(obj: dict[str, Any], name: str) -> datetime | None:
    value = obj.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise WireFormatError(f"{name} must be a string timestamp")
    return parse_timestamp(value)


def _error_from_json(raw_error: Any) -> ErrorInfo | None:
    if raw_error is None:
        return None
    if not isinstance(raw_error, dict) or not isinstance(raw_error.get("type"), str):
        raise WireFormatError("update event error must be {type, message, traceback}")
    message = raw_error.get("message", "")
    if not isinstance(message, str):
        raise WireFormatError("update event error message must be a string")
    traceback = raw_error.get("traceback")
    if not isinstance(traceback, str | None):
        raise WireFormatError("update event error traceback must be a string or null")
    # Free text is made storable and bounded, never refused: a worker's exception message may
    # hold anything, and the completion it carries must not be lost for it.
    return ErrorInfo(
        type=readable_text(raw_error["type"], MAX_NAME_TEXT),
        message=readable_text(message, MAX_ERROR_TEXT),
        traceback=None if traceback is None else readable_text(traceback, MAX_ERROR_TEXT),
    )


def _event_from_json(obj: Any) -> TaskEvent:
    if not isinstance(obj, dict):
        raise WireFormatError("an update event must be a JSON object")
    try:
        phase = _PHASES[obj["phase"]]
        raw_id = obj["id"]
        attempt = obj["attempt"]
        task_kind = obj["task_kind"]
        worker_kind = obj["worker_kind"]
        ttl = obj["ttl"]
    except (KeyError, TypeError) as exc:  # TypeError: an unhashable phase
        name = exc.args[0] if isinstance(exc, KeyError) else "phase"
        raise WireFormatError(f"update event is missing or has a bad {name!r}") from None
    task_id = _task_id(raw_id, "update event id")
    if type(attempt) is not int or not 1 <= attempt <= MAX_ATTEMPT:
        raise WireFormatError(f"update event attempt must be an integer from 1 to {MAX_ATTEMPT}")
    if type(ttl) is not int or not 0 <= ttl <= MAX_TTL:
        raise WireFormatError(f"update event ttl must be an integer from 0 to {MAX_TTL}")
    task_kind = _name("update event task_kind", task_kind)
    worker_kind = _name("update event worker_kind", worker_kind)
    executed_by = obj.get("executed_by")
    if executed_by is not None:
        if not isinstance(executed_by, str):
            raise WireFormatError("update event executed_by must be a string")
        executed_by = readable_text(executed_by, MAX_NAME_TEXT)
    error = None
    output = None
    is_error = False
    completed_at = None
    if phase is Phase.ASSIGNED:
        error = _error_from_json(obj.get("error"))
        if error is None:
            raise WireFormatError("an assigned (retry notice) update event needs an error")
        if executed_by is not None or obj.get("started_at") is not None:
            raise WireFormatError("an assigned (retry notice) update event has no worker fields")
    if phase is Phase.COMPLETED:
        is_error = obj.get("is_error", False)
        if type(is_error) is not bool:
            raise WireFormatError("update event is_error must be a boolean")
        completed_at = _opt_time(obj, "completed_at")
        if obj.get("output") is not None:
            output = payload_from_json(obj["output"])
        error = _error_from_json(obj.get("error"))
    return TaskEvent(
        id=task_id,
        attempt=attempt,
        phase=phase,
        task_kind=task_kind,
        worker_kind=worker_kind,
        ttl=ttl,
        executed_by=executed_by,
        started_at=_opt_time(obj, "started_at"),
        completed_at=completed_at,
        is_error=is_error,
        output=output,
        error=error,
    )


def encode_updates(events: Sequence[TaskEvent]) -> Envelope:
    """One ``updates`` message carrying several RUNNING/COMPLETED events (and retry notices:
    ASSIGNED events that carry the previous attempt's error)."""
    if not events:
        raise WireFormatError("an updates message needs at least one event")
    items = [_event_to_json(e) for e in events]
    try:
        body = pydantic_core.to_json(items)  # compact UTF-8 JSON, ~3x faster than json.dumps
    except pydantic_core.PydanticSerializationError:  # a lone surrogate in an error message
        body = json.dumps(items, separators=(",", ":")).encode()
    headers = {H_VERSION: WIRE_VERSION, H_EVENT: EVENT_UPDATES, H_COUNT: str(len(events))}
    return Envelope(headers, UPDATES_CONTENT_TYPE, body)


def _load_updates_body(body: bytes) -> Any:
    """Parse an updates body: pydantic-core's parser (faster), or the standard library's for what
    it refuses that Python's JSON allows (a lone surrogate escape written by :func:`json.dumps`,
    nesting deeper than 200)."""
    try:
        return pydantic_core.from_json(body)
    except ValueError:
        pass
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise WireFormatError("updates body is not valid JSON") from None


def decode_updates(envelope: Envelope) -> list[TaskEvent]:
    """Read an ``updates`` message back into its events (all or nothing)."""
    _check_version(envelope)
    if envelope.content_type != UPDATES_CONTENT_TYPE:
        raise WireFormatError(
            f"updates must be {UPDATES_CONTENT_TYPE}, not {quoted(envelope.content_type)}"
        )
    items = _load_updates_body(envelope.body)
    if not isinstance(items, list) or not items:
        raise WireFormatError("updates body must be a non-empty JSON array")
    return [_event_from_json(item) for item in items]


def decode(envelope: Envelope) -> list[TaskEvent]:
    """Decode any TacoQ message into its events.

    Raises :class:`WireFormatError` if it is malformed, and its subclass
    :class:`~tacoq.errors.UnknownMessageKind` for a well-formed message of a kind this TacoQ
    does not know (a newer sender's): receivers ack and count those instead of dead-lettering
    them (docs/wire-format.md, "Versioning").
    """
    event = envelope.headers.get(H_EVENT)
    if event == EVENT_ASSIGN:
        return [decode_assignment(envelope)]
    if event == EVENT_UPDATES:
        return decode_updates(envelope)
    _check_version(envelope)
    raise_unknown_kind(event)
    raise AssertionError("unreachable")  # pragma: no cover


def raise_unknown_kind(event: object) -> None:
    """Raise for a ``tacoq-event`` value this TacoQ does not handle: :class:`UnknownMessageKind`
    when it is a well-formed kind name (``[a-z][a-z0-9-]{0,63}``), else :class:`WireFormatError`.
    """
    if isinstance(event, str) and _MESSAGE_KIND.fullmatch(event):
        raise UnknownMessageKind(event)
    shown = repr(event if event is None else str(event)[:64])
    missing = f": missing header {H_EVENT}" if event is None else ""
    raise WireFormatError(f"unknown event type {shown}{missing}")


# -- control messages (worker -> relay) --------------------------------------------------------


def encode_control(message: ControlMessage) -> Envelope:
    """A control message (announce, heartbeat, goodbye) as an envelope: its ``type`` is the
    ``tacoq-event`` header, its JSON the body."""
    headers = {H_VERSION: WIRE_VERSION, H_EVENT: message.type}
    return Envelope(headers, CONTROL_CONTENT_TYPE, message.model_dump_json().encode())


def decode_control(envelope: Envelope) -> ControlMessage:
    """Read a control message back. Raises :class:`WireFormatError` naming what is malformed
    (and :class:`~tacoq.errors.UnknownMessageKind` for a kind this TacoQ does not know)."""
    event = envelope.headers.get(H_EVENT)
    model = _CONTROL_TYPES.get(event) if isinstance(event, str) else None
    _check_version(envelope)
    if model is None:
        raise_unknown_kind(event)
        raise AssertionError("unreachable")  # pragma: no cover
    if media_type(envelope.content_type) != CONTROL_CONTENT_TYPE:
        raise WireFormatError(
            f"a control message ({event}) must be {CONTROL_CONTENT_TYPE}, not "
            f"{quoted(envelope.content_type)}"
        )
    if len(envelope.body) > MAX_CONTROL_BYTES:
        raise WireFormatError(
            f"a control message ({event}) is {len(envelope.body):,} bytes, over the limit of "
            f"{MAX_CONTROL_BYTES:,}"
        )
    if deeper_than(envelope.body, MAX_JSON_DEPTH):
        raise WireFormatError(
            f"a control message ({event}) is nested deeper than {MAX_JSON_DEPTH} levels"
        )
    try:
        message = model.model_validate_json(envelope.body)
    except pydantic.ValidationError as exc:
        raise WireFormatError(
            f"a malformed control message ({event}): {describe_invalid(exc)}"
        ) from None
    return message
