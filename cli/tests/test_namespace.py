"""``tacoq namespace delete`` as an operator runs it: a real process against RabbitMQ and
Postgres, checked with RabbitMQ's own listing (``rabbitmqctl``) and ``information_schema``."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tacoq.model.task import Phase
from tacoq.plugins import get_plugin_host
from tacoq.testing import fresh_namespace
from tacoq.testing.broker_contract import make_assignment, make_update
from tacoq.testing.processes import ChildProcess, clean_environ, tacoq_argv
from tacoq.testing.store_contract import event
from tacoq_cli.main import run
from tacoq_postgres.settings import schema_for_namespace
from tacoq_postgres.testing import drop_schemas, schema_names
from tacoq_rabbit.link import delete_namespace
from tacoq_rabbit.testing import queue_names

KIND = "images"
EXTRA = "extra"
TIMEOUT = 60

Made = Callable[[str], str]


def tacoq(*args: str, stdin: int | None = subprocess.DEVNULL) -> subprocess.CompletedProcess[str]:
    """``tacoq ARGS`` as a process without a terminal, settings only from its arguments."""
    return subprocess.run(
        tacoq_argv(*args),
        capture_output=True,
        text=True,
        stdin=stdin,
        env=clean_environ(COLUMNS="200"),
        timeout=TIMEOUT,
        check=False,
    )


def queues_of(namespace: str) -> set[str]:
    """The namespace's queues, as RabbitMQ lists them."""
    return {name for name in queue_names() if name.startswith(f"{namespace}.")}


def one_error(result: subprocess.CompletedProcess[str], code: int, *needles: str) -> None:
    """The run exited with ``code`` after one ``error:`` line holding every needle."""
    output = result.stdout + result.stderr
    assert result.returncode == code, output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, output
    assert lines[0].startswith("error: "), output
    for needle in needles:
        assert needle in lines[0], output


async def populate(amqp_url: str, postgres_url: str, namespace: str) -> None:
    """A namespace as use leaves it: a worker queue holding a task, a delay queue holding an
    update, exchanges; a schema whose tasks name the worker kind."""
    host = get_plugin_host()
    broker = host.create_broker(amqp_url, namespace=namespace)
    await broker.connect()
    try:
        await broker.declare_worker_queue(KIND)
        await broker.declare_worker_queue(EXTRA)
        await broker.publish(make_assignment(KIND))
        await broker.publish(make_update(KIND), delay=60)
    finally:
        await broker.close()
    store = host.create_store(postgres_url, namespace=namespace)
    await store.connect()
    try:
        await store.apply_batch([event(uuid.uuid4(), Phase.COMPLETED, worker_kind=KIND)])
    finally:
        await store.close()


@pytest.fixture
def made(amqp_url: str, postgres_url: str) -> Iterator[Made]:
    """``made(prefix)``: a fresh namespace, its queues, exchanges and schema removed at the end
    whatever the test left."""
    namespaces: list[str] = []

    def make(prefix: str) -> str:
        namespaces.append(fresh_namespace(prefix))
        return namespaces[-1]

    yield make
    for namespace in namespaces:
        asyncio.run(delete_namespace(amqp_url, namespace, [KIND, EXTRA]))
    asyncio.run(drop_schemas(postgres_url, [schema_for_namespace(ns) for ns in namespaces]))


