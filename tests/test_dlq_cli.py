"""``tacoq dlq list|show|requeue|purge`` against real ``tacoq relay`` and ``tacoq worker``
processes over RabbitMQ and Postgres: a task for a kind the worker does not know and a garbage
message on the relay's queue become dead letters in the store; the CLI lists, shows, requeues
and purges them."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pika
import pytest

from tacoq.relay.client import SyncRelayClient
from tacoq.testing import fresh_namespace
from tacoq_postgres.settings import schema_for_namespace
from tacoq_postgres.testing import drop_schemas
from tacoq_rabbit.link import delete_namespace
from tacoq_rabbit.topology import Topology

KIND = "dlq-cli"
APP_SOURCE = f"""
import tacoq

worker = tacoq.WorkerApp({KIND!r}, name="dlq-worker")


@worker.task
async def echo(value: int) -> int:
    return value
"""


def tacoq(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tacoq_cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


@pytest.fixture
def system(amqp_url: str, postgres_url: str, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """A relay and a worker process in a fresh namespace; both removed afterwards."""
    (tmp_path / "dlq_app.py").write_text(APP_SOURCE)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    ns = fresh_namespace("dlqcli")
    common = ["--broker", amqp_url, "--namespace", ns]
    commands = [
        ["relay", *common, "--store", postgres_url, "--port", str(port)],
        ["worker", "dlq_app:worker", *common],
    ]
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "tacoq_cli", *command],
            cwd=tmp_path,
            stderr=subprocess.PIPE,
            text=True,
        )
        for command in commands
    ]
    url = f"http://127.0.0.1:{port}"
    env = {**_environ(), "TACOQ_RELAY_URL": url}
    try:
        yield {"url": url, "ns": ns, "env": env, "amqp_url": amqp_url}
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        outputs = [proc.communicate(timeout=30)[1] for proc in procs]
        asyncio.run(delete_namespace(amqp_url, ns, [KIND]))
        asyncio.run(drop_schemas(postgres_url, [schema_for_namespace(ns)]))
    for proc, output in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, output
        assert "Traceback" not in output


def until(probe: Callable[[], Any], timeout: float = 30.0) -> Any:
    """``probe()``'s first truthy result within ``timeout`` seconds (else fail)."""
    deadline = time.monotonic() + timeout
    while not (found := probe()):
        assert time.monotonic() < deadline, "condition did not hold in time"
        time.sleep(0.2)
    return found


def _environ() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith("TACOQ_")}


def test_dead_letters_are_listed_shown_requeued_and_purged(system: dict[str, Any]) -> None:
    env = system["env"]
    with SyncRelayClient(system["url"], retries=40, backoff=0.25, max_backoff=0.5) as client:
        lost = client.publish("rotate", 7, worker_kind=KIND)  # no worker knows this kind
        assert client.wait(lost, timeout=60).error is not None
        queue = Topology(system["ns"]).relay_queue
        connection = pika.BlockingConnection(pika.URLParameters(system["amqp_url"]))
        try:
            connection.channel().basic_publish("", queue, b"\xff garbage", pika.BasicProperties())
        finally:
            connection.close()
        until(lambda: len(client.dead_letters().dead_letters) == 2)

    listed = tacoq("dlq", "list", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    letters = json.loads(listed.stdout)
    assert sorted(letter["origin"] for letter in letters) == sorted(["relay", f"worker:{KIND}"])
    (lost_letter,) = [letter for letter in letters if letter["task_id"] == str(lost)]
    assert "unknown task kind 'rotate'" in lost_letter["reason"]
    table = tacoq("dlq", "list", env=env)
    assert table.returncode == 0, table.stderr
    assert "2 dead letter(s)" in table.stdout

    shown = tacoq("dlq", "show", lost_letter["id"], "--json", env=env)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["body"]["data"] == 7

    refused = tacoq("dlq", "purge", "--all", env=env)
    assert refused.returncode == 2
    assert refused.stderr.strip() == "error: purging deletes dead letters for good: add --yes"
    ambiguous = tacoq("dlq", "requeue", env=env)
    assert ambiguous.returncode == 2
    assert "one of the three" in ambiguous.stderr
    bad_id = tacoq("dlq", "show", "not-an-id", env=env)
    assert bad_id.returncode == 2
    assert "not a dead letter id" in bad_id.stderr
    unknown = tacoq("dlq", "show", "00000000-0000-0000-0000-000000000001", env=env)
    assert unknown.returncode == 1  # well formed, unknown to the relay: docs/cli.md, exit codes
    assert "is not in the relay's store" in unknown.stderr

    # Requeued, the task for the unknown kind is dead-lettered again after its bounded
    # requeues: the same record, count 2; the garbage is untouched.
    requeued = tacoq("dlq", "requeue", "--reason", "unknown task kind", env=env)
    assert requeued.returncode == 0, requeued.stderr
    assert "requeued 1 of 1 (0 skipped)" in requeued.stdout
    with SyncRelayClient(system["url"]) as client:

        def counted_again() -> Any:
            letter = client.dead_letter(lost_letter["id"])
            return letter if letter is not None and letter.count == 2 else None

        again = until(counted_again, timeout=60)
        assert "unknown task kind 'rotate'" in again.reason
        assert len(client.dead_letters().dead_letters) == 2

    purged = tacoq("dlq", "purge", "--origin", "relay", "--yes", env=env)
    assert purged.returncode == 0, purged.stderr
    assert purged.stdout.strip() == "deleted 1 dead letter(s)"
    rest = tacoq("dlq", "purge", "--all", "--yes", env=env)
    assert rest.stdout.strip() == "deleted 1 dead letter(s)"
