"""Secrets on the command line: passwords in URLs and the relay's token (issue 16, 11 and 12).

A password with a reserved character (``/``, ``?``, ``#``) that is not percent-encoded hides
the rest of the URL from URL parsers; ``tacoq relay`` and ``tacoq worker`` must say so in one
``error:`` line that never shows the password. The token is best passed in the environment or
a file (``--token-file``): an option is visible to every user in ``ps``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

APP = """
import tacoq

worker = tacoq.WorkerApp("secrets")


@worker.task
async def echo(value: int) -> int:
    return value
"""

BAD_URLS = [
    ("broker", "amqp://guest:pa/ss@127.0.0.1:5672/"),
    ("broker", "amqp://guest:pa?ss@127.0.0.1:5672/"),
    ("broker", "amqp://guest:pa#ss@127.0.0.1:5672/"),
    ("broker", "amqp://guest:12/ss@127.0.0.1:5672/"),
    ("store", "postgresql://postgres:pa/ss@127.0.0.1:5432/test"),
]


@pytest.mark.parametrize(("part", "url"), BAD_URLS)
def test_relay_names_a_url_whose_password_needs_encoding(
    run_tacoq: Any, expect_one_line_error: Any, workdir: Path, part: str, url: str
) -> None:
    urls = {"broker": "amqp://guest:guest@127.0.0.1:5672/", "store": f"sqlite:///{workdir}/r.db"}
    urls[part] = url
    result = run_tacoq("relay", "--broker", urls["broker"], "--store", urls["store"],
                       "--port", "0", timeout=30)  # fmt: skip
    line = expect_one_line_error(result, "percent-encode", "%2F")
    assert result.returncode == 2
    assert "ss@" not in line
    assert "pa" not in line.split("://", 1)[1].split("@")[0]


@pytest.mark.parametrize("url", [u for p, u in BAD_URLS if p == "broker"])
def test_worker_names_a_url_whose_password_needs_encoding(
    run_tacoq: Any, expect_one_line_error: Any, workdir: Path, url: str
) -> None:
    (workdir / "secrets_app.py").write_text(APP)
    result = run_tacoq("worker", "secrets_app:worker", "--broker", url, timeout=30)
    line = expect_one_line_error(result, "percent-encode")
    assert result.returncode == 2
    assert "ss@" not in line


@pytest.mark.parametrize(
    ("content", "needles"),
    [
        (None, ("--token-file", "no-such-file")),
        (b"", ("--token-file", "empty")),
        (b"  \n\t\n", ("--token-file", "empty")),
        (b"two\nlines\n", ("--token-file", "one line")),
        (b"a\rb", ("--token-file", "one line")),
        (b"\xff\xfe token", ("--token-file", "UTF-8")),
        (b"x" * 70000, ("--token-file", "one line")),
    ],
    ids=["missing", "empty", "blank", "two-lines", "carriage-return", "not-utf8", "huge"],
)
def test_a_bad_token_file_is_one_line(
    run_tacoq: Any, expect_one_line_error: Any, workdir: Path, content: bytes | None,
    needles: tuple[str, ...],
) -> None:  # fmt: skip
    path = workdir / ("token" if content is not None else "no-such-file")
    if content is not None:
        path.write_bytes(content)
    result = run_tacoq("relay", "--token-file", str(path), "--store", f"sqlite:///{workdir}/r.db",
                       "--broker", "amqp://guest:guest@127.0.0.1:5672/", timeout=30)  # fmt: skip
    expect_one_line_error(result, *needles)
    assert result.returncode == 2


def test_token_and_token_file_together_are_refused(
    run_tacoq: Any, expect_one_line_error: Any, workdir: Path
) -> None:
    (workdir / "token").write_text("abc\n")
    result = run_tacoq("relay", "--token", "abc", "--token-file", str(workdir / "token"),
                       "--store", f"sqlite:///{workdir}/r.db", timeout=30)  # fmt: skip
    line = expect_one_line_error(result, "--token", "--token-file", "not both")
    assert "abc" not in line


def test_relay_help_says_how_to_pass_secrets(run_tacoq: Any) -> None:
    result = run_tacoq("relay", "--help")
    assert result.returncode == 0
    text = " ".join(result.stdout.split())
    assert "--token-file" in text
    assert "TACOQ_RELAY_TOKEN_FILE" in text
    assert "visible in ps" in text


def test_a_token_on_the_command_line_is_warned_about_and_never_printed(run_tacoq: Any) -> None:
    result = run_tacoq("relay", "--token", "cmdline-secret-77", "--store", "memory://")
    assert result.returncode == 2  # memory:// is refused after the warning
    warning, error = result.stderr.strip().splitlines()
    assert warning.startswith("warning: --token on the command line is visible")
    assert "TACOQ_RELAY_TOKEN" in warning
    assert "--token-file" in warning
    assert error.startswith("error: ")
    assert "cmdline-secret-77" not in result.stderr + result.stdout


def test_a_token_from_the_environment_is_not_warned_about(run_tacoq: Any) -> None:
    result = run_tacoq("relay", "--store", "memory://", env={"TACOQ_RELAY_TOKEN": "env-secret"})
    assert result.returncode == 2
    assert "warning" not in result.stderr


def test_a_token_file_that_is_a_directory_is_one_line(
    run_tacoq: Any, expect_one_line_error: Any, workdir: Path
) -> None:
    result = run_tacoq(
        "relay", "--token-file", str(workdir), "--store", f"sqlite:///{workdir}/r.db"
    )
    expect_one_line_error(result, "--token-file")
    assert result.returncode == 2
