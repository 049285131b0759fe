"""The leftover check (``tacoq.testing.leftovers``) against real RabbitMQ and Postgres: a pytest
session, run as a child process on a test file written here, fails and names what it leaked,
and is quiet when it leaked nothing. Whatever the child made is deleted afterwards.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tacoq.testing.leftovers import SCOPE_VAR

pytestmark = pytest.mark.skipif(
    shutil.which("rabbitmqctl") is None, reason="the leftover check lists queues by rabbitmqctl"
)

#: The child's test: makes what LEAKS names (JSON), deletes what CLEAN names, records both.
CHILD_TEST = """
import json, os, uuid

import pika, psycopg
from psycopg import sql

from tacoq.testing import fresh_namespace
from tacoq_postgres.settings import schema_for_namespace


def make(plan):
    ns = fresh_namespace("leak")
    other = f"notours-{uuid.uuid4().hex[:12]}"
    names = {
        "queue": f"{ns}.relay",
        "exchange": f"{ns}.tasks",
        "schema": schema_for_namespace(ns),
        "other_queue": f"{other}.relay",
        "expiring_queue": f"{ns}.reply.{uuid.uuid4().hex[:8]}",
    }
    connection = pika.BlockingConnection(pika.URLParameters(os.environ["TACOQ_TEST_AMQP_URL"]))
    channel = connection.channel()
    channel.queue_declare(names["queue"], durable=True)
    channel.exchange_declare(names["exchange"], "direct", durable=True)
    channel.queue_declare(names["other_queue"], durable=True)
    channel.queue_declare(names["expiring_queue"], arguments={"x-expires": 5000})
    with psycopg.connect(os.environ["TACOQ_TEST_POSTGRES_URL"], autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(names["schema"])))
        if plan == "clean":
            conn.execute(sql.SQL("DROP SCHEMA {}").format(sql.Identifier(names["schema"])))
    if plan == "clean":
        for queue in ("queue", "other_queue", "expiring_queue"):
            channel.queue_delete(names[queue])
        channel.exchange_delete(names["exchange"])
    connection.close()
    with open(os.environ["LEAK_RECORD"], "w") as record:
        json.dump(names, record)


def test_makes_names():
    make(os.environ["LEAK_PLAN"])
"""


Run = Callable[..., tuple[subprocess.CompletedProcess[str], dict[str, str]]]


@pytest.fixture
def run_child(
    tmp_path: Path, amqp_url: str, postgres_url: str, forget_namespace: Callable[[str], None]
) -> Iterator[Run]:
    """``run_child(plan, scope)``: a pytest session on :data:`CHILD_TEST` with the leftover
    check loaded; returns how it ended and the names its test made, all deleted afterwards."""
    (tmp_path / "test_child.py").write_text(textwrap.dedent(CHILD_TEST))
    made: list[dict[str, str]] = []

    def run(
        plan: str, scope: str = "session"
    ) -> tuple[subprocess.CompletedProcess[str], dict[str, str]]:
        record = tmp_path / f"record-{uuid.uuid4().hex}.json"
        env = {
            **os.environ,
            "TACOQ_TEST_AMQP_URL": amqp_url,
            "TACOQ_TEST_POSTGRES_URL": postgres_url,
            SCOPE_VAR: scope,
            "LEAK_PLAN": plan,
            "LEAK_RECORD": str(record),
        }
        argv = [sys.executable, "-m", "pytest", "-p", "tacoq.testing.leftovers"]
        argv += ["-p", "no:cacheprovider", "test_child.py"]
        done = subprocess.run(
            argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180, check=False
        )
        names = json.loads(record.read_text()) if record.exists() else {}
        if names:
            made.append(names)
        return done, names

    yield run
    from tacoq_rabbit.link import delete_namespace

    for names in made:
        forget_namespace(names["queue"].removesuffix(".relay"))
        other = names["other_queue"].removesuffix(".relay")
        asyncio.run(delete_namespace(amqp_url, other))


def test_a_session_that_leaks_fails_and_names_what_it_left(run_child: Run) -> None:
    done, names = run_child("leak")
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    assert "1 passed, 1 error" in output, output
    assert "left 3 name(s) behind of its own namespaces" in output, output
    assert f"RabbitMQ queues (1):\n    {names['queue']}\n" in output
    assert f"RabbitMQ exchanges (1):\n    {names['exchange']}\n" in output
    assert f"Postgres schemas (1):\n    {names['schema']}\n" in output
    # another run's names (no mark of this session) and a queue that expires are not counted
    assert names["other_queue"] not in output
    assert names["expiring_queue"] not in output


def test_scope_all_counts_every_name_that_appeared(run_child: Run) -> None:
    done, names = run_child("leak", "all")
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    assert "that appeared while it ran (TACOQ_TEST_LEFTOVERS=all" in output, output
    for name in ("queue", "exchange", "schema", "other_queue"):
        assert names[name] in output, output
    assert names["expiring_queue"] not in output


def test_a_session_that_deletes_what_it_made_is_quiet(run_child: Run) -> None:
    done, names = run_child("clean")
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert names, output  # the child's test did make (and delete) its names
    assert "left" not in output, output
    assert "not checked" not in output, output


def test_scope_off_does_not_check(run_child: Run) -> None:
    done, names = run_child("leak", "off")
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert names, output
    assert "left" not in output, output
