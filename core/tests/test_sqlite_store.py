"""The built-in ``sqlite:///`` store: the contract, durability, sharing across processes."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
import textwrap
import time
import uuid
from datetime import timedelta
from pathlib import Path

import pytest

from tacoq.builtin.sqlite_store import SqliteStore, sqlite_path, table_name
from tacoq.errors import ConfigError, StoreUnavailable
from tacoq.model.merge import merge
from tacoq.model.task import Phase
from tacoq.testing import fresh_namespace
from tacoq.testing.store_contract import StoreContract, event
from tacoq.testing.workers import T0, make_announcement, worker_record


class TestSqliteStore(StoreContract):
    """The SQLite store passes the store contract."""

    @pytest.fixture
    def store_url(self, tmp_path: Path) -> str:
        """A fresh database file per test."""
        return f"sqlite:///{tmp_path}/tasks.db"


def _run_in_subprocess(code: str) -> str:
    """Run ``code`` in a separate Python process and return what it printed."""
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


_SUBPROCESS_PRELUDE = """
    import asyncio, sys, uuid
    from tacoq.builtin.sqlite_store import SqliteStore
    from tacoq.model.task import Phase
    from tacoq.testing.store_contract import event
"""


def test_url_to_path() -> None:
    """Three slashes make a relative path, four an absolute one."""
    assert sqlite_path("sqlite:///data/tasks.db") == "data/tasks.db"
    assert sqlite_path("sqlite:////var/lib/tasks.db") == "/var/lib/tasks.db"
    for bad in ("sqlite://tasks.db", "sqlite:///", "sqlite:///a.db?mode=ro"):
        with pytest.raises(ConfigError):
            sqlite_path(bad)


def test_table_names_are_safe_and_distinct() -> None:
    """Any namespace gives a plain identifier; names that sanitize alike still differ."""
    weird = table_name('x"; DROP TABLE y; --')
    assert weird.replace("_", "").isalnum()
    assert table_name("a-b") != table_name("a_b")


async def test_second_instance_sees_rows_and_schema_is_idempotent(tmp_path: Path) -> None:
    """Connecting again (schema re-created) keeps rows; a second instance sees them."""
    url, ns = f"sqlite:///{tmp_path}/t.db", fresh_namespace()
    e = event(uuid.uuid4(), Phase.COMPLETED)
    async with SqliteStore(url, namespace=ns) as first:
        await first.apply_batch([e])
        await first.connect()  # idempotent: the schema already exists
        async with SqliteStore(url, namespace=ns) as second:
            assert await second.get(e.id) == await first.get(e.id)
    async with SqliteStore(url, namespace=ns) as reopened:
        row = await reopened.get(e.id)
        assert row is not None
        assert row.is_completed


async def test_rows_are_shared_with_another_process(tmp_path: Path) -> None:
    """A row written here is read by another process, and the other way round."""
    url, ns = f"sqlite:///{tmp_path}/t.db", fresh_namespace()
    here, there = uuid.uuid4(), uuid.uuid4()
    async with SqliteStore(url, namespace=ns) as store:
        await store.apply_batch([event(here, Phase.COMPLETED)])
        out = await asyncio.to_thread(
            _run_in_subprocess,
            _SUBPROCESS_PRELUDE
            + f"""
    async def main():
        async with SqliteStore({url!r}, namespace={ns!r}) as s:
            row = await s.get(uuid.UUID({str(here)!r}))
            await s.apply_batch([event(uuid.UUID({str(there)!r}), Phase.RUNNING)])
            print(row.status.value, row.executed_by)
    asyncio.run(main())
    """,
        )
        assert out == "COMPLETED worker-1"
        row = await store.get(there)
        assert row is not None
        assert row.status.value == "RUNNING"


async def test_wait_sees_a_completion_from_another_process(tmp_path: Path) -> None:
    """A waiter notices a completion committed by another process (bounded poll)."""
    url, ns = f"sqlite:///{tmp_path}/t.db", fresh_namespace()
    task_id = uuid.uuid4()
    async with SqliteStore(url, namespace=ns) as store:
        await store.apply_batch([event(task_id, Phase.ASSIGNED)])
        waiter = asyncio.create_task(store.wait(task_id, timeout=60))
        await asyncio.to_thread(
            _run_in_subprocess,
            _SUBPROCESS_PRELUDE
            + f"""
    async def main():
        async with SqliteStore({url!r}, namespace={ns!r}) as s:
            await s.apply_batch([event(uuid.UUID({str(task_id)!r}), Phase.COMPLETED)])
    asyncio.run(main())
    """,
        )
        row = await asyncio.wait_for(waiter, 5)
        assert row is not None
        assert row.is_completed


async def test_unopenable_database_is_unavailable(tmp_path: Path) -> None:
    """A path that cannot be a database raises StoreUnavailable naming the path."""
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    store = SqliteStore(f"sqlite:///{blocker}/t.db", namespace="x")
    with pytest.raises(StoreUnavailable, match=r"t\.db"):
        await store.connect()
    not_a_db = tmp_path / "garbage.db"
    not_a_db.write_bytes(b"this is not a database" * 100)
    store = SqliteStore(f"sqlite:///{not_a_db}", namespace="x")
    with pytest.raises(StoreUnavailable, match=r"garbage\.db"):
        await store.connect()
    assert not (await store.health()).ok


async def test_batches_are_fast(tmp_path: Path) -> None:
    """Batches of 500 events go comfortably faster than 5,000 events/s."""
    async with SqliteStore(f"sqlite:///{tmp_path}/t.db", namespace="bench") as store:
        tasks = [uuid.uuid4() for _ in range(2000)]
        batches = [
            [event(t, phase) for t in tasks[i : i + 500]]
            for phase in Phase
            for i in range(0, len(tasks), 500)
        ]
        start = time.perf_counter()
        for batch in batches:
            await store.apply_batch(batch)
        rate = 6000 / (time.perf_counter() - start)
        assert rate > 5000, f"{rate:.0f} events/s"


async def test_a_briefly_locked_database_is_waited_for(tmp_path: Path) -> None:
    """A writer holding the lock for a moment delays the batch, which then commits."""
    path = tmp_path / "t.db"
    async with SqliteStore(f"sqlite:///{path}", namespace="x") as store:
        blocker = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        blocker.execute("BEGIN IMMEDIATE")
        release = asyncio.get_running_loop().call_later(0.3, blocker.execute, "ROLLBACK")
        e = event(uuid.uuid4(), Phase.COMPLETED)
        try:
            assert (await store.apply_batch([e])).completed == [e.id]
        finally:
            release.cancel()
            blocker.close()


async def test_a_database_that_stays_locked_is_unavailable(tmp_path: Path) -> None:
    """After bounded retries a locked database raises StoreUnavailable; nothing is written."""
    path = tmp_path / "t.db"
    store = SqliteStore(f"sqlite:///{path}", namespace="x")
    store.busy_timeout_ms, store.lock_retries = 20, 2
    async with store:
        blocker = sqlite3.connect(path, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")
        e = event(uuid.uuid4(), Phase.COMPLETED)
        try:
            with pytest.raises(StoreUnavailable, match="locked"):
                await store.apply_batch([e])
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        assert await store.get(e.id) is None
        assert store.stats.batches == 0


async def test_text_another_program_wrote_that_is_not_utf8_still_loads(tmp_path: Path) -> None:
    from tacoq.model.task import ErrorInfo
    from tacoq.relay.api_models import task_to_api

    ns = fresh_namespace("sqlite-bytes")
    store = SqliteStore(f"sqlite:///{tmp_path / 'bytes.db'}", namespace=ns)
    await store.connect()
    try:
        done = event(uuid.uuid4(), Phase.COMPLETED, error=ErrorInfo("E", "placeholder"))
        await store.apply_batch([done])
        with sqlite3.connect(tmp_path / "bytes.db") as conn:
            conn.execute(
                f'UPDATE "{table_name(ns)}" SET error_message = CAST(? AS TEXT), '
                "executed_by = CAST(? AS TEXT) WHERE id = ?",
                [b"bad \xff byte", b"\xc3(", str(done.id)],
            )
        row = await store.get(done.id)
        assert row is not None
        assert row.error is not None
        assert row.error.message == "bad \udcff byte"
        shown = task_to_api(row)
        assert shown.error is not None
        assert shown.error.message == "bad \\udcff byte"
        assert shown.executed_by == "\\udcc3("
    finally:
        await store.close()


async def test_maintenance_creates_no_file_and_keeps_the_file(tmp_path: Path) -> None:
    """Namespace maintenance never creates a database file; deleting a namespace drops its
    three tables and keeps the file and another namespace's tables."""
    url = f"sqlite:///{tmp_path}/t.db"
    ghost = SqliteStore(url, namespace=fresh_namespace())
    assert await ghost.worker_kinds() == []
    assert await ghost.delete_namespace() == []
    assert not (tmp_path / "t.db").exists()
    mine, theirs = fresh_namespace(), fresh_namespace()
    for ns in (mine, theirs):
        async with SqliteStore(url, namespace=ns) as store:
            await store.apply_batch([event(uuid.uuid4(), Phase.COMPLETED)])
    deleted = await SqliteStore(url, namespace=mine).delete_namespace()
    assert deleted == [f"table {table_name(mine, what)}" for what in ("tasks", "dead", "workers")]
    with sqlite3.connect(tmp_path / "t.db") as conn:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
    assert table_name(theirs) in tables
    assert table_name(mine) not in tables
    assert await SqliteStore(url, namespace=theirs).worker_kinds() == ["math"]


