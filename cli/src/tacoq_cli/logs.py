"""Where log records go when TacoQ runs as the ``tacoq`` command, and how they look.

Records of TacoQ's own loggers (``tacoq.*``, and ``tacoq_postgres``) are written to stderr at
the level asked for (``--log-level``), as text or as one JSON object per line
(``--log-format``, docs/cli.md "Logs"). Any password in a URL is replaced, whatever logged it
and in every field. Records about a task carry its id, kind, attempt and worker
(:func:`tacoq.logfields.task_fields`): JSON has them as fields, text appends them.

The client libraries under the plugins (aiormq, aio-pika, pika, psycopg, uvicorn) log their own
view of a failure that TacoQ reports itself, in one ``error:`` line: their records are shown as
debug records, so only ``--log-level debug`` shows them (uvicorn's and psycopg's errors keep
their level). A process that configured the ``tacoq`` logger itself (an embedding application)
is left alone.

With ``--log-format json`` the command's own ``error:`` and ``warning:`` lines become JSON
objects too (:func:`json_line`): every line on stderr parses.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from typing import Any

from tacoq.logfields import TASK_FIELDS
from tacoq_cli.errors import redact, set_line_format
from tacoq_cli.options import LogFormat, LogLevel

__all__ = [
    "ACCESS_FIELDS",
    "DEMOTED_LOGGERS",
    "OWN_LOGGERS",
    "JsonFormatter",
    "TextFormatter",
    "configure_logging",
    "json_line",
    "utc_timestamp",
]

#: TacoQ's loggers: the core's and its plugins' (``tacoq_postgres`` predates the ``tacoq.``
#: prefix).
OWN_LOGGERS = ("tacoq", "tacoq_postgres")
#: Client libraries whose records are shown as debug records: each with the most severe level
#: that is demoted. The AMQP clients log every failed connection attempt as an error; psycopg's
#: pool warns of each failed reconnect; uvicorn's errors are exceptions in the relay's app (bugs)
#: and psycopg's are rare, so those keep their level.
DEMOTED_LOGGERS: dict[str, int] = {
    "aiormq": logging.CRITICAL,
    "aio_pika": logging.CRITICAL,
    "pika": logging.CRITICAL,
    "psycopg": logging.WARNING,
    "psycopg_pool": logging.WARNING,
    "uvicorn": logging.WARNING,
}
#: The fields of an HTTP access record (``tacoq.relay.access``) that JSON lines carry.
ACCESS_FIELDS = ("method", "path", "status", "duration_ms", "client")

_LEVELS = {
    LogLevel.DEBUG: logging.DEBUG,
    LogLevel.INFO: logging.INFO,
    LogLevel.WARNING: logging.WARNING,
    LogLevel.ERROR: logging.ERROR,
}
_TEXT_LABELS = {"task_id": "task", "task_kind": "kind", "attempt": "attempt"}
#: Characters JSON allows raw in a string that some readers still take for line breaks
#: (``str.splitlines``), and lone surrogates, which are not text: written as ``\\uXXXX``.
_NOT_RAW = re.compile("[\x85\u2028\u2029\ud800-\udfff]")


class TextFormatter(logging.Formatter):
    """One readable line per record (more for a traceback): ``warning: message`` or, ``verbose``,
    ``<time> info tacoq.worker: message``; a record about a task ends with
    ``[task=<id> kind=<kind> attempt=<n>]``."""

    def __init__(self, *, verbose: bool) -> None:
        super().__init__()
        self.verbose = verbose

    def format(self, record: logging.LogRecord) -> str:
        """The record as text, with every password in a URL replaced."""
        level = record.levelname.lower()
        message = record.getMessage()
        if self.verbose:
            line = f"{self.formatTime(record)} {level} {record.name}: {message}"
        else:
            line = f"{level}: {message}"
        fields = [
            f"{label}={value}"
            for name, label in _TEXT_LABELS.items()
            if (value := record.__dict__.get(name)) is not None
        ]
        if fields:
            line += f" [{' '.join(fields)}]"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        elif record.exc_text:
            line += "\n" + record.exc_text
        if record.stack_info:
            line += "\n" + self.formatStack(record.stack_info)
        return redact(line)


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line: ``ts`` (UTC, milliseconds), ``level``,
    ``logger``, ``message``; the task's ``task_id``, ``task_kind``, ``attempt`` and ``worker``
    when the record is about one; an access record's ``method``, ``path``, ``status``,
    ``duration_ms`` and ``client``; ``exc`` (the traceback) and ``stack`` when the record has
    them. Every password in a URL is replaced, in every field."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line of JSON."""
        entry: dict[str, Any] = {
            "ts": utc_timestamp(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in (*TASK_FIELDS, *ACCESS_FIELDS):
            value = record.__dict__.get(name)
            if value is not None:
                entry[name] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exc"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        for name, value in entry.items():
            if not isinstance(value, bool | int | float):
                entry[name] = redact(str(value))
        line = json.dumps(entry, ensure_ascii=False)
        return _NOT_RAW.sub(lambda m: f"\\u{ord(m.group()):04x}", line)


def json_line(level: str, message: str) -> str:
    """The JSON line of the command's own ``error:`` or ``warning:`` line (logger
    ``tacoq.cli``), so that with ``--log-format json`` every line on stderr is JSON."""
    record = logging.makeLogRecord(
        {"name": "tacoq.cli", "msg": message, "levelname": level.upper(), "levelno": 0}
    )
    return JsonFormatter().format(record)


def utc_timestamp(created: float) -> str:
    """``created`` (seconds since the epoch) as ISO-8601 in UTC with milliseconds:
    ``2025-01-31T12:00:00.123Z``."""
    whole = int(created)
    millis = min(int((created - whole) * 1000), 999)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + f".{millis:03d}Z"


class _Threshold(logging.Filter):
    """Turns the client libraries' records into debug records, then drops every record less
    severe than the level asked for."""

    def __init__(self, level: int) -> None:
        super().__init__()
        self.level = level

    def filter(self, record: logging.LogRecord) -> bool:
        """False for a record not to be written (a demoted one below the level)."""
        highest = DEMOTED_LOGGERS.get(record.name.partition(".")[0])
        if highest is not None and record.levelno <= highest:
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return record.levelno >= self.level


def configure_logging(
    level: LogLevel | str | None = None,
    fmt: LogFormat | str = LogFormat.TEXT,
    *,
    verbose: bool = False,
) -> None:
    """Send TacoQ's log records (and the client libraries', as debug records) to stderr.

    ``level`` is the least severe level written (default: ``warning``, or ``info`` when
    ``verbose``); ``fmt`` is ``text`` or ``json``. ``verbose`` (long-running commands like
    ``tacoq worker``) gives text lines a timestamp and the logger's name; without it they read
    ``warning: ...``. Called again, it changes the level and format. When the ``tacoq`` logger
    has a handler someone else added, nothing is changed.
    """
    tacoq_logger = logging.getLogger("tacoq")
    if any(not _is_ours(h) for h in tacoq_logger.handlers):
        return  # configured by someone else (an embedding application)
    threshold = _LEVELS[LogLevel(level)] if level is not None else None
    if threshold is None:
        threshold = logging.INFO if verbose else logging.WARNING
    handler = next((h for h in tacoq_logger.handlers if _is_ours(h)), None)
    if handler is None:
        handler = logging.StreamHandler(sys.stderr)
        handler._tacoq_cli = True  # type: ignore[attr-defined]
    if LogFormat(fmt) is LogFormat.JSON:
        handler.setFormatter(JsonFormatter())
        set_line_format(json_line)
    else:
        handler.setFormatter(TextFormatter(verbose=verbose))
        set_line_format(None)
    for old in [f for f in handler.filters if isinstance(f, _Threshold)]:
        handler.removeFilter(old)
    handler.addFilter(_Threshold(threshold))
    for name in (*OWN_LOGGERS, *DEMOTED_LOGGERS):
        logger = logging.getLogger(name)
        if handler not in logger.handlers:
            logger.addHandler(handler)
        logger.propagate = False
        if name in OWN_LOGGERS:
            logger.setLevel(threshold)


def _is_ours(handler: logging.Handler) -> bool:
    return getattr(handler, "_tacoq_cli", False) is True
