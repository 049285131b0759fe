"""The user's vocabulary: tasks, their statuses, and the events that carry a task through its life.

A :class:`Task` is the latest known state of one task, as the store keeps it. A
:class:`TaskEvent` is one step of its life (assigned, running, completed) as it travels through
the broker. :mod:`tacoq.model.merge` folds events into tasks.

Plain slotted dataclasses, not pydantic models: these objects are created several times per task
on the hot path, and pydantic is kept for the user's own payloads.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, TypeVar, overload
from uuid import UUID

from tacoq.errors import TacoqError, TaskFailed

__all__ = [
    "DEFAULT_TTL_SECONDS",
    "MAX_ERROR_TEXT",
    "MAX_NAME_TEXT",
    "MAX_PRIORITY",
    "ErrorInfo",
    "Payload",
    "Phase",
    "Task",
    "TaskEvent",
    "TaskStatus",
    "escape_surrogates",
    "is_json_type",
    "media_type",
    "pending_task",
    "readable_text",
    "utcnow",
]

T = TypeVar("T")

#: The most an error message or traceback keeps, in characters (longer text is cut).
MAX_ERROR_TEXT = 65_536
#: The most an error type or worker name keeps, in characters.
MAX_NAME_TEXT = 255
#: Highest priority the API accepts (lowest is 0).
MAX_PRIORITY = 255
#: How long a completed task's record lives unless the publisher says otherwise (7 days).
DEFAULT_TTL_SECONDS = 7 * 24 * 3600


def readable_text(text: str, limit: int) -> str:
    """``text`` as every store and JSON encoder can hold it, at most ``limit`` characters kept.

    NUL becomes the four characters ``\\x00`` and a lone surrogate (a file name read with
    ``surrogateescape``, say) its ``\\udXXX`` escape; text over ``limit`` characters is cut
    and says how much was cut. Used for free text that reaches the store (error messages and
    tracebacks, worker names), which must never be refused or break a page that shows it.
    """
    if len(text) > limit:
        text = f"{text[:limit]}... [{len(text) - limit:,} more characters cut]"
    if "\x00" in text:
        text = text.replace("\x00", "\\x00")
    return escape_surrogates(text)


def escape_surrogates(text: str) -> str:
    """``text`` with each lone surrogate written as its escape ``\\udXXX`` (UTF-8 and JSON
    text cannot hold one); any other text is returned as it is, at the cost of one check."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def utcnow() -> datetime:
    """The current time as a timezone-aware UTC datetime."""
    return datetime.now(UTC)


