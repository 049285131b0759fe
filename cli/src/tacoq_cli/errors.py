"""Turning user mistakes into one clear line on stderr, and choosing the exit code.

Every mistake a user can make (a bad option, a bad ``MODULE:ATTR``, an unknown URL scheme, a
plugin problem) ends as ``error: <message>`` on one line and a non-zero exit — never a traceback.
Lines are written with plain ``print`` rather than rich, so a narrow terminal never wraps them.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable

from tacoq.errors import ConfigError, PluginError, TacoqError

__all__ = [
    "EXIT_ERROR",
    "EXIT_INTERRUPTED",
    "EXIT_TASK_FAILED",
    "EXIT_TIMED_OUT",
    "EXIT_USAGE",
    "exit_code_for",
    "one_line",
    "print_error",
    "print_warning",
    "redact",
    "set_line_format",
]

#: A TacoQ error that is not about how the command was called.
EXIT_ERROR = 1
#: Usage and configuration mistakes (bad options, URLs, plugins), like click's usage errors.
EXIT_USAGE = 2
#: The task waited for completed with an error (``--wait``): the command itself worked.
EXIT_TASK_FAILED = 3
#: The wait (``--wait SECONDS``) ended before the task completed.
EXIT_TIMED_OUT = 4
#: Interrupted with Ctrl-C, as shells report SIGINT.
EXIT_INTERRUPTED = 130

# ``://user:password@`` — the password part is replaced, whatever produced the message. The
# pattern starts at the literal ``://`` (not at a scheme, which made the search quadratic in a
# long run of letters: a 70,000-character header value in a log line took seconds).
_URL_PASSWORD = re.compile(r"(?P<head>://[^\s:/@]*:)[^\s@/]+@")


def redact(text: str) -> str:
    """``text`` with the password of every ``scheme://user:password@`` replaced by ``***``
    (in time linear in the text's length)."""
    if "://" not in text:
        return text
    return _URL_PASSWORD.sub(lambda m: m.group("head") + "***@", text)


def one_line(message: str) -> str:
    """``message`` on a single line with any password in a URL replaced by ``***``."""
    return redact(" ".join(message.split()))


def _text_line(level: str, message: str) -> str:
    return f"{level}: {message}"


#: How :func:`print_error` and :func:`print_warning` shape their line from the level and the
#: one-line message (``--log-format json`` makes it a JSON object: :func:`set_line_format`).
_line_format: Callable[[str, str], str] = _text_line


def set_line_format(shape: Callable[[str, str], str] | None) -> None:
    """Make ``error:``/``warning:`` lines ``shape(level, message)`` from now on (the message
    already on one line and redacted); ``None`` restores ``<level>: <message>``."""
    global _line_format
    _line_format = shape or _text_line


def print_error(message: str) -> None:
    """Write ``error: <message>`` as one line to stderr."""
    print(_line_format("error", one_line(message)), file=sys.stderr, flush=True)


def print_warning(message: str) -> None:
    """Write ``warning: <message>`` as one line to stderr."""
    print(_line_format("warning", one_line(message)), file=sys.stderr, flush=True)


def exit_code_for(exc: TacoqError) -> int:
    """The exit code for a TacoQ error: 2 for configuration and plugin problems, else 1."""
    if isinstance(exc, ConfigError | PluginError):
        return EXIT_USAGE
    return EXIT_ERROR
