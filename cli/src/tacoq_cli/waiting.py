"""Waiting for a task from the command line: the seconds a wait takes, and how it ends.

``tacoq task publish --wait S``, ``tacoq task show ID --wait S`` and ``tacoq task wait ID``
print the task as it is when the wait ends, then exit with :func:`waited_exit_code`: 0 when it
completed, 3 when it completed with an error, 4 when it had not completed yet (docs/cli.md,
"Exit codes"). For 3 and 4, one ``error:`` line on stderr says why.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import typer

from tacoq_cli.errors import EXIT_TASK_FAILED, EXIT_TIMED_OUT, print_error
from tacoq_cli.task_views import printable

if TYPE_CHECKING:
    from tacoq.model.task import Task

__all__ = ["finish_wait", "seconds", "waited_exit_code"]

#: The most of a task's error message the ``error:`` line repeats (the task shows it whole).
_MESSAGE_LIMIT = 200


def seconds(value: float | None) -> float | None:
    """An option callback for a number of seconds to wait: finite and at least 0."""
    if value is not None and not (math.isfinite(value) and value >= 0):
        raise typer.BadParameter(f"{value} is not a number of seconds (0 or more, finite)")
    return value


def waited_exit_code(task: Task) -> int:
    """The exit code of a command that waited for ``task``: 0 when it completed, 3
    (``EXIT_TASK_FAILED``) when it completed with an error, 4 (``EXIT_TIMED_OUT``) when it had
    not completed when the wait ended."""
    if not task.is_completed:
        return EXIT_TIMED_OUT
    return EXIT_TASK_FAILED if task.is_error else 0


def finish_wait(task: Task, waited: float) -> int:
    """:func:`waited_exit_code` of ``task`` after a wait of ``waited`` seconds, with one
    ``error:`` line on stderr saying why when it is not 0 (the task itself is printed before)."""
    code = waited_exit_code(task)
    if code == EXIT_TASK_FAILED:
        error = task.error
        why = "no error recorded" if error is None else f"{error.type}: {error.message}"
        if len(why) > _MESSAGE_LIMIT:
            why = why[:_MESSAGE_LIMIT] + "..."
        print_error(f"task {task.id} failed: {printable(why)}")
    elif code == EXIT_TIMED_OUT:
        print_error(f"task {task.id} did not complete within {waited:g}s (still {task.status})")
    return code
