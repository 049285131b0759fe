"""``tacoq task show|list|publish|wait``, the aliases ``tacoq task ID`` and ``tacoq publish``,
the relay-client options (``--relay``, the deprecated ``--relay-url``, ``--token``) and the exit
codes of a wait, as real ``tacoq`` processes talking to a relay and a worker (conftest.py's
``relay``, on a thread of this process).

Malformed values are refused before any request: those tests point ``--relay`` at a port
nothing listens on, so a request would end in "cannot reach the relay" and exit 1 instead.
"""

from __future__ import annotations

import json
import re
import socket
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from tacoq.relay.client import SyncRelayClient
from tacoq.relay.http import MAX_LIST_LIMIT
from tacoq.relay.service import RelayService
from tacoq_cli.commands.task import MAX_PAGE
from tacoq_cli.main import run

KIND = "cli-shapes"
#: A worker kind no worker serves: its tasks stay PENDING.
IDLE = "cli-nobody"


def unreachable() -> str:
    """The URL of a relay that is not there (a port just free)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


def publish(relay: RelayService, w: int, *, worker_kind: str = KIND) -> str:
    """Publish ``area`` with width ``w`` through the relay; returns the id."""
    with SyncRelayClient(relay.url) as client:
        return str(client.publish("area", {"w": w, "h": 2}, worker_kind=worker_kind))


def done(relay: RelayService, task_id: str) -> None:
    """Wait until the task completed."""
    with SyncRelayClient(relay.url) as client:
        assert client.wait(task_id, 15).is_completed


# -- the group and its aliases --------------------------------------------------------------------


def test_task_help_lists_the_subcommands_and_the_alias(run_tacoq: Any) -> None:
    result = run_tacoq("task", "--help")
    assert result.returncode == 0, result.stderr
    listed = [line.split()[0] for line in result.stdout.split("Commands:")[1].splitlines()[1:]]
    assert listed == ["show", "list", "publish", "wait"]
    assert "`tacoq task ID` is short for `tacoq task show ID`" in " ".join(result.stdout.split())
    alone = run_tacoq("task")
    assert (alone.returncode, alone.stdout) == (0, result.stdout)


def test_top_level_help_lists_publish_as_the_alias(run_tacoq: Any) -> None:
    result = run_tacoq("--help")
    (line,) = [line for line in result.stdout.splitlines() if line.strip().startswith("publish")]
    assert "(alias of `tacoq task publish`)" in line
    assert not line.endswith("...")


def test_show_and_its_alias_print_the_same_task(relay: RelayService, run_tacoq: Any) -> None:
    task_id = publish(relay, 3)
    done(relay, task_id)
    shown = [
        run_tacoq(*args, "--relay", relay.url)
        for args in (
            ("task", "show", task_id, "--json"),
            ("task", task_id, "--json"),
            ("task", "--json", task_id),
        )
    ]
    assert [r.returncode for r in shown] == [0, 0, 0], [r.stderr for r in shown]
    assert shown[0].stdout == shown[1].stdout == shown[2].stdout
    body = json.loads(shown[0].stdout)
    assert (body["id"], body["status"], body["output"]["data"]) == (task_id, "COMPLETED", 6)


def test_publish_and_task_publish_are_one_command(relay: RelayService, run_tacoq: Any) -> None:
    ids = [str(uuid.uuid4()) for _ in range(2)]
    for words, chosen in zip((("publish",), ("task", "publish")), ids, strict=True):
        result = run_tacoq(
            *words, "area", "--worker-kind", KIND, "--input", '{"w": 2, "h": 5}', "--id", chosen,
            "--wait", "15", "--json", "--relay", relay.url,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["output"]["data"] == 10
    alias, verb = (
        run_tacoq(*words, "--help").stdout for words in (["publish"], ["task", "publish"])
    )
    assert alias.replace("tacoq publish [OPTIONS]", "tacoq task publish [OPTIONS]") == verb


# -- waiting: exit codes 0, 3 and 4 ---------------------------------------------------------------


def test_wait_exits_0_for_a_task_that_completed(relay: RelayService, run_tacoq: Any) -> None:
    task_id = publish(relay, 4)
    result = run_tacoq("task", "wait", task_id, "--timeout", "15", "--relay", relay.url)
    assert (result.returncode, result.stderr) == (0, "")
    assert "COMPLETED" in result.stdout
    assert "(failed)" not in result.stdout


@pytest.mark.parametrize("words", [("task", "wait"), ("task", "show"), ("task",)])
def test_a_wait_for_a_failed_task_prints_it_and_exits_3(
    relay: RelayService, run_tacoq: Any, words: tuple[str, ...]
) -> None:
    task_id = publish(relay, -1)
    option = "--timeout" if words[-1] == "wait" else "--wait"
    result = run_tacoq(*words, task_id, option, "15", "--json", "--relay", relay.url)
    assert result.returncode == 3, result.stderr
    body = json.loads(result.stdout)
    assert (body["status"], body["is_error"]) == ("COMPLETED", True)
    assert result.stderr == f"error: task {task_id} failed: ValueError: negative width\n"


@pytest.mark.parametrize(
    "words",
    [("task", "wait", "{id}", "--timeout", "0.5"), ("task", "show", "{id}", "--wait", "0.5")],
    ids=["wait", "show"],
)
def test_a_wait_that_ends_first_prints_the_task_and_exits_4(
    relay: RelayService, run_tacoq: Any, words: tuple[str, ...]
) -> None:
    task_id = publish(relay, 1, worker_kind=IDLE)
    args = [word.format(id=task_id) for word in words]
    result = run_tacoq(*args, "--relay", relay.url)
    assert result.returncode == 4, result.stderr
    assert "PENDING" in result.stdout
    assert task_id in result.stdout
    assert result.stderr == f"error: task {task_id} did not complete within 0.5s (still PENDING)\n"


def test_publish_wait_that_ends_first_exits_4(relay: RelayService, run_tacoq: Any) -> None:
    result = run_tacoq(
        "task", "publish", "area", "--worker-kind", IDLE, "--input", '{"w": 1, "h": 1}',
        "--wait", "0", "--json", "--relay", relay.url,
    )  # fmt: skip
    assert result.returncode == 4, result.stderr
    task_id = json.loads(result.stdout)["id"]
    assert result.stderr == f"error: task {task_id} did not complete within 0s (still PENDING)\n"


def test_show_without_wait_exits_0_whatever_the_status(relay: RelayService, run_tacoq: Any) -> None:
    pending, failed = publish(relay, 1, worker_kind=IDLE), publish(relay, -1)
    done(relay, failed)
    for task_id in (pending, failed):
        result = run_tacoq("task", "show", task_id, "--relay", relay.url)
        assert (result.returncode, result.stderr) == (0, ""), task_id


# -- task list ------------------------------------------------------------------------------------


def test_list_pages_through_the_tasks_newest_first(relay: RelayService, run_tacoq: Any) -> None:
    ids = [publish(relay, w) for w in (1, 2, -3)]
    for task_id in ids:
        done(relay, task_id)
    first = run_tacoq("task", "list", "--limit", "2", "--json", "--relay", relay.url)
    assert first.returncode == 0, first.stderr
    page = json.loads(first.stdout)
    assert set(page) == {"tasks", "next_cursor"}
    assert [t["id"] for t in page["tasks"]] == ids[::-1][:2]
    second = run_tacoq(
        "task", "list", "--limit", "2", "--cursor", page["next_cursor"], "--json",
        "--relay", relay.url,
    )  # fmt: skip
    rest = json.loads(second.stdout)
    assert ([t["id"] for t in rest["tasks"]], rest["next_cursor"]) == ([ids[0]], None)


def test_list_filters_by_status_and_kinds(relay: RelayService, run_tacoq: Any) -> None:
    ran, idle = publish(relay, 5), publish(relay, 5, worker_kind=IDLE)
    done(relay, ran)

    def listed(*args: str) -> list[str]:
        result = run_tacoq("task", "list", *args, "--json", "--relay", relay.url)
        assert result.returncode == 0, result.stderr
        return [t["id"] for t in json.loads(result.stdout)["tasks"]]

    assert listed("--status", "completed") == [ran]
    assert listed("--status", "PENDING") == [idle]
    assert listed("--worker-kind", IDLE) == [idle]
    assert listed("--task-kind", "area", "--worker-kind", KIND) == [ran]
    assert listed("--task-kind", "other") == []


def test_list_table_keeps_ids_whole_and_marks_failures(relay: RelayService, run_tacoq: Any) -> None:
    ok, failed = publish(relay, 1), publish(relay, -1)
    for task_id in (ok, failed):
        done(relay, task_id)
    for columns in ("250", "80", "60"):
        result = run_tacoq("task", "list", "--relay", relay.url, env={"COLUMNS": columns})
        assert result.returncode == 0, result.stderr
        lines = result.stdout.splitlines()
        for task_id in (ok, failed):
            assert any(task_id in line for line in lines), (columns, result.stdout)
        assert result.stdout.count("(failed)") == 1, result.stdout
        assert "2 task(s), newest first; times in UTC" in result.stdout
        assert "next page" not in result.stdout
    more = run_tacoq("task", "list", "--limit", "1", "--relay", relay.url)
    cursor = re.search(r"next page: --cursor ([A-Za-z0-9_-]+)", more.stdout)
    assert cursor is not None, more.stdout
    after = run_tacoq("task", "list", "--cursor", cursor[1], "--json", "--relay", relay.url)
    assert [t["id"] for t in json.loads(after.stdout)["tasks"]] == [ok]


def test_the_page_limit_is_the_relays() -> None:
    assert MAX_PAGE == MAX_LIST_LIMIT


# -- the relay-client options ---------------------------------------------------------------------


def test_relay_url_still_works_with_a_deprecation_line(relay: RelayService, run_tacoq: Any) -> None:
    task_id = publish(relay, 2)
    done(relay, task_id)
    result = run_tacoq("task", "show", task_id, "--json", "--relay-url", relay.url)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["id"] == task_id
    assert result.stderr == (
        "warning: --relay-url is deprecated and will be removed in the next release: use --relay\n"
    )
    # The option on the command line wins over the variable, as every option does.
    env = {"TACOQ_RELAY_URL": unreachable()}
    listed = run_tacoq("dlq", "list", "--json", "--relay-url", relay.url, env=env)
    assert (listed.returncode, listed.stdout.strip()) == (0, "[]"), listed.stderr
    assert "--relay-url is deprecated" in listed.stderr


@pytest.mark.parametrize(
    "words",
    [("task", "show", str(uuid.UUID(int=1))), ("task", "list"), ("publish", "area",
     "--worker-kind", KIND), ("dlq", "list")],
    ids=["task-show", "task-list", "publish", "dlq-list"],
)  # fmt: skip
def test_relay_and_relay_url_together_are_a_usage_error(
    run_tacoq: Any, words: tuple[str, ...]
) -> None:
    url = unreachable()
    result = run_tacoq(*words, "--relay", url, "--relay-url", url)
    assert result.returncode == 2, result.stderr
    warning, error = result.stderr.splitlines()
    assert warning.startswith("warning: --relay-url is deprecated")
    assert error.startswith("error: --relay and --relay-url (its old spelling) were both given")


def test_the_relay_answering_4xx_is_exit_1(
    run_tacoq: Any, expect_one_line_error: Callable[..., str], start_relay: Callable[..., Any]
) -> None:
    with start_relay(worker_kinds=[KIND]) as service:
        result = run_tacoq(
            "task", "publish", "area", "--worker-kind", "elsewhere", "--relay", service.url
        )
    expect_one_line_error(result, "answered 422", "elsewhere")
    assert result.returncode == 1


# -- malformed values: one error line, exit 2, no request -----------------------------------------

MALFORMED = [
    (("task", "show", "not-a-uuid"), ("not a task id", "UUID")),
    (("task", "not-a-uuid"), ("neither a command", "nor a task id")),
    (("task", "lst"), ("'lst'", "show, list, publish, wait")),
    (("task", "x" * 5000), ("neither a command",)),
    (("task", "wait", "1234"), ("not a task id",)),
    (("task", "wait", str(uuid.UUID(int=1)), "--timeout", "abc"), ("--timeout",)),
    (("task", "wait", str(uuid.UUID(int=1)), "--timeout", "-1"), ("--timeout", "seconds")),
    (("task", "show", str(uuid.UUID(int=1)), "--wait", "inf"), ("--wait", "seconds")),
    (("task", "show", str(uuid.UUID(int=1)), "--wait", "nan"), ("--wait", "seconds")),
    (("task", "show", str(uuid.UUID(int=1)), "--wait", ""), ("--wait",)),
    (("task", "list", "--limit", "0"), ("--limit",)),
    (("task", "list", "--limit", "501"), ("--limit",)),
    (("task", "list", "--limit", "1" + "0" * 30), ("--limit",)),
    (("task", "list", "--limit", "ten"), ("--limit",)),
    (("task", "list", "--status", "DONE"), ("--status", "PENDING, RUNNING, COMPLETED")),
    (("task", "list", "--status", ""), ("--status",)),
    (("task", "list", "--task-kind", ""), ("--task-kind", "empty")),
    (("task", "list", "--worker-kind", "k" * 256), ("--worker-kind", "255")),
    (("task", "list", "--task-kind", "a\x01b"), ("--task-kind", "control characters")),
    (("task", "list", "--cursor", ""), ("--cursor", "not a cursor")),
    (("task", "list", "--cursor", "not a cursor!"), ("--cursor", "not a cursor")),
    (("task", "list", "--cursor", "A" * 129), ("--cursor", "not a cursor")),
    (("task", "list", "--cursor", "abcd"), ("--cursor", "invalid list cursor")),
    (("task", "publish", "area", "--worker-kind", KIND, "--input", "{oops"), ("--input", "JSON")),
    (("task", "publish", "area", "--worker-kind", KIND, "--wait", "-5"), ("--wait",)),
]


@pytest.mark.parametrize(
    ("args", "needles"), MALFORMED, ids=[str(i) for i in range(len(MALFORMED))]
)
def test_a_malformed_value_is_one_error_line_and_exit_2(
    run_tacoq: Any,
    expect_one_line_error: Callable[..., str],
    args: tuple[str, ...],
    needles: tuple[str, ...],
) -> None:
    result = run_tacoq(*args, "--relay", unreachable())
    line = expect_one_line_error(result, *needles)
    assert result.returncode == 2, line
    assert len(line) < 400, line


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["task", "list", "--task-kind", "a\x00b"], "--task-kind must not hold control"),
        (["task", "list", "--worker-kind", "\x00"], "--worker-kind must not hold control"),
        (["task", "list", "--cursor", "abc\x00"], "--cursor 'abc\\x00': not a cursor"),
        (["task", "list", "--status", "PENDING\x00"], "--status 'PENDING\\x00' is not a status"),
        (["task", "\x00"], "is neither a command"),
        (["task", "show", "\x00"], "is not a task id"),
        (["task", "wait", "\x00"], "is not a task id"),
    ],
)
def test_nul_is_refused_before_any_request(
    capsys: pytest.CaptureFixture[str], args: list[str], needle: str
) -> None:
    # A process's arguments cannot hold NUL, so this calls the CLI's entry point in-process.
    code = run([*args, "--relay", unreachable()])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.count("\n") == 1, err
    assert err.startswith("error: "), err
    assert needle in err, err
