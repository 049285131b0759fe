"""Task options: what a publisher may say about one task besides its kind and its input.

Every option is declared here once (docs/architecture.md, "Where to add what"):

- :class:`PublishOptions` is how a caller writes them, as keyword arguments of every publishing
  surface (``publish(task, input, priority=5, countdown=10)``), typed so mypy checks the call;
- :class:`TaskOptions` is the frozen, validated value the submission kernel
  (:mod:`tacoq.publishing.kernel`) builds an assignment from. Validation happens once, when it is
  made, and raises :class:`~tacoq.errors.ConfigError` naming the option and the value.

A field of :class:`TaskOptions` that :class:`~tacoq.model.task.TaskEvent` also has (``priority``,
``ttl``) is carried into the assignment as it is; the others say how to send it (``worker_kind``
routes it, ``id`` names it, ``countdown``/``eta`` hold it back).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypedDict
from uuid import UUID

from tacoq.errors import ConfigError, WireFormatError
from tacoq.model.task import MAX_PRIORITY
from tacoq.model.wire import MAX_TTL, format_timestamp, kind_problem, parse_timestamp, quoted

__all__ = [
    "DEFAULT_OPTIONS",
    "MAX_DELAY_SECONDS",
    "OPTION_NAMES",
    "PublishOptions",
    "TaskOptions",
    "options_json",
]

#: The longest a task may be held back (``countdown`` or ``eta``): 2**22 s, about 48.5 days.
#: Every broker holds delays at least this long (the RabbitMQ plugin's delay ladder does).
MAX_DELAY_SECONDS = float(2**22)


class PublishOptions(TypedDict, total=False):
    """The task options as keyword arguments; see :class:`TaskOptions` for what each means."""

    worker_kind: str | None
    priority: int
    ttl: int | None
    id: UUID | str | None
    countdown: float | None
    eta: datetime | None


@dataclass(frozen=True, slots=True)
class TaskOptions:
    """Every task option, validated once when made (``ConfigError`` names what is wrong).

    - ``worker_kind``: the kind of worker that runs the task; a typed task (a ``TaskDef``)
      brings its own, a task published by name needs it;
    - ``priority``: 0-255, higher runs first;
    - ``ttl``: seconds the task's record lives after completion (``None``: the publisher's
      default);
    - ``id``: the task's UUID (a ``UUID`` or its text), to make a publish safe to repeat;
      ``None``: a new random one;
    - ``countdown``: seconds to hold the task back (zero or less: run at once);
    - ``eta``: a timezone-aware time to run it at (not with ``countdown``).

    Both delays are bounded by :data:`MAX_DELAY_SECONDS`.
    """

    worker_kind: str | None = dataclasses.field(
        default=None, metadata={"help": "The kind of worker that runs it."}
    )
    priority: int = dataclasses.field(default=0, metadata={"help": "0-255, higher first."})
    ttl: int | None = dataclasses.field(
        default=None, metadata={"help": "Seconds the record lives after completion."}
    )
    id: UUID | None = dataclasses.field(
        default=None, metadata={"help": "Choose the task id (a UUID); safe to repeat."}
    )
    countdown: float | None = dataclasses.field(
        default=None, metadata={"help": "Seconds to hold the task back."}
    )
    eta: datetime | None = dataclasses.field(
        default=None, metadata={"help": "When to run it: an RFC 3339 time with its offset."}
    )

    def __post_init__(self) -> None:
        if self.worker_kind is not None and (problem := kind_problem(self.worker_kind)):
            raise ConfigError(f"worker_kind {problem}: {quoted(self.worker_kind)}")
        if type(self.priority) is not int or not 0 <= self.priority <= MAX_PRIORITY:
            raise ConfigError(
                f"priority must be an integer from 0 to {MAX_PRIORITY}, got {_shown(self.priority)}"
            )
        if self.ttl is not None and (type(self.ttl) is not int or not 0 <= self.ttl <= MAX_TTL):
            raise ConfigError(
                f"ttl must be a whole number of seconds from 0 to {MAX_TTL}, got {_shown(self.ttl)}"
            )
        given: object = self.id  # its text is welcome too (TaskOptions.of takes PublishOptions)
        if given is not None and not isinstance(given, UUID):
            object.__setattr__(self, "id", _task_id(given))
        if self.countdown is not None:
            _check_countdown(self.countdown)
        if self.eta is not None:
            if not isinstance(self.eta, datetime):
                raise ConfigError(f"eta must be a datetime, not {type(self.eta).__name__}")
            if self.eta.tzinfo is None or self.eta.utcoffset() is None:
                raise ConfigError("eta must be timezone-aware (for example datetime.now(UTC))")
            if self.countdown is not None:
                raise ConfigError("countdown or eta: give one, not both")

    @classmethod
    def of(
        cls, options: TaskOptions | None = None, overrides: Mapping[str, Any] | None = None
    ) -> TaskOptions:
        """``options`` (default: none set) with ``overrides`` (keyword options) applied.

        A name that is no option raises :class:`TypeError` listing the options there are.
        """
        base = DEFAULT_OPTIONS if options is None else options
        if not overrides:
            return base
        unknown = overrides.keys() - OPTION_NAMES
        if unknown:
            raise _unknown(sorted(unknown)[0])
        if base is DEFAULT_OPTIONS:
            return cls(**overrides)
        return dataclasses.replace(base, **overrides)

    @classmethod
    def from_text(cls, values: Mapping[str, str]) -> TaskOptions:
        """Options from their text forms (a command line's): integers, numbers, a UUID and
        an RFC 3339 time with its offset; an error names the option and the text."""
        parsed: dict[str, Any] = {}
        for name, text in values.items():
            kind = _TEXT_FORMS.get(name)
            if kind is None:
                raise ConfigError(f"unknown task option {quoted(name)}")
            try:
                parsed[name] = kind(text)
            except (ValueError, OverflowError, WireFormatError) as exc:
                raise ConfigError(f"{name}: {quoted(text)} is not valid ({exc})") from None
        return cls.of(None, parsed)

    def delay(self, now: datetime) -> float | None:
        """Seconds to hold the task back at ``now`` (``None``: send it at once)."""
        if self.eta is not None:
            seconds = (self.eta - now).total_seconds()
            if seconds > MAX_DELAY_SECONDS:
                raise ConfigError(
                    f"eta {format_timestamp(self.eta)} is more than {MAX_DELAY_SECONDS:.0f} "
                    "seconds (about 48.5 days) away, the longest a task may be held back"
                )
        else:
            seconds = self.countdown if self.countdown is not None else 0.0
        return seconds if seconds > 0 else None

    def as_json(self) -> dict[str, Any]:
        """The options that are set, as JSON values (the relay's ``POST /tasks`` fields)."""
        return options_json({name: getattr(self, name) for name in OPTION_NAMES})


def options_json(values: Mapping[str, Any]) -> dict[str, Any]:
    """Task options as JSON values, not validated (the relay's ``POST /tasks`` validates them):
    a UUID as its text, a time in RFC 3339; an option left ``None`` is left out. A name that is
    no option raises :class:`TypeError`."""
    body: dict[str, Any] = {}
    for name, value in values.items():
        if name not in OPTION_NAMES:
            raise _unknown(name)
        if value is None:
            continue
        if isinstance(value, UUID):
            value = str(value)
        elif isinstance(value, datetime):
            value = format_timestamp(value) if value.tzinfo is not None else value.isoformat()
        body[name] = value
    return body


def _shown(value: object) -> str:
    """``repr`` of a value, cut to 64 characters (it becomes an error message)."""
    text = repr(value)
    return text if len(text) <= 64 else text[:64] + "..."


def _unknown(name: str) -> TypeError:
    return TypeError(
        f"unknown task option {quoted(name)}; the options are " + ", ".join(sorted(OPTION_NAMES))
    )


def _task_id(value: object) -> UUID:
    if not isinstance(value, str):
        raise ConfigError(f"id must be a UUID or its text, not {type(value).__name__}")
    try:
        return UUID(value)
    except ValueError:
        raise ConfigError(f"id is not a UUID: {quoted(value)}") from None


def _check_countdown(value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"countdown must be a number of seconds, got {_shown(value)}")
    if not math.isfinite(value) or value > MAX_DELAY_SECONDS:
        raise ConfigError(
            f"countdown must be a finite number of seconds up to {MAX_DELAY_SECONDS:.0f} "
            f"(about 48.5 days), got {value!r}"
        )


#: The name of every task option.
OPTION_NAMES = frozenset(field.name for field in dataclasses.fields(TaskOptions))
#: How a command line's text becomes each option's value.
_TEXT_FORMS: dict[str, Any] = {
    "worker_kind": str,
    "priority": int,
    "ttl": int,
    "id": str,
    "countdown": float,
    "eta": parse_timestamp,
}
if _TEXT_FORMS.keys() != OPTION_NAMES:  # pragma: no cover - a new option needs its text form
    raise RuntimeError("every task option needs a text form in tacoq.model.options")

#: No option set: the publisher's defaults.
DEFAULT_OPTIONS = TaskOptions()
