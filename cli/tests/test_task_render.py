"""``tacoq task`` shows any row: text from a task is printed as text, never as markup or terminal
control sequences (issue 16, finding 2: whatever a row holds, showing it must not fail)."""

from __future__ import annotations

import dataclasses
import uuid

import pytest

from tacoq.model.task import ErrorInfo, Payload, Task, TaskStatus
from tacoq_cli.commands.task import show_task


def hostile_row() -> Task:
    return Task(
        id=uuid.uuid4(),
        task_kind="[/]",
        worker_kind="[bold red]w",
        status=TaskStatus.COMPLETED,
        is_error=True,
        error=ErrorInfo(
            "Boom[/i]", "\x1b[2J\x1b[31mred \ud800", "Traceback [/] \x07\x1b]0;title\x07"
        ),
        input=Payload("text/plain", b"[link=http://x]click[/link] \x1b[5m"),
        output=Payload("application/json", b"[" * 300 + b"]" * 300),
        executed_by="\x1b[1mhost",
    )


def test_a_row_of_markup_and_escape_sequences_is_printed_as_text(
    capsys: pytest.CaptureFixture[str],
) -> None:
    show_task(hostile_row(), json_output=False)
    out = capsys.readouterr().out
    assert "\x1b" not in out
    assert "\x07" not in out
    for literal in ("[/]", "[bold red]w", "Boom[/i]", "[link=http://x]click[/link]"):
        assert literal in out, literal
    assert "\\ud800" in out


def test_a_row_is_printed_as_json(capsys: pytest.CaptureFixture[str]) -> None:
    row = dataclasses.replace(
        hostile_row(),
        error=ErrorInfo("Boom", "plain", None),
        output=Payload("application/json", b"[1]"),
    )
    show_task(row, json_output=True)
    assert '"task_kind":"[/]"' in capsys.readouterr().out
