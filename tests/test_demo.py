"""``tacoq demo`` as a user runs it: a subprocess, its exit code and what it prints."""

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

TIMEOUT = 120


def run_demo(*args: str) -> subprocess.CompletedProcess[str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"TACOQ_BROKER_URL", "TACOQ_STORE_URL", "TACOQ_NAMESPACE"}
    }
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


def test_demo_json_with_a_sqlite_store(tmp_path: Path) -> None:
    db = tmp_path / "demo.db"
    store_url = f"sqlite:///{db}"
    data = summary(run_demo("--tasks", "300", "--json", "--store", store_url))
    assert data["ok"] is True
    assert data["completed"] == 300
    assert data["failed_expected"] > 0
    assert data["store"] == store_url
    assert db.exists()


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
