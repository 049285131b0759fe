"""``tacoq postgres migrate|stats`` and ``tacoq demo`` across the real Postgres (subprocesses)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

from tacoq.model.task import Phase
from tacoq.testing import fresh_namespace
from tacoq.testing.strategies import event
from tacoq_postgres.migrate import latest
from tacoq_postgres.settings import schema_for_namespace
from tacoq_postgres.testing import MakeStore, drop_schemas


def tacoq(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``tacoq ARGS`` in a subprocess."""
    return subprocess.run(
        [sys.executable, "-m", "tacoq_cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
        check=False,
    )


async def test_migrate_then_stats_json(make_store: MakeStore, pg_url: str) -> None:
    """``migrate`` via TACOQ_STORE_URL, then ``stats --json`` counts what a store wrote."""
    namespace = fresh_namespace("cli")
    env = {"TACOQ_STORE_URL": pg_url, "TACOQ_NAMESPACE": namespace}
    store = await make_store(namespace, connect=False)  # dropped after the test
    done = tacoq("postgres", "migrate", env=env)
    assert done.returncode == 0, done.stderr
    assert f"schema {store.schema} migrated to version {latest()}" in done.stdout
    assert f"already at version {latest()}" in tacoq("postgres", "migrate", env=env).stdout
    await store.connect()
    await store.apply_batch(
        [event(uuid.uuid4(), Phase.ASSIGNED) for _ in range(3)]
        + [event(uuid.uuid4(), Phase.COMPLETED, task_kind="mul") for _ in range(2)]
    )
    done = tacoq("postgres", "stats", "--json", "--store", pg_url, "-n", namespace)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["total"] == 5
    assert {(g["status"], g["task_kind"], g["count"]) for g in report["by_status_kind"]} == {
        ("PENDING", "add", 3),
        ("COMPLETED", "mul", 2),
    }
    assert report["oldest_pending"] == "2026-01-01T00:00:00.123456Z"


def test_mistakes_are_one_line_without_credentials() -> None:
    """A missing URL or an unreachable server: one ``error:`` line, no password, no traceback."""
    done = tacoq("postgres", "stats", env={"TACOQ_STORE_URL": ""})
    assert done.returncode == 2
    assert done.stderr.startswith("error: tacoq postgres needs a postgresql:// store URL")
    assert "--store" in done.stderr
    url = "postgresql://postgres:hunter2@127.0.0.1:1/test?connect_timeout=2"
    done = tacoq("postgres", "stats", "--store", url)
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1
    assert "hunter2" not in done.stderr
    assert "Traceback" not in done.stderr


def test_the_old_url_spelling_works_with_a_deprecation_line(pg_url: str) -> None:
    """``--url`` (before ``--store``) still works for one release, with one warning line; both
    at once is a usage error."""
    namespace = fresh_namespace("cliold")
    done = tacoq("postgres", "stats", "--json", "--url", pg_url, "-n", namespace)
    assert done.stderr.splitlines()[0] == (
        "warning: --url is deprecated and will be removed in the next release: use --store"
    )
    # the URL reached the store: the namespace's schema is missing (and nothing was created)
    assert "has no TacoQ tables" in done.stderr.splitlines()[1], done.stderr
    both = tacoq("postgres", "stats", "--url", pg_url, "--store", pg_url)
    assert both.returncode == 2
    assert "give --store, not both" in both.stderr


async def test_demo_runs_end_to_end_on_postgres(pg_url: str) -> None:
    """``tacoq demo --store postgresql://...`` exits 0; its schema is dropped afterwards, even
    when the demo fails before it reports its namespace."""
    namespace = fresh_namespace("pgdemo")
    try:
        done = tacoq("demo", "--store", pg_url, "-n", namespace, "--tasks", "200", "--json")
        summary = json.loads(done.stdout) if done.stdout.strip() else {}
        assert done.returncode == 0, done.stderr
        assert summary["ok"] is True
        assert summary["completed"] == 200
        assert summary["namespace"] == namespace
    finally:
        await drop_schemas(pg_url, [schema_for_namespace(namespace)])
