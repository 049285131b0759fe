"""``tacoq relay``, ``tacoq task`` and ``tacoq publish`` as real processes.

``tacoq relay`` refuses ``memory://``, so the full-process relay test uses a throw-away plugin
serving the built-in memory broker under a ``loopback://`` scheme that does not call itself
in-process (as ``test_worker_signals`` does), with a real SQLite store. ``tacoq task``/``publish``
talk over HTTP to a relay and a worker that run in this test process, on a thread of their own
(the ``relay`` fixture of conftest.py). ``test_exit_codes`` runs them against ``tacoq relay`` and
``tacoq worker`` processes on RabbitMQ and PostgreSQL.
"""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tacoq.relay.service import RelayService
from tacoq.testing import fresh_namespace

LOOPBACK_PLUGIN = """
from tacoq.contracts.hookspecs import hookimpl


def loopback_broker(url, *, namespace):
    from tacoq.builtin.memory_broker import MemoryBroker

    class LoopbackBroker(MemoryBroker):
        scheme = "loopback"
        in_process = False  # the only pretence: let a separate `tacoq relay` accept it

    return LoopbackBroker("memory://" + url.partition("://")[2], namespace=namespace)


@hookimpl
def tacoq_broker_schemes():
    return {"loopback": loopback_broker}
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- tacoq relay ----------------------------------------------------------------------------------


def test_relay_refuses_the_in_process_broker(run_tacoq: Any, expect_one_line_error: Any) -> None:
    result = run_tacoq("relay", "--port", "0", "--broker", "memory://", "--store", "memory://")
    line = expect_one_line_error(result, "`tacoq relay`", "memory://", "tacoq demo")
    assert result.returncode == 2, line


def test_relay_refuses_an_in_process_store(
    run_tacoq: Any, expect_one_line_error: Any, make_plugin: Callable[..., Path]
) -> None:
    site = make_plugin("loopback", LOOPBACK_PLUGIN)
    result = run_tacoq(
        "relay", "--broker", "loopback://x", "--store", "memory://", pythonpath=[site]
    )
    assert result.returncode == 2
    expect_one_line_error(result, "`tacoq relay`", "'memory://'")


def test_relay_with_nothing_to_run_says_so(
    run_tacoq: Any, expect_one_line_error: Any, workdir: Path
) -> None:
    result = run_tacoq(
        "relay", "--no-consumer", "--no-http", "--no-cleanup",
        "--store", f"sqlite:///{workdir / 'x.db'}",
    )  # fmt: skip
    expect_one_line_error(result, "nothing to run")


def test_relay_switches_read_the_environment(
    run_tacoq: Any, expect_one_line_error: Any, workdir: Path
) -> None:
    env = {"TACOQ_RELAY_CONSUMER": "0", "TACOQ_RELAY_HTTP": "false", "TACOQ_RELAY_CLEANUP": "0",
           "TACOQ_STORE_URL": f"sqlite:///{workdir / 'x.db'}"}  # fmt: skip
    expect_one_line_error(run_tacoq("relay", env=env), "nothing to run")


def test_relay_help_names_its_environment_variables(run_tacoq: Any) -> None:
    result = run_tacoq("relay", "--help")
    assert result.returncode == 0
    for name in ("TACOQ_RELAY_PORT", "TACOQ_RELAY_CONSUMER", "TACOQ_RELAY_TOKEN"):
        assert name in result.stdout


def test_relay_reports_a_port_in_use(
    run_tacoq: Any, expect_one_line_error: Any, make_plugin: Callable[..., Path], workdir: Path
) -> None:
    site = make_plugin("loopback", LOOPBACK_PLUGIN)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run_tacoq(
            "relay", "--broker", "loopback://busy", "--store", f"sqlite:///{workdir / 'r.db'}",
            "--port", str(port), pythonpath=[site],
        )  # fmt: skip
    expect_one_line_error(result, f"127.0.0.1:{port}")


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_relay_process_serves_http_and_stops_on_signal(
    signum: signal.Signals,
    make_plugin: Callable[..., Path],
    workdir: Path,
    clean_env_for: Callable[..., dict[str, str]],
) -> None:
    site = make_plugin("loopback", LOOPBACK_PLUGIN)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = clean_env_for({"TACOQ_RELAY_TOKEN": "tok"}, pythonpath=[site])
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "tacoq_cli", "relay", "--broker", "loopback://relay",
            "--store", f"sqlite:///{workdir / 'relay.db'}", "--port", str(port),
            "--namespace", fresh_namespace("proc"), "--cleanup-interval", "1",
        ],
        cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                ready = httpx.get(f"{url}/health/ready", timeout=1)
                break
            except httpx.TransportError:
                assert proc.poll() is None, proc.communicate()
                assert time.monotonic() < deadline, "the relay did not answer in 30 s"
                time.sleep(0.1)
        assert ready.status_code == 200
        auth = {"Authorization": "Bearer tok"}
        health = httpx.get(f"{url}/health", headers=auth, timeout=10)
        assert (health.status_code, health.json()["status"]) == (200, "ok")
        body = {"task_kind": "area", "worker_kind": "cli-shapes", "input": {"w": 2, "h": 3}}
        task_id = httpx.post(f"{url}/tasks", json=body, headers=auth).json()["id"]
        shown = subprocess.run(
            [sys.executable, "-m", "tacoq_cli", "task", task_id, "--json", "--relay", url],
            env=env, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert shown.returncode == 0, shown.stderr
        assert json.loads(shown.stdout)["status"] == "PENDING"
        time.sleep(0.3)
        proc.send_signal(signum)
        _out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert "Traceback" not in err, err
    assert "relay ready" in err
    assert url in err
    assert "relay stopped" in err
    assert "tok" not in err.replace("token on", "")


# -- tacoq task / tacoq publish -------------------------------------------------------------------


def test_publish_then_task_show_the_completed_task(relay: RelayService, run_tacoq: Any) -> None:
    published = run_tacoq(
        "publish", "area", "--worker-kind", "cli-shapes", "--input", '{"w": 4, "h": 5}',
        "--priority", "7", "--relay", relay.url,
    )  # fmt: skip
    assert published.returncode == 0, published.stderr
    task_id = published.stdout.strip()
    uuid.UUID(task_id)
    shown = run_tacoq("task", task_id, "--wait", "10", "--json", "--relay", relay.url)
    assert shown.returncode == 0, shown.stderr
    body = json.loads(shown.stdout)
    assert (body["status"], body["priority"]) == ("COMPLETED", 7)
    assert body["output"] == {"content_type": "application/json", "encoding": "json", "data": 20}
    table = run_tacoq("task", task_id, env={"TACOQ_RELAY_URL": relay.url})
    assert table.returncode == 0, table.stderr
    for needle in ("COMPLETED", "cli-worker", "area", "20"):
        assert needle in table.stdout


def test_publish_takes_every_task_option(relay: RelayService, run_tacoq: Any) -> None:
    chosen = str(uuid.uuid4())
    result = run_tacoq(
        "publish", "area", "--worker-kind", "cli-shapes", "--input", '{"w": 2, "h": 3}',
        "--priority", "3", "--ttl", "600", "--id", chosen, "--countdown", "0.3", "--json",
        "--relay", relay.url,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"id": chosen}
    shown = run_tacoq("task", chosen, "--wait", "15", "--json", "--relay", relay.url)
    body = json.loads(shown.stdout)
    assert (body["status"], body["priority"], body["ttl"]) == ("COMPLETED", 3, 600)
    eta = run_tacoq(
        "publish", "area", "--worker-kind", "cli-shapes", "--input", '{"w": 1, "h": 1}',
        "--eta", "2020-01-01T00:00:00Z", "--wait", "15", "--json", "--relay", relay.url,
    )  # fmt: skip
    assert json.loads(eta.stdout)["status"] == "COMPLETED"  # a past eta runs at once


def test_publish_wait_shows_a_failed_task_and_exits_3(relay: RelayService, run_tacoq: Any) -> None:
    result = run_tacoq(
        "publish", "area", "--worker-kind", "cli-shapes", "--input", '{"w": -1, "h": 1}',
        "--wait", "10", "--relay", relay.url,
    )  # fmt: skip
    assert result.returncode == 3, result.stderr
    assert "failed" in result.stdout
    assert "ValueError: negative width" in result.stdout
    (line,) = result.stderr.splitlines()
    assert re.fullmatch(r"error: task [0-9a-f-]{36} failed: ValueError: negative width", line)


def test_publish_with_an_id_is_idempotent(relay: RelayService, run_tacoq: Any) -> None:
    chosen = str(uuid.uuid4())
    args = ("publish", "area", "--worker-kind", "cli-shapes", "--input", '{"w": 1, "h": 1}',
            "--id", chosen, "--json", "--relay", relay.url)  # fmt: skip
    first, second = run_tacoq(*args), run_tacoq(*args)
    assert json.loads(first.stdout) == json.loads(second.stdout) == {"id": chosen}
    assert relay.published == 1


@pytest.mark.parametrize(
    ("args", "needles", "code"),
    [
        (("task", "not-a-uuid"), ("not-a-uuid", "UUID"), 2),
        (("task", "00000000-0000-0000-0000-000000000001"), ("not known", "relay"), 1),
        (("publish", "area", "--worker-kind", "w", "--input", "{oops"), ("--input", "JSON"), 2),
        (
            ("publish", "area", "--worker-kind", "w", "--input", "1", "--priority", "256"),
            ("priority",),
            2,
        ),
        (("publish", "area", "--worker-kind", "w", "--ttl", "soon"), ("ttl", "soon"), 2),
        (("publish", "area", "--worker-kind", "w", "--countdown", "inf"), ("countdown",), 2),
        (("publish", "area", "--worker-kind", "w", "--eta", "tomorrow"), ("eta", "tomorrow"), 2),
        (
            ("publish", "area", "--worker-kind", "w", "--eta", "2026-12-03T10:00:00"),
            ("eta", "time zone"),
            2,
        ),
        (("publish", "area", "--worker-kind", "w", "--id", "x"), ("id", "UUID"), 2),
        (("publish", "area", "--worker-kind", "a\x01b"), ("worker_kind",), 2),
        (
            (
                "publish",
                "area",
                "--worker-kind",
                "w",
                "--countdown",
                "1",
                "--eta",
                "2020-01-01T00:00:00Z",
            ),
            ("countdown or eta",),
            2,
        ),
    ],
    ids=[
        "malformed-id",
        "unknown-id",
        "bad-json",
        "bad-priority",
        "bad-ttl",
        "infinite-countdown",
        "bad-eta",
        "naive-eta",
        "bad-task-id",
        "control-char-kind",
        "countdown-and-eta",
    ],
)
def test_mistakes_are_one_line_errors(
    relay: RelayService,
    run_tacoq: Any,
    expect_one_line_error: Any,
    args: tuple[str, ...],
    needles: tuple[str, ...],
    code: int,
) -> None:
    result = run_tacoq(*args, "--relay", relay.url)
    expect_one_line_error(result, *needles)
    assert result.returncode == code


def test_an_unreachable_relay_is_one_line_naming_it(
    run_tacoq: Any, expect_one_line_error: Any
) -> None:
    url = f"http://admin:pw123@127.0.0.1:{free_port()}"
    result = run_tacoq("task", str(uuid.uuid4()), "--relay", url)
    line = expect_one_line_error(result, "cannot reach the relay", "127.0.0.1")
    assert "pw123" not in line


def test_task_sends_the_token(
    run_tacoq: Any, expect_one_line_error: Any, start_relay: Callable[..., Any]
) -> None:
    with start_relay(token="cli-secret") as service:
        missing = str(uuid.uuid4())
        refused = run_tacoq("task", missing, "--relay", service.url)
        expect_one_line_error(refused, "401", "bearer token")
        allowed = run_tacoq(
            "task", missing, "--relay", service.url, env={"TACOQ_RELAY_TOKEN": "cli-secret"}
        )
        expect_one_line_error(allowed, "not known")


@pytest.mark.parametrize("value", ["", "images,,mail", " , ", "images,"])
def test_relay_refuses_an_empty_worker_kind(
    run_tacoq: Any, expect_one_line_error: Any, workdir: Path, value: str
) -> None:
    result = run_tacoq(
        "relay", "--worker-kinds", value, "--store", f"sqlite:///{workdir / 'k.db'}",
    )  # fmt: skip
    expect_one_line_error(result, "--worker-kinds", "empty kind")
    assert result.returncode == 2


def test_relay_refuses_a_worker_kind_too_long(
    run_tacoq: Any, expect_one_line_error: Any, workdir: Path
) -> None:
    env = {"TACOQ_RELAY_WORKER_KINDS": "images," + "k" * 256}
    result = run_tacoq("relay", "--store", f"sqlite:///{workdir / 'k.db'}", env=env)
    expect_one_line_error(result, "worker kinds", "1-255")
    assert result.returncode == 2


@pytest.mark.parametrize(
    ("option", "value", "needle"),
    [
        ("--header-timeout", "0", "--header-timeout"),
        ("--body-timeout", "-1", "--body-timeout"),
        ("--header-timeout", "inf", "header timeout"),
        ("--header-timeout", "nan", "--header-timeout"),
        ("--body-timeout", "abc", "--body-timeout"),
        ("--body-timeout", "", "--body-timeout"),
    ],
)
def test_relay_refuses_a_bad_deadline(
    run_tacoq: Any, expect_one_line_error: Any, workdir: Path, option: str, value: str, needle: str
) -> None:
    result = run_tacoq(
        "relay", option, value, "--broker", "amqp://guest:guest@127.0.0.1:5672/",
        "--store", f"sqlite:///{workdir / 'd.db'}",
    )  # fmt: skip
    expect_one_line_error(result, needle)
    assert result.returncode == 2


@pytest.mark.parametrize(
    ("name", "value"),
    [("TACOQ_RELAY_HEADER_TIMEOUT", "abc"), ("TACOQ_RELAY_BODY_TIMEOUT", "-5")],
)
def test_relay_refuses_a_bad_deadline_from_the_environment(
    run_tacoq: Any, expect_one_line_error: Any, workdir: Path, name: str, value: str
) -> None:
    result = run_tacoq("relay", "--store", f"sqlite:///{workdir / 'd.db'}", env={name: value})
    expect_one_line_error(result, name)
    assert result.returncode == 2
