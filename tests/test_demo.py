"""``tacoq demo`` as a user runs it: a subprocess, its exit code and what it prints, and what
it leaves in RabbitMQ (``rabbitmqctl``) and Postgres (``information_schema``) when it ends."""

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tacoq.contracts.broker import RELAY_QUEUE, worker_queue
from tacoq.plugins import get_plugin_host
from tacoq.testing import eventually, fresh_namespace
from tacoq.testing.processes import ChildProcess, clean_environ, tacoq_argv
from tacoq_cli.demo import DEMO_WORKER_KIND, DemoSummary
from tacoq_postgres.settings import schema_for_namespace
from tacoq_postgres.testing import schema_names
from tacoq_rabbit.testing import queue_names

TIMEOUT = 120

Forget = Callable[[str], None]


def run_demo(*args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"TACOQ_BROKER_URL", "TACOQ_STORE_URL", "TACOQ_NAMESPACE"}
    }
    env.update(extra)
    env["COLUMNS"] = "120"  # a wide table, whatever the terminal of the test run
    return subprocess.run(
        [sys.executable, "-m", "tacoq_cli", "demo", *args],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env=env,
        check=False,
    )


def summary(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert result.returncode == 0, f"demo failed:\n{result.stdout}\n{result.stderr}"
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert lines, f"demo printed nothing:\n{result.stderr}"
    data: dict[str, Any] = json.loads(lines[-1])
    return data


def test_demo_json_on_the_embedded_default() -> None:
    data = summary(run_demo("--tasks", "300", "--json"))
    assert data["ok"] is True
    assert data["tasks"] == 300
    assert data["completed"] == 300
    assert data["failed_expected"] > 0
    assert data["unexpected"] == 0
    assert data["broker"] == "memory://"
    assert data["store"] == "memory://"
    assert data["namespace"]
    assert data["missed"] == 0
    assert (data["removed"], data["kept"]) == ([], "in this process only")


def test_demo_json_with_a_sqlite_store(tmp_path: Path) -> None:
    db = tmp_path / "demo.db"
    store_url = f"sqlite:///{db}"
    data = summary(run_demo("--tasks", "300", "--json", "--store", store_url))
    assert data["ok"] is True
    assert data["completed"] == 300
    assert data["failed_expected"] > 0
    assert data["store"] == store_url
    assert db.exists()  # the file stays; the namespace's two tables were dropped
    assert data["removed"]
    assert data["kept"] is None
    with sqlite3.connect(db) as conn:
        tables = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    assert tables == []


def test_demo_table_output() -> None:
    result = run_demo("--tasks", "120")
    assert result.returncode == 0, f"demo failed:\n{result.stdout}\n{result.stderr}"
    assert "TacoQ demo" in result.stdout
    assert "unexpected" in result.stdout
    assert "completed" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


def test_demo_rejects_a_bad_task_count_in_one_line() -> None:
    result = run_demo("--tasks", "0")
    assert result.returncode != 0
    assert "Traceback" not in result.stdout + result.stderr


def schemas(url: str) -> set[str]:
    return asyncio.run(schema_names(url))


def test_demo_on_real_services_leaves_nothing_behind(
    amqp_url: str, postgres_url: str, forget_namespace: Forget
) -> None:
    """After a demo across RabbitMQ and Postgres no queue or schema of its namespace is left
    (RabbitMQ's own listing and information_schema say so), and it said what it removed."""
    before = queue_names()
    result = run_demo("--broker", amqp_url, "--store", postgres_url, "--tasks", "50", "--json")
    data = summary(result)
    namespace = data["namespace"]
    try:
        assert data["ok"] is True
        assert (data["completed"], data["missed"]) == (50, 0)
        assert data["kept"] is None
        assert f"queue {namespace}.relay" in data["removed"]
        assert f"schema {schema_for_namespace(namespace)}" in data["removed"]
        left = {q for q in queue_names() - before if q.startswith(f"{namespace}.")}
        assert left == set()
        assert schema_for_namespace(namespace) not in schemas(postgres_url)
    finally:
        forget_namespace(namespace)


def test_demo_keep_leaves_the_namespace_for_namespace_delete(
    amqp_url: str, postgres_url: str, forget_namespace: Forget
) -> None:
    """With --keep the queues and schema stay (and the summary says so); `tacoq namespace
    delete` then removes them."""
    namespace = fresh_namespace("demo-keep")
    try:
        data = summary(
            run_demo(
                "--broker", amqp_url, "--store", postgres_url, "--tasks", "50", "--json",
                "--keep", "--namespace", namespace,
            )
        )  # fmt: skip
        assert (data["ok"], data["removed"], data["kept"]) == (True, [], "--keep")
        kept = {q for q in queue_names() if q.startswith(f"{namespace}.")}
        assert {f"{namespace}.relay", f"{namespace}.worker.{DEMO_WORKER_KIND}"} <= kept
        assert schema_for_namespace(namespace) in schemas(postgres_url)
        deleted = subprocess.run(
            tacoq_argv("namespace", "delete", namespace, "--broker", amqp_url,
                       "--store", postgres_url, "--yes"),
            capture_output=True, text=True, env=clean_environ(), timeout=TIMEOUT, check=False,
        )  # fmt: skip
        assert deleted.returncode == 0, deleted.stdout + deleted.stderr
        assert {q for q in queue_names() if q.startswith(f"{namespace}.")} == set()
        assert schema_for_namespace(namespace) not in schemas(postgres_url)
    finally:
        forget_namespace(namespace)


def test_the_demo_never_takes_the_namespace_of_the_environment() -> None:
    """``TACOQ_NAMESPACE`` names a real system's namespace: the demo keeps out of it and uses
    one of its own, unless ``--namespace`` or ``TACOQ_DEMO_NAMESPACE`` names one."""
    result = run_demo("--tasks", "20", "--json", TACOQ_NAMESPACE="production")
    assert summary(result)["namespace"].startswith("demo-")
    chosen = run_demo("--tasks", "20", "--json", TACOQ_DEMO_NAMESPACE="demo-chosen")
    assert summary(chosen)["namespace"] == "demo-chosen"


def test_demo_refuses_a_namespace_another_relay_serves(
    amqp_url: str, postgres_url: str, forget_namespace: Forget, tmp_path: Path
) -> None:
    """A relay already consumes the namespace: the demo exits 1 with one line before it
    publishes anything (no worker queue, no task in the store), instead of waiting a minute
    and reporting ok."""
    namespace = fresh_namespace("demo-busy")
    env = clean_environ(
        TACOQ_BROKER_URL=amqp_url, TACOQ_STORE_URL=postgres_url, TACOQ_NAMESPACE=namespace
    )
    try:
        with ChildProcess(tacoq_argv("relay", "--no-http"), cwd=tmp_path, env=env) as relay:
            relay.wait_for("relay ready", timeout=TIMEOUT)
            result = run_demo(
                "--broker", amqp_url, "--store", postgres_url, "--tasks", "50",
                "--namespace", namespace,
            )  # fmt: skip
            assert result.returncode == 1, result.stdout + result.stderr
            lines = result.stderr.strip().splitlines()
            assert len(lines) == 1, result.stderr
            assert lines[0].startswith(f"error: namespace {namespace} is served by another relay")
            assert "ok" not in result.stdout
            assert f"{namespace}.worker.{DEMO_WORKER_KIND}" not in queue_names()
            store = get_plugin_host().create_store(postgres_url, namespace=namespace)
            assert asyncio.run(store.worker_kinds()) == []
            relay.signal(signal.SIGTERM)
            assert relay.wait(TIMEOUT) == 0, relay.output
    finally:
        forget_namespace(namespace)


def test_ctrl_c_removes_the_namespace(
    amqp_url: str, postgres_url: str, forget_namespace: Forget, tmp_path: Path
) -> None:
    """Ctrl-C in the middle of a run: exit 130, and the namespace is removed all the same."""
    namespace = fresh_namespace("demo-int")
    argv = tacoq_argv(
        "demo", "--broker", amqp_url, "--store", postgres_url, "--tasks", "100000", "--json",
        "--namespace", namespace,
    )  # fmt: skip
    broker = get_plugin_host().create_broker(amqp_url, namespace=namespace)

    async def publishing() -> None:
        async def worker_queue_exists() -> int | None:
            return await broker.consumer_count(worker_queue(DEMO_WORKER_KIND))

        await eventually(worker_queue_exists, until=lambda n: n is not None, timeout=TIMEOUT)

    try:
        with ChildProcess(argv, cwd=tmp_path, env=clean_environ()) as demo:
            asyncio.run(publishing())
            demo.signal(signal.SIGINT)
            assert demo.wait(TIMEOUT) == 130, demo.output
            assert f"demo: removed namespace {namespace}" in demo.output
        assert asyncio.run(broker.consumer_count(RELAY_QUEUE)) is None
        assert {q for q in queue_names() if q.startswith(f"{namespace}.")} == set()
        assert schema_for_namespace(namespace) not in schemas(postgres_url)
    finally:
        forget_namespace(namespace)


def test_a_run_that_missed_tasks_is_never_ok() -> None:
    """Every task ended as expected, but the demo's relay stored only some completions
    (another relay took the rest): not ok, and the summary says how many were missed."""
    run = DemoSummary(
        tasks=10, completed=10, failed_expected=0, unexpected=[], missed=3, elapsed_s=1.0,
        p50_ms=1.0, p99_ms=1.0, broker="amqp://", store="postgresql://", namespace="n",
    )  # fmt: skip
    assert run.ok is False
    assert run.as_json()["missed"] == 3
    assert run.as_json()["ok"] is False
