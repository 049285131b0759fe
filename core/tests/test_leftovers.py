"""The leftover check's pure parts: which names count, what is new, how it is reported.

The check against real services (a session that leaks fails, one that does not is quiet) is
``tests/test_leftovers_check.py``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tacoq.testing import fresh_namespace
from tacoq.testing.eventually import NAMESPACE_MARK
from tacoq.testing.leftovers import (
    EXCHANGES,
    QUEUES,
    SCHEMAS,
    SCOPE_VAR,
    SHOWN,
    Snapshot,
    _vhost,
    is_ours,
    leftovers,
    report,
)


def schema_of(namespace: str) -> str:
    """What tacoq_postgres.settings.schema_for_namespace makes of a namespace with a ``-``."""
    return f"tacoq_{namespace.replace('-', '_')}_0123abcd"


def test_fresh_namespaces_carry_the_mark_of_this_process() -> None:
    made = {fresh_namespace("mark") for _ in range(200)}
    assert len(made) == 200
    for namespace in made:
        prefix, _, rest = namespace.partition("-")
        assert prefix == "mark"
        assert rest.startswith(NAMESPACE_MARK)
        assert len(rest) == 16
        int(rest, 16)


def test_the_names_of_this_sessions_namespaces_are_ours() -> None:
    namespace = fresh_namespace("e2e-relay")
    for name in (f"{namespace}.relay", f"{namespace}.tasks", schema_of(namespace)):
        assert is_ours(name), name


def test_the_default_namespace_is_ours_no_test_should_use_it() -> None:
    assert is_ours("tacoq.relay")
    assert is_ours("tacoq.worker.x")
    assert is_ours("tacoq_tacoq")


def test_other_names_are_not_ours() -> None:
    other_mark = format((int(NAMESPACE_MARK, 16) + 1) % 0x1000000, "06x")
    others = [
        f"e2e-{other_mark}{uuid.uuid4().hex[:10]}.relay",  # another run's namespace
        f"bench-tacoq-{uuid.uuid4().hex[:10]}.relay",
        "bench_tacoq_75a439591f",
        "tacoqx.relay",
        "tacoq_tacoq_other",
        "amq.direct",
        "public",
        f"x-{NAMESPACE_MARK}.relay",  # the mark without the random part
    ]
    for name in others:
        assert not is_ours(name), name


def test_leftovers_are_the_new_names_that_count_in_places_listed_twice() -> None:
    before = Snapshot({QUEUES: frozenset({"a.relay"}), SCHEMAS: frozenset({"public"})})
    after = Snapshot(
        {
            QUEUES: frozenset({"a.relay", "b.relay", "c.relay"}),
            EXCHANGES: frozenset({"b.tasks"}),  # not listed before: not compared
            SCHEMAS: frozenset({"public"}),
        }
    )
    assert leftovers(before, after) == {QUEUES: ["b.relay", "c.relay"]}
    assert leftovers(before, after, lambda name: name.startswith("c")) == {QUEUES: ["c.relay"]}
    assert leftovers(after, after) == {}


def test_a_report_names_every_place_and_at_most_shown_names() -> None:
    queues = [f"q{i:02}.relay" for i in range(SHOWN + 5)]
    schemas = [f"tacoq_s{i:02}" for i in range(3)]
    text = report({QUEUES: queues, SCHEMAS: schemas}, "all")
    lines = text.splitlines()
    each = SHOWN // 2
    assert f"left {SHOWN + 8} name(s) behind that appeared while it ran" in lines[0]
    assert "TACOQ_TEST_LEFTOVERS=all" in lines[0]
    assert lines[1] == f"  RabbitMQ queues ({SHOWN + 5}):"
    assert lines[2 : 2 + each] == [f"    {name}" for name in queues[:each]]
    assert lines[2 + each] == f"    ... and {SHOWN + 5 - each} more"
    assert lines[3 + each : 7 + each] == ["  Postgres schemas (3):"] + [
        f"    {name}" for name in schemas
    ]
    assert "DROP SCHEMA" in lines[-1]
    assert len(lines) == 8 + each


def test_one_place_may_show_every_shown_name() -> None:
    queues = [f"q{i:02}.relay" for i in range(SHOWN + 1)]
    lines = report({QUEUES: queues}).splitlines()
    assert lines[2 : 2 + SHOWN] == [f"    {name}" for name in queues[:SHOWN]]
    assert lines[2 + SHOWN] == "    ... and 1 more"


def test_a_short_report_shows_every_name() -> None:
    text = report({EXCHANGES: ["x.tasks"], SCHEMAS: ["tacoq_x"]})
    assert "of its own namespaces (TACOQ_TEST_LEFTOVERS=session" in text
    assert "  RabbitMQ exchanges (1):\n    x.tasks\n" in text
    assert "  Postgres schemas (1):\n    tacoq_x\n" in text
    assert "more" not in text


@pytest.mark.parametrize(
    ("url", "vhost"),
    [
        ("amqp://guest:guest@127.0.0.1:5672/", "/"),
        ("amqp://guest:guest@127.0.0.1:5672", "/"),
        ("amqp://127.0.0.1/%2F", "/"),
        ("amqp://127.0.0.1/tests", "tests"),
        ("amqp://127.0.0.1/a%2Fb?heartbeat=5", "a/b"),
    ],
)
def test_the_virtual_host_comes_from_the_url(url: str, vhost: str) -> None:
    assert _vhost(url) == vhost


@pytest.mark.parametrize("value", ["sessions", "x" * 10_000])
def test_a_scope_that_is_not_one_is_a_usage_error(tmp_path: Path, value: str) -> None:
    (tmp_path / "test_nothing.py").write_text("def test_nothing():\n    pass\n")
    argv = [sys.executable, "-m", "pytest", "-p", "tacoq.testing.leftovers", "test_nothing.py"]
    env = {**os.environ, SCOPE_VAR: value}
    done = subprocess.run(
        argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == pytest.ExitCode.USAGE_ERROR, done.stdout + done.stderr
    lines = [line for line in done.stderr.splitlines() if SCOPE_VAR in line]
    assert len(lines) == 1, done.stderr
    assert lines[0].endswith("is not a scope: use one of session, all, off"), done.stderr
    assert len(lines[0]) < 200, "a huge value is cut short in the message"


def run_session(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """A pytest session of one empty test with the leftover check, in ``env`` (over this one,
    without its TACOQ_* variables)."""
    (tmp_path / "test_nothing.py").write_text("def test_nothing():\n    pass\n")
    argv = [sys.executable, "-m", "pytest", "-p", "tacoq.testing.leftovers", "test_nothing.py"]
    base = {key: value for key, value in os.environ.items() if not key.startswith("TACOQ_")}
    return subprocess.run(
        argv,
        cwd=tmp_path,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


UNCHECKABLE = {
    "TACOQ_TEST_AMQP_URL": "amqp://guest:guest@rabbit.example.invalid:5672/",
    "TACOQ_TEST_POSTGRES_URL": "postgresql://postgres@127.0.0.1:1/test",
}


def test_a_service_that_cannot_be_listed_is_named_in_the_summary(tmp_path: Path) -> None:
    done = run_session(tmp_path, **UNCHECKABLE)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert (
        "leftover check: RabbitMQ not checked "
        "(rabbit.example.invalid is not this machine, where rabbitmqctl runs)"
    ) in output
    assert "leftover check: Postgres not checked (psql" in output


def test_a_check_that_cannot_run_fails_when_services_are_required(tmp_path: Path) -> None:
    done = run_session(tmp_path, TACOQ_REQUIRE_SERVICES="1", **UNCHECKABLE)
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    assert "RabbitMQ could not be checked: rabbit.example.invalid is not this machine" in output
    assert "Postgres could not be checked: psql" in output


def test_without_service_urls_nothing_is_checked(tmp_path: Path) -> None:
    done = run_session(tmp_path, TACOQ_REQUIRE_SERVICES="1")
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "leftover check" not in output
