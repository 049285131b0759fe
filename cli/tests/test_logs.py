"""Logs of the ``tacoq`` command: ``--log-level``, ``--log-format``, the task fields, the access
log, passwords, and the client libraries kept quiet.

The end-to-end tests run real ``tacoq worker`` (RabbitMQ) and ``tacoq relay`` (RabbitMQ and
Postgres) processes, with :class:`~tacoq.testing.processes.ChildProcess` (stdout and stderr
merged: both commands write nothing to stdout, so every line is a log line), and remove their
queues and schemas. The formatter tests below them use the formatters directly, and a small
script in a fresh interpreter for what :func:`configure_logging` does to the process's loggers.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import signal
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest

from tacoq.publishing.publisher import Publisher
from tacoq.relay.access_log import request_target
from tacoq.testing import fresh_namespace
from tacoq.testing.processes import ChildProcess, clean_environ, tacoq_argv
from tacoq_cli.logs import JsonFormatter, TextFormatter, json_line, utc_timestamp

KIND = "logs"
APP_SOURCE = """
import tacoq

worker = tacoq.WorkerApp("logs")


@worker.task(retries=1, retry_backoff=0.01, retry_backoff_max=0.01)
async def flaky(n: int) -> int:
    raise ValueError(f"refusing {n} on purpose")
"""
TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
TOKEN = "relay-token-" + uuid.uuid4().hex


def json_records(lines: list[str]) -> list[dict[str, Any]]:
    """Every line parsed as one JSON object with the four fields every record has."""
    records = []
    for line in lines:
        assert line.endswith("\n"), line
        record = json.loads(line)
        assert isinstance(record, dict), line
        assert TS.match(record["ts"]), line
        assert record["level"] in {"debug", "info", "warning", "error", "critical"}, line
        assert isinstance(record["logger"], str), line
        assert record["logger"], line
        assert isinstance(record["message"], str), line
        records.append(record)
    return records


def free_port() -> int:
    """A port nothing listens on (bound, then closed)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def with_password(url: str, password: str) -> tuple[str, str]:
    """``url`` and its password: the one it has, else ``password`` put in (a server with
    trust authentication, as the test Postgres, ignores it)."""
    parts = urlsplit(url)
    if parts.password:
        return url, parts.password
    netloc = f"{parts.username or ''}:{password}@{parts.hostname}"
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc)), password


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "app.py").write_text(APP_SOURCE, encoding="utf-8")
    return tmp_path


@pytest.fixture
def rabbit_namespace(amqp_url: str) -> Iterator[str]:
    """A fresh namespace; its queues and exchanges are deleted afterwards."""
    from tacoq_rabbit.link import delete_namespace

    namespace = fresh_namespace("logs")
    yield namespace
    asyncio.run(delete_namespace(amqp_url, namespace, [KIND]))


@pytest.fixture
def relay_namespace(amqp_url: str, postgres_url: str) -> Iterator[str]:
    """A fresh namespace; its queues, exchanges and Postgres schema are deleted afterwards."""
    from tacoq_postgres.settings import schema_for_namespace
    from tacoq_postgres.testing import drop_schemas
    from tacoq_rabbit.link import delete_namespace

    namespace = fresh_namespace("logs")
    yield namespace
    asyncio.run(delete_namespace(amqp_url, namespace))
    asyncio.run(drop_schemas(postgres_url, [schema_for_namespace(namespace)]))


async def publish_flaky(amqp_url: str, namespace: str) -> str:
    async with Publisher(amqp_url, namespace=namespace) as pub:
        task = await pub.publish("flaky", 7, worker_kind=KIND)
    return str(task.id)


# -- a real worker --------------------------------------------------------------------------------


