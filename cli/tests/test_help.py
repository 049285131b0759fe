"""Every ``tacoq`` help page, plugin groups included, reads the same way (docs/cli.md, "Help
pages"): each setting shows its environment variable, no line is wider than the terminal, and
each command has an Examples section.

The pages are rendered by click as ``tacoq COMMAND --help`` renders them, at several terminal
widths; one real ``tacoq --help`` process checks the same at the width a terminal reports.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
import typer

from tacoq_cli.main import PROG_NAME, build_app
from tacoq_cli.options import PER_CALL_OPTIONS

#: Terminal widths the pages are rendered at: a narrow one, the classic one, a wide one.
WIDTHS = (60, 80, 200)
#: Options every click command has, which are not settings.
BUILT_IN = {"--help", "--version", "--install-completion", "--show-completion"}


def commands() -> Iterator[tuple[str, Any]]:
    """``(command path, command)`` for the root, every group and every command under them
    (click's objects, as typer makes them; typer may bring its own copy of click)."""
    root = typer.main.get_command(build_app())

    def walk(path: str, command: Any) -> Iterator[tuple[str, Any]]:
        yield path, command
        if hasattr(command, "commands"):  # a group
            for name, sub in command.commands.items():
                if not sub.hidden:
                    yield from walk(f"{path} {name}", sub)

    yield from walk(PROG_NAME, root)


COMMANDS = dict(commands())


def help_page(path: str, width: int) -> str:
    """The help page of ``path`` as ``--help`` prints it on a terminal ``width`` wide."""
    root = typer.main.get_command(build_app())
    words = path.split()[1:]
    ctx = typer.Context(root, info_name=PROG_NAME, terminal_width=width)
    command: Any = root
    for word in words:
        sub = command.get_command(ctx, word)
        assert sub is not None, path
        ctx = typer.Context(sub, info_name=word, parent=ctx, terminal_width=width)
        command = sub
    return str(command.get_help(ctx))


def test_the_walk_finds_the_core_commands_and_the_plugin_groups() -> None:
    for path in ("tacoq worker", "tacoq relay", "tacoq task show", "tacoq rabbit status"):
        assert path in COMMANDS
    assert "tacoq postgres migrate" in COMMANDS


@pytest.mark.parametrize("path", sorted(COMMANDS))
def test_every_setting_shows_its_environment_variable(path: str) -> None:
    """An option either has an environment variable, shown on the page, or is a per-call
    value listed in ``PER_CALL_OPTIONS`` (and docs/cli.md)."""
    page = " ".join(help_page(path, 200).split())  # a name may follow a line break
    for param in COMMANDS[path].params:
        if param.param_type_name != "option" or param.hidden:
            continue
        name = max(param.opts, key=len)
        if name in BUILT_IN:
            continue
        if param.envvar:
            assert f"env var: {param.envvar}" in page, f"{path} {name}"
        else:
            assert name in PER_CALL_OPTIONS, (
                f"{path} {name} has no environment variable: give it one, or list it in "
                "tacoq_cli.options.PER_CALL_OPTIONS and docs/cli.md"
            )


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("path", sorted(COMMANDS))
def test_no_line_is_wider_than_the_terminal(path: str, width: int) -> None:
    page = help_page(path, width)
    wide = [line for line in page.splitlines() if len(line) > width]
    assert not wide, f"{path} at {width} columns:\n" + "\n".join(wide)


@pytest.mark.parametrize("path", sorted(COMMANDS))
def test_every_command_has_examples(path: str) -> None:
    page = help_page(path, 100)
    assert "\n  Examples:\n" in page, page
    example = page.split("\n  Examples:\n", 1)[1].lstrip("\n").splitlines()[0]
    assert example.strip().startswith(("tacoq ", "TACOQ_")), page


def test_flags_show_no_type_and_values_a_plain_name() -> None:
    page = help_page("tacoq relay", 200)
    assert "<bool>" not in page
    assert "<str>" not in page
    assert "<int" not in page
    assert "<float" not in page


def test_the_real_command_wraps_at_the_terminal_width() -> None:
    import os
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("TACOQ_")}
    for columns in ("60", "100"):
        result = subprocess.run(
            [sys.executable, "-m", "tacoq_cli", "--help"],
            capture_output=True,
            text=True,
            timeout=60,
            env={**env, "COLUMNS": columns},
            check=False,
        )
        assert result.returncode == 0, result.stderr
        assert max(len(line) for line in result.stdout.splitlines()) <= int(columns)
        for group in ("worker", "relay", "task", "dlq", "namespace", "rabbit", "postgres"):
            assert f"  {group} " in result.stdout, result.stdout