async def test_a_database_of_the_previous_version_gains_the_workers_table(tmp_path: Path) -> None:
    """A namespace made before workers online (tasks and dead letters only) opens: its rows
    stay, the workers table is created, and deleting the namespace drops all three tables."""
    url, ns = f"sqlite:///{tmp_path}/t.db", fresh_namespace()
    done = event(uuid.uuid4(), Phase.COMPLETED)
    async with SqliteStore(url, namespace=ns) as store:
        await store.apply_batch([done])
    with sqlite3.connect(tmp_path / "t.db") as conn:
        conn.execute(f'DROP TABLE "{table_name(ns, "workers")}"')
    record = worker_record(make_announcement("w-1"), seen_at=T0)
    async with SqliteStore(url, namespace=ns) as store:
        assert await store.get(done.id) == merge(None, done)[0]
        assert await store.list_workers() == []
        await store.save_worker(record)
    async with SqliteStore(url, namespace=ns) as store:
        assert await store.list_workers() == [record]
    deleted = await SqliteStore(url, namespace=ns).delete_namespace()
    assert len(deleted) == 3


async def test_workers_are_shared_with_another_process(tmp_path: Path) -> None:
    """A worker saved here is touched by another process (another relay), and seen here."""
    url, ns = f"sqlite:///{tmp_path}/t.db", fresh_namespace()
    record = worker_record(make_announcement("w-1"), seen_at=T0)
    async with SqliteStore(url, namespace=ns) as store:
        await store.save_worker(record)
        out = await asyncio.to_thread(
            _run_in_subprocess,
            _SUBPROCESS_PRELUDE
            + f"""
    from datetime import timedelta
    from tacoq.testing.workers import T0, make_heartbeat
    async def main():
        async with SqliteStore({url!r}, namespace={ns!r}) as s:
            print(await s.touch_worker(make_heartbeat("w-1", running=0), T0 + timedelta(seconds=5)))
    asyncio.run(main())
    """,
        )
        assert out == "True"
        (kept,) = await store.list_workers()
        assert kept.announcement == record.announcement
        assert kept.heartbeat is not None
        assert kept.seen_at == T0 + timedelta(seconds=5)