class TaskStatus(enum.StrEnum):
    """Where a task is in its life. ``COMPLETED`` covers success and failure (see ``is_error``)."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"


class Phase(enum.IntEnum):
    """The phase an event reports; events of one attempt are ordered by phase."""

    ASSIGNED = 0
    RUNNING = 1
    COMPLETED = 2

    @property
    def status(self) -> TaskStatus:
        """The task status a row shows when this phase is the greatest it has seen."""
        return _STATUS_OF_PHASE[self]


_STATUS_OF_PHASE = {
    Phase.ASSIGNED: TaskStatus.PENDING,
    Phase.RUNNING: TaskStatus.RUNNING,
    Phase.COMPLETED: TaskStatus.COMPLETED,
}
_PHASE_OF_STATUS = {status: phase for phase, status in _STATUS_OF_PHASE.items()}


@functools.lru_cache(maxsize=256)  # a process sees few content types; read for every payload
def media_type(content_type: str) -> str:
    """The media type of a content type, lower-case, without parameters: ``application/json``
    for ``Application/JSON; charset=utf-8``."""
    return content_type.split(";", 1)[0].strip().lower()


@functools.lru_cache(maxsize=256)
def is_json_type(content_type: str) -> bool:
    """True for a JSON content type: ``application/json`` or any ``*+json``."""
    base = media_type(content_type)
    return base == "application/json" or base.endswith("+json")


@dataclass(frozen=True, slots=True)
class Payload:
    """Serialized bytes with the content type that says how to read them."""

    content_type: str
    data: bytes

    def __repr__(self) -> str:
        return f"Payload({self.content_type!r}, {len(self.data)} bytes)"


@dataclass(frozen=True, slots=True)
class ErrorInfo:
    """Why a task failed: the exception type, its message and the formatted traceback."""

    type: str
    message: str
    traceback: str | None = None

    @classmethod
    def from_exception(cls, exc: BaseException, *, with_traceback: bool = True) -> ErrorInfo:
        """Describe ``exc``; the traceback never includes local variables.

        Message and traceback are made storable and bounded (:func:`readable_text`).
        """
        import traceback as tb

        text = "".join(tb.format_exception(exc)) if with_traceback else None
        try:
            message = str(exc)
        except Exception as failure:  # an exception whose __str__ itself fails
            message = f"<str() of the exception failed: {type(failure).__name__}>"
        return cls(
            type=readable_text(type(exc).__name__, MAX_NAME_TEXT),
            message=readable_text(message, MAX_ERROR_TEXT),
            traceback=None if text is None else readable_text(text, MAX_ERROR_TEXT),
        )


@dataclass(frozen=True, slots=True)
class TaskEvent:
    """One step in a task's life, as carried by the broker from publisher and worker to the relay.

    ``ASSIGNED`` events come from the publisher (or a retry) and carry the input, priority and
    ``created_at``. ``RUNNING`` and ``COMPLETED`` events come from the worker that runs the
    attempt; ``COMPLETED`` carries ``executed_by`` and ``started_at`` too, so a worker may skip
    ``RUNNING`` for a short task. Every event carries the kinds and the ttl, so a row is useful
    even when its assignment has not arrived yet.
    """

    id: UUID
    attempt: int
    phase: Phase
    task_kind: str
    worker_kind: str
    ttl: int = DEFAULT_TTL_SECONDS
    priority: int = 0
    created_at: datetime | None = None
    input: Payload | None = None
    executed_by: str | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    is_error: bool = False
    output: Payload | None = None
    error: ErrorInfo | None = None

    @property
    def key(self) -> tuple[int, int]:
        """The order of events within one task: ``(attempt, phase)``."""
        return (self.attempt, int(self.phase))


@dataclass(frozen=True, slots=True)
class Task:
    """The latest known state of one task.

    ``created_at``, ``input`` and ``priority`` come from the task's assignment; until the store
    has seen it (updates may arrive first), ``created_at`` is ``None``.
    """

    id: UUID
    task_kind: str
    worker_kind: str
    status: TaskStatus = TaskStatus.PENDING
    priority: int = 0
    attempt: int = 1
    ttl: int = DEFAULT_TTL_SECONDS
    is_error: bool = False
    error: ErrorInfo | None = None
    input: Payload | None = None
    output: Payload | None = None
    created_at: datetime | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    executed_by: str | None = None

    @property
    def phase(self) -> Phase:
        """The phase of the greatest event this row has seen."""
        return _PHASE_OF_STATUS[self.status]

    @property
    def is_completed(self) -> bool:
        """True once the task completed, successfully or not."""
        return self.status is TaskStatus.COMPLETED

    @property
    def expires_at(self) -> datetime | None:
        """When the record may be deleted: ``completed_at + ttl``, or ``None`` while unfinished."""
        if self.completed_at is None:
            return None
        return self.completed_at + timedelta(seconds=self.ttl)

    @overload
    def result(self, *, serializers: PayloadDecoder | None = None) -> Any: ...
    @overload
    def result(self, into: type[T], *, serializers: PayloadDecoder | None = None) -> T: ...
    def result(self, into: Any = None, *, serializers: PayloadDecoder | None = None) -> Any:
        """The task's output, decoded (and validated into ``into`` when given).

        ``serializers`` decode it; by default the process's (the plugin host's serializer
        registry, which the ``tacoq`` package installs as :data:`default_serializers`: the model
        itself imports no runtime). Raises :class:`~tacoq.errors.TaskFailed` (with the remote
        error's type, message and traceback) when the task failed, and
        :class:`~tacoq.errors.TacoqError` while it has not completed yet.
        """
        if not self.is_completed:
            raise TacoqError(f"task {self.id} has not completed yet (status {self.status})")
        if self.is_error:
            err = self.error or ErrorInfo("UnknownError", "the task failed without details")
            raise TaskFailed(self.id, err.type, err.message, err.traceback)
        if self.output is None:
            return None
        decoder = serializers or default_serializers()
        return decoder.decode(self.output, into, what=f"output of task {self.id}")


class PayloadDecoder(Protocol):
    """What :meth:`Task.result` decodes with (a serializer registry)."""

    def decode(self, payload: Payload, tp: Any = None, *, what: str = "value") -> Any:
        """``payload`` as ``tp`` (validated), or by its content type when ``tp`` is None."""
        ...


def _no_serializers() -> PayloadDecoder:
    raise TacoqError("no serializers installed: import tacoq (or pass serializers=...)")


#: Returns the serializers :meth:`Task.result` uses when given none. The ``tacoq`` package sets
#: it to the plugin host's registry when it is imported (which every import of a ``tacoq``
#: module does first).
default_serializers: Callable[[], PayloadDecoder] = _no_serializers


def pending_task(assignment: TaskEvent) -> Task:
    """The ``PENDING`` task a just-published ASSIGNED event stands for (as ``publish`` returns)."""
    return Task(
        id=assignment.id,
        task_kind=assignment.task_kind,
        worker_kind=assignment.worker_kind,
        priority=assignment.priority,
        ttl=assignment.ttl,
        input=assignment.input,
        created_at=assignment.created_at,
    )