def test_delete_removes_exactly_that_namespace(
    amqp_url: str, postgres_url: str, made: Made
) -> None:
    """The namespace's queues (the worker kind found in the store, and --kind's), exchanges
    and schema go; another namespace keeps all of its own; every deletion is printed."""
    mine, theirs = made("ns-mine"), made("ns-theirs")
    for namespace in (mine, theirs):
        asyncio.run(populate(amqp_url, postgres_url, namespace))
    before = queue_names()
    assert {f"{mine}.relay", f"{mine}.worker.{KIND}", f"{mine}.worker.{EXTRA}"} <= before
    result = tacoq(
        "namespace", "delete", mine, "--broker", amqp_url, "--store", postgres_url,
        "--kind", EXTRA, "--yes",
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    after = queue_names()
    assert {q for q in after if q.startswith(f"{mine}.")} == set(), after
    assert {q for q in before if q.startswith(f"{mine}.")} <= before - after
    assert {q for q in before if q.startswith(f"{theirs}.")} <= after
    schemas = asyncio.run(schema_names(postgres_url))
    assert schema_for_namespace(mine) not in schemas
    assert schema_for_namespace(theirs) in schemas
    lines = result.stdout.splitlines()
    for queue in (f"{mine}.relay", f"{mine}.worker.{KIND}", f"{mine}.worker.{EXTRA}"):
        assert f"deleted queue {queue}" in lines, result.stdout
    assert f"deleted exchange {mine}.tasks" in lines, result.stdout
    assert f"deleted schema {schema_for_namespace(mine)}" in lines, result.stdout
    assert result.stderr == ""


def test_without_yes_or_a_terminal_it_refuses(amqp_url: str, postgres_url: str, made: Made) -> None:
    """No --yes and no terminal to ask on: exit 2, nothing deleted."""
    namespace = made("ns-ask")
    asyncio.run(populate(amqp_url, postgres_url, namespace))
    result = tacoq("namespace", "delete", namespace, "--broker", amqp_url, "--store", postgres_url)
    one_error(result, 2, namespace, "pass --yes")
    assert f"{namespace}.worker.{KIND}" in queue_names()
    assert schema_for_namespace(namespace) in asyncio.run(schema_names(postgres_url))


def on_a_terminal(*args: str, answer: str) -> subprocess.CompletedProcess[str]:
    """``tacoq ARGS`` with a terminal (a pseudo-terminal) on stdin, answering ``answer``."""
    controller, terminal = os.openpty()
    try:
        os.write(controller, f"{answer}\n".encode())
        return tacoq(*args, stdin=terminal)
    finally:
        os.close(terminal)
        os.close(controller)


@pytest.mark.skipif(sys.platform == "win32", reason="a POSIX pseudo-terminal")
def test_on_a_terminal_it_asks_first(amqp_url: str, postgres_url: str, made: Made) -> None:
    """On a terminal it names what it will delete and asks; "n" deletes nothing (exit 1),
    "y" deletes."""
    namespace = made("ns-tty")
    asyncio.run(populate(amqp_url, postgres_url, namespace))
    args = ("namespace", "delete", namespace, "--broker", amqp_url, "--store", postgres_url)
    declined = on_a_terminal(*args, answer="n")
    assert declined.returncode == 1, declined.stdout + declined.stderr
    assert f"Delete namespace {namespace}" in declined.stdout
    assert f"worker kinds: {KIND}" in declined.stdout
    assert "guest:guest" not in declined.stdout  # the password is not shown
    assert "nothing deleted" in declined.stdout
    assert f"{namespace}.worker.{KIND}" in queue_names()
    accepted = on_a_terminal(*args, answer="y")
    assert accepted.returncode == 0, accepted.stdout + accepted.stderr
    # The store never named EXTRA and no --kind did: AMQP cannot list it, so it stays.
    assert queues_of(namespace) == {f"{namespace}.worker.{EXTRA}"}
    assert schema_for_namespace(namespace) not in asyncio.run(schema_names(postgres_url))


def test_refuses_while_a_relay_consumes(
    amqp_url: str, postgres_url: str, made: Made, tmp_path: Path
) -> None:
    """A relay consuming the namespace: exit 1 naming it and --force, nothing deleted; once
    the relay stopped, the namespace is deleted."""
    namespace = made("ns-busy")
    env = clean_environ(
        TACOQ_BROKER_URL=amqp_url, TACOQ_STORE_URL=postgres_url, TACOQ_NAMESPACE=namespace
    )
    argv = tacoq_argv("relay", "--no-http")
    with ChildProcess(argv, cwd=tmp_path, env=env, name="relay") as relay:
        relay.wait_for("relay ready", timeout=TIMEOUT)
        busy = tacoq(
            "namespace", "delete", namespace, "--broker", amqp_url, "--store", postgres_url,
            "--yes",
        )  # fmt: skip
        one_error(busy, 1, f"namespace {namespace} is in use", "a relay is running", "--force")
        assert f"{namespace}.relay" in queue_names()
        relay.signal(signal.SIGTERM)
        assert relay.wait(TIMEOUT) == 0, relay.output
    done = tacoq(
        "namespace", "delete", namespace, "--broker", amqp_url, "--store", postgres_url, "--yes"
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"deleted queue {namespace}.relay" in done.stdout
    assert queues_of(namespace) == set()
    assert schema_for_namespace(namespace) not in asyncio.run(schema_names(postgres_url))


def test_force_deletes_while_a_consumer_is_attached(amqp_url: str, made: Made) -> None:
    """--force deletes the relay's queue even with a consumer on it."""
    namespace = made("ns-force")

    async def hold_and_delete() -> subprocess.CompletedProcess[str]:
        broker = get_plugin_host().create_broker(amqp_url, namespace=namespace)
        await broker.connect()
        try:
            await broker.consume("relay", prefetch=1)
            return await asyncio.to_thread(
                tacoq, "namespace", "delete", namespace, "--broker", amqp_url, "--yes", "--force"
            )
        finally:
            await broker.close()

    result = asyncio.run(hold_and_delete())
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"deleted queue {namespace}.relay" in result.stdout.splitlines()


def test_a_namespace_that_does_not_exist(amqp_url: str, postgres_url: str, made: Made) -> None:
    """Nothing to delete is not an error, and asking creates nothing."""
    namespace = made("ns-ghost")
    result = tacoq(
        "namespace", "delete", namespace, "--broker", amqp_url, "--store", postgres_url, "--yes"
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "nothing to delete" in result.stdout
    assert queues_of(namespace) == set()
    assert schema_for_namespace(namespace) not in asyncio.run(schema_names(postgres_url))


def test_only_the_given_backend_is_cleaned(amqp_url: str, postgres_url: str, made: Made) -> None:
    """--store alone drops the schema and leaves the queues; --broker alone then deletes
    the queues named by --kind (the store that named the kind is gone)."""
    namespace = made("ns-half")
    asyncio.run(populate(amqp_url, postgres_url, namespace))
    stored = tacoq("namespace", "delete", namespace, "--store", postgres_url, "--yes")
    assert stored.returncode == 0, stored.stdout + stored.stderr
    assert schema_for_namespace(namespace) not in asyncio.run(schema_names(postgres_url))
    assert f"{namespace}.worker.{KIND}" in queue_names()
    brokered = tacoq(
        "namespace", "delete", namespace, "--broker", amqp_url, "--kind", KIND, "--kind", EXTRA,
        "--yes",
    )  # fmt: skip
    assert brokered.returncode == 0, brokered.stdout + brokered.stderr
    assert queues_of(namespace) == set()


@pytest.mark.parametrize(
    ("name", "needle"),
    [("", "empty"), ("n" * 200, "invalid namespace"), ("../x", "invalid namespace")],
)
def test_bad_names_are_usage_errors(amqp_url: str, name: str, needle: str) -> None:
    """An empty, over-long or path-like name: exit 2 with one line (never the default)."""
    one_error(tacoq("namespace", "delete", name, "--broker", amqp_url, "--yes"), 2, needle)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--kind", ""], "--kind must not be empty"),
        (["--kind", "k" * 300], "--kind is 300 characters long"),
        (["--kind", "a\tb"], "--kind must not hold control characters"),
        (["--broker", "memory://"], "lives inside one process"),
        (["--store", "memory://"], "lives inside one process"),
        (["--broker", "nope://x"], "nope"),
        ([], "--broker URL (or TACOQ_BROKER_URL), --store URL (or TACOQ_STORE_URL)"),
    ],
)
def test_bad_options_are_usage_errors(args: list[str], needle: str) -> None:
    """Bad kinds, in-process or unknown URLs, or no backend at all: exit 2, one line."""
    one_error(tacoq("namespace", "delete", "some-ns", *args, "--yes"), 2, needle)


@pytest.mark.parametrize(
    "args",
    [
        ["namespace", "delete", "a\x00b", "--broker", "amqp://127.0.0.1/", "--yes"],
        ["namespace", "delete", "ok", "--broker", "amqp://127.0.0.1/", "--kind", "a\x00b"],
    ],
)
def test_nul_is_a_usage_error(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    """A NUL cannot travel in a process's arguments; in process it is refused like any bad
    value (exit 2, one ``error:`` line)."""
    assert run(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("error: ")
