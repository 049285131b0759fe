"""``tacoq rabbit ...`` run as a real command against the real RabbitMQ, in a fresh namespace."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator

import pytest_asyncio

from tacoq.contracts.broker import worker_queue
from tacoq.testing import fresh_namespace
from tacoq.testing.broker_contract import make_assignment
from tacoq_rabbit.broker import RabbitBroker
from tacoq_rabbit.link import delete_namespace

TIMEOUT = 30.0
KIND = "clikind"


@pytest_asyncio.fixture
async def ns(amqp_url: str) -> AsyncIterator[str]:
    """A fresh namespace, deleted from RabbitMQ afterwards."""
    namespace = fresh_namespace("cli")
    yield namespace
    await delete_namespace(amqp_url, namespace, [KIND, "other"])


def tacoq(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``tacoq ARGS`` in a subprocess (no colours, wide terminal)."""
    return subprocess.run(
        [sys.executable, "-m", "tacoq_cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "NO_COLOR": "1", "COLUMNS": "200", **(env or {})},
        check=False,
    )


async def dead_letter_some(amqp_url: str, ns: str, count: int) -> list[str]:
    """Publish ``count`` assignments of KIND and dead-letter them; returns their task ids."""
    broker = RabbitBroker(amqp_url, namespace=ns)
    await broker.connect()
    ids = []
    try:
        for _ in range(count):
            envelope = make_assignment(KIND)
            ids.append(str(envelope.task_id))
            await broker.publish(envelope)
        consumer = await broker.consume(worker_queue(KIND), prefetch=count)
        for _ in range(count):
            delivery = await asyncio.wait_for(consumer.get(), TIMEOUT)
            await delivery.dead_letter("test: set aside")
        await consumer.close()
    finally:
        await broker.close()
    return ids


async def test_declare_status_and_the_dead_letter_queue(amqp_url: str, ns: str) -> None:
    """declare is idempotent; status shows depth, consumers and dead letters per queue (the
    worker queue found through its dead letters); dlq list, requeue and purge do their job."""
    url = ["--broker", amqp_url, "-n", ns]
    for _ in range(2):
        declared = tacoq("rabbit", "declare", *url, "--kind", "other")
        assert declared.returncode == 0, declared.stderr
        assert f"{ns}.worker.other" in declared.stdout
    ids = await dead_letter_some(amqp_url, ns, 3)

    status = tacoq("rabbit", "status", *url, "--json")
    assert status.returncode == 0, status.stderr
    queues = {q["name"]: q for q in json.loads(status.stdout)["queues"]}
    worker = queues[f"{ns}.worker.{KIND}"]  # discovered through the dead letters' origin
    assert (worker["depth"], worker["consumers"], worker["dead_lettered"]) == (0, 0, 3)
    assert queues[f"{ns}.dead-letter"]["depth"] == 3
    assert queues[f"{ns}.relay"]["depth"] == 3  # the relay's copies (no relay is running)
    assert f"{ns}.worker.other" not in queues  # not asked for, no dead letters
    table = tacoq("rabbit", "status", *url, "--kind", "other", "--kind", "ghost")
    assert table.returncode == 0, table.stderr
    assert f"{ns}.worker.other" in table.stdout
    assert "missing" in table.stdout  # the ghost kind has no queue

    listed = tacoq("rabbit", "dlq", "list", *url, "--json", "--limit", "2")
    assert "deprecated" in listed.stderr
    assert "tacoq dlq" in listed.stderr
    letters = json.loads(listed.stdout)
    assert len(letters) == 2
    assert letters[0]["reason"] == "test: set aside"
    assert letters[0]["origin"] == worker_queue(KIND)
    assert letters[0]["event"] == "assign"
    assert letters[0]["task_id"] in ids
    assert letters[0]["size"] > 0
    assert "test: set aside" in tacoq("rabbit", "dlq", "list", *url).stdout

    requeued = tacoq("rabbit", "dlq", "requeue", *url, "--limit", "2")
    assert requeued.returncode == 0, requeued.stderr
    assert "requeued 2 dead letters" in requeued.stdout
    queues = {
        q["name"]: q
        for q in json.loads(tacoq("rabbit", "status", *url, "--json", "--kind", KIND).stdout)[
            "queues"
        ]
    }
    assert queues[f"{ns}.worker.{KIND}"]["depth"] == 2
    assert queues[f"{ns}.worker.{KIND}"]["dead_lettered"] == 1
    assert queues[f"{ns}.relay"]["depth"] == 3  # requeued straight to the queue: no new copy

    refused = tacoq("rabbit", "dlq", "purge", *url)  # no terminal to confirm on
    assert refused.returncode != 0
    assert "--yes" in refused.stderr
    purged = tacoq("rabbit", "dlq", "purge", *url, "--yes")
    assert purged.returncode == 0, purged.stderr
    assert "purged 1 dead letters" in purged.stdout
    assert json.loads(tacoq("rabbit", "dlq", "list", *url, "--json").stdout) == []


def test_environment_fallbacks_and_one_line_errors(ns: str) -> None:
    """--broker falls back to TACOQ_BROKER_URL; an unreachable broker, a wrong password or a
    wrong scheme is one ``error:`` line, non-zero, without a traceback or the password."""
    unreachable = "amqp://guest:s3cret@127.0.0.1:1/"
    cases = [
        tacoq("rabbit", "status", "-n", ns, env={"TACOQ_BROKER_URL": unreachable}),
        tacoq("rabbit", "dlq", "list", "--broker", unreachable),
        tacoq("rabbit", "declare", "--broker", "amqp://guest:s3cret@127.0.0.1:5672/"),
        tacoq("rabbit", "status", "--broker", "http://guest:s3cret@127.0.0.1/"),
    ]
    for completed in cases:
        assert completed.returncode != 0
        lines = completed.stderr.strip().splitlines()
        lines = [line for line in lines if not line.startswith("warning: `tacoq rabbit dlq`")]
        assert len(lines) == 1, completed.stderr
        assert lines[0].startswith("error: ")
        assert "s3cret" not in completed.stderr + completed.stdout
        assert "Traceback" not in completed.stderr
    assert "cannot connect to RabbitMQ at amqp://guest:***@127.0.0.1:1/" in cases[0].stderr
    assert "refused the login" in cases[2].stderr
    assert "amqp://" in cases[3].stderr


def test_namespace_falls_back_to_the_environment(amqp_url: str, ns: str) -> None:
    """Without --namespace, TACOQ_NAMESPACE names the namespace."""
    declared = tacoq("rabbit", "declare", "--broker", amqp_url, env={"TACOQ_NAMESPACE": ns})
    assert declared.returncode == 0, declared.stderr
    assert f"{ns}.relay" in declared.stdout


def test_the_old_spelling_before_the_command_works_with_deprecation_lines(
    amqp_url: str, ns: str
) -> None:
    """``tacoq rabbit --url URL -n NS declare`` (the options before the command) still works
    for one release, one warning line each; an option after the command wins over them."""
    declared = tacoq("rabbit", "--url", amqp_url, "-n", ns, "declare")
    assert declared.returncode == 0, declared.stderr
    assert f"{ns}.relay" in declared.stdout
    warnings = declared.stderr.splitlines()
    assert len(warnings) == 2, declared.stderr
    assert "use `tacoq rabbit COMMAND --broker URL`" in warnings[0]
    assert "use `tacoq rabbit COMMAND -n NAME`" in warnings[1]
    wins = tacoq(
        "rabbit",
        "--url",
        "amqp://guest:guest@127.0.0.1:1/",
        "status",
        "--broker",
        amqp_url,
        "-n",
        ns,
        "--json",
    )
    assert wins.returncode == 0, wins.stderr
    assert json.loads(wins.stdout)["namespace"] == ns


def test_the_cli_group_hook_stays_import_light() -> None:
    """Calling ``tacoq_cli_group`` (what every ``tacoq`` start does) imports no AMQP client."""
    code = (
        "import sys, tacoq_rabbit.hooks as h; name, app = h.tacoq_cli_group(); "
        "print(name, sorted(m for m in ('aio_pika', 'aiormq', 'pika', 'pamqp') "
        "if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.strip() == "rabbit []"