def test_a_worker_writes_json_lines_and_its_task_records_carry_the_task(
    amqp_url: str, rabbit_namespace: str, project: Path
) -> None:
    argv = tacoq_argv("worker", "app:worker", "--name", "log-worker", "--log-format", "json")
    env = clean_environ(TACOQ_BROKER_URL=amqp_url, TACOQ_NAMESPACE=rabbit_namespace)
    with ChildProcess(argv, cwd=project, env=env) as worker:
        worker.wait_for("serving")
        task_id = asyncio.run(publish_flaky(amqp_url, rabbit_namespace))
        worker.wait_for("failed for good")
        worker.signal(signal.SIGTERM)
        assert worker.wait(30) == 0, worker.output
    records = json_records(worker.lines)
    assert any("serving logs" in r["message"] for r in records), worker.output
    about_task = [r for r in records if task_id in r["message"]]
    assert [(r["level"], r["attempt"]) for r in about_task] == [("info", 1), ("warning", 2)]
    for record in about_task:
        assert record["logger"] == "tacoq.worker"
        assert record["task_id"] == task_id
        assert record["task_kind"] == "flaky"
        assert record["worker"] == "log-worker"
    password = urlsplit(amqp_url).password
    if password:
        assert f":{password}@" not in worker.output
        assert ":***@" in worker.output  # the serving line names the broker, redacted


def test_the_worker_logs_at_the_level_from_the_environment(
    amqp_url: str, rabbit_namespace: str, project: Path
) -> None:
    argv = tacoq_argv("worker", "app:worker")
    env = clean_environ(
        TACOQ_BROKER_URL=amqp_url, TACOQ_NAMESPACE=rabbit_namespace, TACOQ_LOG_LEVEL="warning"
    )
    with ChildProcess(argv, cwd=project, env=env) as worker:
        asyncio.run(publish_flaky(amqp_url, rabbit_namespace))
        line = worker.wait_for("failed for good")
        worker.signal(signal.SIGTERM)
        assert worker.wait(30) == 0, worker.output
    # Only the final failure: no start-up line, no retry line, no stop line (all info).
    assert worker.lines == [line], worker.output
    assert " warning tacoq.worker: task " in line
    assert line.rstrip().endswith(" attempt=2]"), line
    assert "[task=" in line, line
    assert " kind=flaky " in line, line


# -- a real relay ---------------------------------------------------------------------------------


def start_relay(
    amqp_url: str, store_url: str, namespace: str, cwd: Path, *options: str
) -> tuple[ChildProcess, str]:
    port = free_port()
    env = clean_environ(
        TACOQ_BROKER_URL=amqp_url,
        TACOQ_STORE_URL=store_url,
        TACOQ_NAMESPACE=namespace,
        TACOQ_RELAY_TOKEN=TOKEN,
    )
    relay = ChildProcess(
        tacoq_argv("relay", "--port", str(port), *options), cwd=cwd, env=env, name="tacoq relay"
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"{url}/health/live", timeout=2).status_code == 200:
                return relay, url
        except httpx.TransportError:
            pass
        if not relay.alive() or time.monotonic() > deadline:
            relay.kill()
            raise AssertionError(f"the relay did not answer:\n{relay.output}")
        time.sleep(0.1)


def stop(relay: ChildProcess) -> None:
    relay.signal(signal.SIGTERM)
    assert relay.wait(30) == 0, relay.output


def test_a_relay_at_debug_writes_json_lines_with_one_access_record_per_request(
    amqp_url: str, postgres_url: str, relay_namespace: str, tmp_path: Path
) -> None:
    store_url, password = with_password(postgres_url, "pw-" + uuid.uuid4().hex)
    relay, url = start_relay(
        amqp_url, store_url, relay_namespace, tmp_path, "--log-format", "json", "-l", "debug"
    )
    with relay:
        answer = httpx.get(f"{url}/health/live?wait=1&token={TOKEN}", timeout=5)
        assert answer.status_code == 200
        unknown = uuid.uuid4()
        answer = httpx.get(
            f"{url}/tasks/{unknown}", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5
        )
        assert answer.status_code == 404
        relay.wait_for(f"/tasks/{unknown}")
        stop(relay)
    records = json_records(relay.lines)
    assert any(r["message"].startswith("relay ready: ") for r in records), relay.output
    access = [r for r in records if r["logger"] == "tacoq.relay.access"]
    # the polls of start_relay, then ours (a record is written once its response is sent)
    assert ("GET", "/health/live", 200) in [(r["method"], r["path"], r["status"]) for r in access]
    ours = sorted(
        (r["method"], r["path"], r["status"]) for r in access if r["path"] != "/health/live"
    )
    assert ours == [
        ("GET", "/health/live?wait=1&token=***", 200),
        ("GET", f"/tasks/{unknown}", 404),
    ], relay.output
    for record in access:
        assert record["level"] == "debug"
        assert record["client"] == "127.0.0.1"
        assert isinstance(record["duration_ms"], float)
        assert record["duration_ms"] >= 0
    assert TOKEN not in relay.output
    assert password not in relay.output
    amqp_password = urlsplit(amqp_url).password
    if amqp_password:
        assert f":{amqp_password}@" not in relay.output


