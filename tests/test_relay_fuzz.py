"""The relay's HTTP API fuzzed from its own OpenAPI document (issue 16: keep the class closed).

A ``tacoq relay`` process on RabbitMQ and PostgreSQL is fuzzed by schemathesis, from the
``/openapi.json`` it serves, with every check schemathesis has (no 5xx, every status and header
declared, every body matching its schema, schema-valid requests accepted and schema-violating
ones refused, authentication enforced where declared, 405 with ``Allow`` for other methods):
once without a token and open to any worker kind (the default), once with a token and
``--worker-kinds`` (a public relay). Seed and example count are fixed; a route added later is
fuzzed too, as it appears in the document.

Bounded: at most :data:`EXAMPLES` test cases per operation and phase, one schemathesis worker,
long-polls capped at 0.2 s; about a minute per run on a 2-core machine. The namespace's queues
and schema are deleted afterwards.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tacoq.testing import fresh_namespace

SEED = 16
#: Test cases per operation and phase (schemathesis' --max-examples).
EXAMPLES = 200
#: The longest a run may take before the test fails (it takes about a minute).
RUN_TIMEOUT = 600
HOOKS = Path(__file__).parent / "fuzz"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Relay:
    """A ``tacoq relay`` process: its URL, and once it stopped, its exit code and stderr."""

    url: str
    returncode: int | None = None
    stderr: str = ""


@contextmanager
def relay_process(
    amqp_url: str, postgres_url: str, workdir: Path, namespace: str, env: dict[str, str]
) -> Iterator[Relay]:
    """``tacoq relay`` on a free port, yielded once it serves."""
    port = free_port()
    environment = {k: v for k, v in os.environ.items() if not k.startswith("TACOQ_")}
    environment.update(
        TACOQ_BROKER_URL=amqp_url, TACOQ_STORE_URL=postgres_url, TACOQ_NAMESPACE=namespace,
        TACOQ_RELAY_PORT=str(port), TACOQ_RELAY_MAX_WAIT="0.2", **env,
    )  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-m", "tacoq_cli", "relay", "--no-cleanup"],
        cwd=workdir, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    relay = Relay(f"http://127.0.0.1:{port}")
    url = relay.url
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/health/ready", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, proc.communicate()[1]
            assert time.monotonic() < deadline, "the relay did not get ready within 30 s"
            time.sleep(0.1)
        yield relay
    finally:
        proc.terminate()
        _, relay.stderr = proc.communicate(timeout=30)
        relay.returncode = proc.returncode


def schemathesis(url: str, report: Path, token: str | None) -> subprocess.CompletedProcess[str]:
    argv = [
        sys.executable, "-m", "schemathesis.cli", "run", f"{url}/openapi.json",
        "--checks", "all", "--exclude-checks", "not_a_server_error",
        "--max-examples", str(EXAMPLES), "--seed", str(SEED),
        "--workers", "1", "--request-timeout", "10",
        "--report", "json", "--report-json-path", str(report),
    ]  # fmt: skip
    if token:
        argv += ["--header", f"Authorization: Bearer {token}"]
    env = dict(
        os.environ,
        SCHEMATHESIS_HOOKS="relay_fuzz_hooks",
        FUZZ_CASES_PATH=str(report.with_name("cases.json")),
        NO_COLOR="1",
    )
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HOOKS), env.get("PYTHONPATH")]))
    return subprocess.run(
        argv, cwd=report.parent, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT,
        check=False,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("token", "worker_kinds"),
    [(None, None), ("fuzz-token", "fuzz-images,fuzz-mail")],
    ids=["open", "token-and-worker-kinds"],
)
def test_fuzzing_the_relays_openapi_document_finds_nothing(
    amqp_url: str,
    postgres_url: str,
    tmp_path: Path,
    forget_namespace: Callable[[str], None],
    token: str | None,
    worker_kinds: str | None,
) -> None:
    namespace = fresh_namespace("fuzz")
    env = {}
    if token:
        env["TACOQ_RELAY_TOKEN"] = token
    if worker_kinds:
        env["TACOQ_RELAY_WORKER_KINDS"] = worker_kinds
    report = tmp_path / "schemathesis.json"
    started = time.monotonic()
    try:
        with relay_process(amqp_url, postgres_url, tmp_path, namespace, env) as relay:
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            spec = httpx.get(f"{relay.url}/openapi.json", headers=headers).json()
            run = schemathesis(relay.url, report, token)
    finally:
        forget_namespace(namespace)
    seconds = time.monotonic() - started
    assert run.returncode == 0, run.stdout[-20000:] + run.stderr[-5000:]
    found: dict[str, Any] = json.loads(report.read_text())
    cases: dict[str, int] = json.loads(report.with_name("cases.json").read_text())
    operations = sum(len(item) for item in spec["paths"].values())
    summary = (
        f"fuzz[{'token' if token else 'open'}]: {found['operations']['tested']} operations "
        f"of {operations}, {found['test_cases']['generated']} test cases (seed {SEED}, at most "
        f"{EXAMPLES} per operation and phase; per operation: "
        + ", ".join(f"{label} {count}" for label, count in cases.items())
        + f"), {len(found['failures'])} failures, {len(found['errors'])} errors, {seconds:.0f} s"
    )
    print(summary)
    assert found["operations"]["tested"] == operations, summary
    assert found["failures"] == [], summary
    assert found["errors"] == [], summary
    assert relay.returncode == 0, relay.stderr
    assert "Traceback" not in relay.stderr, relay.stderr