def test_a_relay_at_info_logs_no_request_and_at_warning_nothing(
    amqp_url: str, postgres_url: str, relay_namespace: str, tmp_path: Path
) -> None:
    relay, url = start_relay(amqp_url, postgres_url, relay_namespace, tmp_path)
    with relay:
        assert httpx.get(f"{url}/health/live", timeout=5).status_code == 200
        stop(relay)
    assert [line.split(" ")[2:4] for line in relay.lines] == [
        ["info", "tacoq.relay:"],
        ["info", "tacoq.relay:"],
    ], relay.output
    assert "relay ready" in relay.lines[0]
    assert "relay stopped" in relay.lines[1]

    relay, url = start_relay(
        amqp_url, postgres_url, relay_namespace, tmp_path, "--log-level", "warning"
    )
    with relay:
        assert httpx.get(f"{url}/health/live", timeout=5).status_code == 200
        stop(relay)
    assert relay.lines == []


# -- an unreachable broker: TacoQ's one line, the client library's only at debug ---------------


@pytest.mark.parametrize("command", ["worker", "relay"])
def test_an_unreachable_broker_is_one_error_line(
    command: str, postgres_url: str, relay_namespace: str, project: Path
) -> None:
    broker = f"amqp://guest:hidden-pw@127.0.0.1:{free_port()}/?connect_timeout=2"
    args = ["worker", "app:worker"] if command == "worker" else ["relay", "--port", "0"]
    result = subprocess.run(
        tacoq_argv(*args),
        cwd=project,
        env=clean_environ(
            TACOQ_BROKER_URL=broker, TACOQ_STORE_URL=postgres_url, TACOQ_NAMESPACE=relay_namespace
        ),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: cannot connect to RabbitMQ at amqp://guest:***@127.0.0.1:")
    assert "hidden-pw" not in result.stdout + result.stderr


# -- bad values -----------------------------------------------------------------------------------


BAD_VALUES = [
    (["--log-level", "loud"], {}, "--log-level"),
    (["-l", ""], {}, "--log-level"),
    (["-l", "10"], {}, "--log-level"),
    (["-l", "x" * 100_000], {}, "--log-level"),
    (["--log-format", "JSONL"], {}, "--log-format"),
    ([], {"TACOQ_LOG_FORMAT": "xml"}, "TACOQ_LOG_FORMAT"),
    ([], {"TACOQ_LOG_LEVEL": "verbose"}, "TACOQ_LOG_LEVEL"),
    ([], {"TACOQ_LOG_LEVEL": "info\x01"}, "TACOQ_LOG_LEVEL"),
]


@pytest.mark.parametrize(("options", "env", "named"), BAD_VALUES)
def test_a_bad_log_option_is_a_usage_error(
    options: list[str],
    env: dict[str, str],
    named: str,
    run_tacoq: Any,
    expect_one_line_error: Callable[..., str],
) -> None:
    result = run_tacoq("worker", "app:worker", *options, env=env)
    allowed = (
        "'debug', 'info', 'warning', 'error'" if "LEVEL" in named.upper() else "'text', 'json'"
    )
    line = expect_one_line_error(result, named, allowed)
    assert result.returncode == 2, line


@pytest.mark.parametrize("command", ["relay", "demo"])
@pytest.mark.parametrize(("options", "env", "named"), [BAD_VALUES[0], BAD_VALUES[5]])
def test_relay_and_demo_refuse_bad_log_options_too(
    command: str,
    options: list[str],
    env: dict[str, str],
    named: str,
    run_tacoq: Any,
    expect_one_line_error: Callable[..., str],
) -> None:
    result = run_tacoq(command, *options, env=env)
    line = expect_one_line_error(result, named)
    assert result.returncode == 2, line


def test_an_empty_variable_is_no_setting(run_tacoq: Any) -> None:
    # As for every option: an empty variable is not set (the default applies).
    result = run_tacoq(
        "demo", "--tasks", "3", "--json", env={"TACOQ_LOG_LEVEL": "", "TACOQ_LOG_FORMAT": ""}
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


def test_json_format_makes_the_commands_own_error_line_json(run_tacoq: Any) -> None:
    result = run_tacoq("worker", "no_such_module:worker", "--log-format", "json")
    assert result.returncode == 2, result.stderr
    (entry,) = json_records(result.stderr.splitlines(keepends=True))
    assert (entry["level"], entry["logger"]) == ("error", "tacoq.cli")
    assert "no_such_module" in entry["message"]


# -- configure_logging in a fresh interpreter ---------------------------------------------------

QUIET_SCRIPT = textwrap.dedent(
    """
    import logging, sys
    from tacoq_cli.logs import configure_logging

    configure_logging(sys.argv[1], sys.argv[2], verbose=True)
    logging.getLogger("aiormq.connection").error("error when creating transport: %s", "refused")
    logging.getLogger("pika.adapters").warning("pika says amqp://u:pw1@h/")
    logging.getLogger("uvicorn.error").warning("Invalid HTTP request received.")
    logging.getLogger("psycopg.pool").warning("error connecting in 'pool-1': refused")
    logging.getLogger("uvicorn.error").error("Exception in ASGI application")
    logging.getLogger("tacoq.rabbit").warning("lost the connection to amqp://u:pw2@h/")
    logging.getLogger("tacoq_postgres").info("postgres info")
    logging.getLogger("tacoq.worker").debug("worker debug")
    """
)


def configure_and_log(level: str, fmt: str = "text") -> list[str]:
    result = subprocess.run(
        [sys.executable, "-c", QUIET_SCRIPT, level, fmt],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env=clean_environ(),
    )
    assert result.stdout == ""
    return result.stderr.splitlines()


def test_client_libraries_are_quiet_unless_debug() -> None:
    lines = configure_and_log("info")
    assert [line.split(" ", 2)[2] for line in lines] == [
        "error uvicorn.error: Exception in ASGI application",
        "warning tacoq.rabbit: lost the connection to amqp://u:***@h/",
        "info tacoq_postgres: postgres info",
    ]


def test_at_debug_client_libraries_show_as_debug_records() -> None:
    records = json_records([line + "\n" for line in configure_and_log("debug", "json")])
    assert [(r["level"], r["logger"]) for r in records] == [
        ("debug", "aiormq.connection"),
        ("debug", "pika.adapters"),
        ("debug", "uvicorn.error"),
        ("debug", "psycopg.pool"),
        ("error", "uvicorn.error"),
        ("warning", "tacoq.rabbit"),
        ("info", "tacoq_postgres"),
        ("debug", "tacoq.worker"),
    ]
    assert records[1]["message"] == "pika says amqp://u:***@h/"


def test_an_application_that_configured_tacoq_logging_is_left_alone() -> None:
    script = textwrap.dedent(
        """
        import logging, sys
        from tacoq_cli.logs import configure_logging

        mine = logging.StreamHandler(sys.stdout)
        mine.setFormatter(logging.Formatter("mine %(levelname)s %(message)s"))
        logging.getLogger("tacoq").addHandler(mine)
        logging.getLogger("tacoq").setLevel(logging.DEBUG)
        configure_logging("error", "json", verbose=True)
        logging.getLogger("tacoq.worker").info("kept")
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert (result.stdout, result.stderr) == ("mine INFO kept\n", "")


# -- the formatters -------------------------------------------------------------------------------


def record(message: str, *args: object, level: int = logging.WARNING, **extra: Any) -> Any:
    made = logging.LogRecord("tacoq.worker", level, __file__, 1, message, args, None)
    made.__dict__.update(extra)
    return made


TASK = {"task_id": "0b7f", "task_kind": "resize", "attempt": 2, "worker": "w@h:1"}


def test_json_has_the_fields_and_the_task_fields_when_present() -> None:
    line = JsonFormatter().format(record("task %s failed", "0b7f", **TASK))
    assert "\n" not in line
    entry = json.loads(line)
    assert list(entry) == ["ts", "level", "logger", "message", *TASK]
    assert entry["level"] == "warning"
    assert entry["message"] == "task 0b7f failed"
    assert {k: entry[k] for k in TASK} == TASK
    plain = json.loads(JsonFormatter().format(record("no task")))
    assert list(plain) == ["ts", "level", "logger", "message"]


def test_json_redacts_every_field_and_keeps_the_traceback_on_the_line() -> None:
    made = record(
        "connecting to %s\nfailed",
        "postgresql://u:pw-in-arg@db/x",
        worker="amqp://w:pw-in-field@h/",
    )
    try:
        raise ValueError("cannot reach amqp://user:pw-in-exc@host/")
    except ValueError:
        made.exc_info = sys.exc_info()
    line = JsonFormatter().format(made)
    assert "\n" not in line
    assert "pw-in" not in line
    entry = json.loads(line)
    assert entry["message"] == "connecting to postgresql://u:***@db/x\nfailed"
    assert entry["worker"] == "amqp://w:***@h/"
    assert entry["exc"].startswith("Traceback (most recent call last):")
    assert entry["exc"].endswith("ValueError: cannot reach amqp://user:***@host/")


@pytest.mark.parametrize(
    "text", ["nul \x00 here", "café ☕ 東京", "line\u2028sep\u2029para\x85nel", "lone \udcff", "\r"]
)
def test_json_keeps_odd_text_on_one_parseable_line(text: str) -> None:
    line = JsonFormatter().format(record("%s", text))
    assert len(line.splitlines()) == 1
    assert json.loads(line)["message"] == text
    line.encode("utf-8")  # no lone surrogate left raw


def test_the_timestamp_is_utc_with_milliseconds() -> None:
    assert utc_timestamp(0.0) == "1970-01-01T00:00:00.000Z"
    assert utc_timestamp(1_700_000_000.9999) == "2023-11-14T22:13:20.999Z"
    assert TS.match(utc_timestamp(time.time()))


def test_text_appends_the_task_fields_and_redacts() -> None:
    made = record("task failed at %s", "amqp://u:secret@h/", **TASK)
    assert TextFormatter(verbose=False).format(made) == (
        "warning: task failed at amqp://u:***@h/ [task=0b7f kind=resize attempt=2]"
    )
    verbose = TextFormatter(verbose=True).format(record("started"))
    assert verbose.endswith(" warning tacoq.worker: started")


def test_the_commands_own_lines_as_json() -> None:
    entry = json.loads(json_line("error", "cannot reach amqp://u:***@h/"))
    assert (entry["level"], entry["logger"]) == ("error", "tacoq.cli")
    assert entry["message"] == "cannot reach amqp://u:***@h/"


def test_the_access_log_target_hides_secret_query_values() -> None:
    scope = {
        "raw_path": b"/tasks/a%0Ab",
        "query_string": b"wait=5&access_token=abc&API_KEY=k&password&x=%0A",
    }
    assert (
        request_target(scope) == "/tasks/a%0Ab?wait=5&access_token=***&API_KEY=***&password&x=%0A"
    )
    assert request_target({"path": "/a\nb", "query_string": b""}) == "/a\\x0ab"
    long = request_target({"raw_path": b"/" + b"x" * 5000, "query_string": b""})
    assert len(long) == 2003
    assert long.endswith("...")
