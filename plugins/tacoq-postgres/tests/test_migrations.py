"""Versioned migrations: idempotent, safe when run concurrently, and checkable."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid

import psycopg
import pytest

from tacoq.errors import ConfigError
from tacoq.model.merge import merge
from tacoq.model.task import Phase
from tacoq.testing import fresh_namespace
from tacoq.testing.store_contract import dead_letter, event
from tacoq.testing.workers import T0, make_announcement, worker_record
from tacoq_postgres import migrate as migrations
from tacoq_postgres.settings import schema_for_namespace
from tacoq_postgres.testing import MakeStore, drop_schemas, schema_names, with_params


@pytest.fixture
async def schema(pg_url: str) -> object:
    """A schema name nobody uses, dropped after the test."""
    name = schema_for_namespace(fresh_namespace("mig").replace("-", "_"))
    yield name
    await drop_schemas(pg_url, [name])


async def _connect(url: str) -> psycopg.AsyncConnection[tuple[object, ...]]:
    from tacoq_postgres.settings import parse_store_url

    return await psycopg.AsyncConnection.connect(
        parse_store_url(url, "x").conninfo, autocommit=True
    )


async def test_migrate_is_idempotent(pg_url: str, schema: str) -> None:
    """The first run applies every migration, the second none; versions are recorded once."""
    async with await _connect(pg_url) as conn:
        first = await migrations.migrate(conn, schema)
        second = await migrations.migrate(conn, schema)
        assert [m.version for m in first] == [m.version for m in migrations.available()]
        assert second == []
        assert await migrations.applied_versions(conn, schema) == {
            m.version for m in migrations.available()
        }


async def test_two_concurrent_migrations_on_two_connections(pg_url: str, schema: str) -> None:
    """Two migrate() at once: one applies, the other waits on the lock and applies nothing."""
    a, b = await _connect(pg_url), await _connect(pg_url)
    async with a, b:
        results = await asyncio.gather(migrations.migrate(a, schema), migrations.migrate(b, schema))
        assert sorted(len(r) for r in results) == [0, len(migrations.available())]


def test_two_processes_migrate_at_once(pg_url: str, schema: str) -> None:
    """`tacoq postgres migrate` from two processes at once: both succeed."""
    url = with_params(pg_url, schema=schema)
    env = {**os.environ, "TACOQ_STORE_URL": url}
    command = [sys.executable, "-m", "tacoq_cli", "postgres", "migrate"]
    procs = [
        subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    assert sum("applied 0001_initial" in out for out, _ in outputs) == 1


async def test_migrate_false_refuses_an_unmigrated_schema(
    make_store: MakeStore, pg_url: str
) -> None:
    """With ``migrate=false`` a store does not create tables and says what to run."""
    namespace = fresh_namespace("nomig")
    with pytest.raises(ConfigError, match="tacoq postgres migrate"):
        await make_store(namespace, url=with_params(pg_url, migrate="false"))
    await make_store(namespace)  # migrates
    await make_store(namespace, url=with_params(pg_url, migrate="false"))


async def test_drop_removes_every_table_the_migrations_create(pg_url: str, schema: str) -> None:
    """`drop` knows every table the migrations make: after it the schema is gone, which
    `DROP SCHEMA ... RESTRICT` allows only when nothing is left in it."""
    async with await _connect(pg_url) as conn:
        await migrations.migrate(conn, schema)
        cur = await conn.execute(
            "SELECT tablename FROM pg_catalog.pg_tables WHERE schemaname = %s", [schema]
        )
        assert {str(row[0]) for row in await cur.fetchall()} == set(migrations.TABLES)
        dropped = await migrations.drop(conn, schema, with_schema=True)
        assert dropped == [f"table {schema}.{name}" for name in migrations.TABLES] + [
            f"schema {schema}"
        ]
        assert await migrations.drop(conn, schema, with_schema=True) == []
    assert schema not in await schema_names(pg_url)


async def test_a_schema_named_in_the_url_keeps_what_is_not_tacoqs(
    pg_url: str, schema: str, make_store: MakeStore
) -> None:
    """With ``schema=`` in the URL the schema may be shared: deleting the namespace drops
    TacoQ's tables and keeps the schema with the other tables in it."""
    url = with_params(pg_url, schema=schema)
    store = await make_store(url=url)
    async with await _connect(pg_url) as conn:
        await conn.execute(f'CREATE TABLE "{schema}".theirs (x int)')
    await store.close()
    deleted = await make_store(store.namespace, url=url, connect=False)
    assert await deleted.delete_namespace() == [
        f"table {schema}.{name}" for name in migrations.TABLES
    ]
    async with await _connect(pg_url) as conn:
        cur = await conn.execute(
            "SELECT tablename FROM pg_catalog.pg_tables WHERE schemaname = %s", [schema]
        )
        assert [str(row[0]) for row in await cur.fetchall()] == ["theirs"]


async def test_maintenance_creates_no_schema(pg_url: str, make_store: MakeStore) -> None:
    """Asking an unknown namespace for its worker kinds, or deleting it, creates nothing."""
    store = await make_store(fresh_namespace("ghost"), connect=False)
    assert await store.worker_kinds() == []
    assert await store.delete_namespace() == []
    assert store.schema not in await schema_names(pg_url)


async def test_a_schema_of_the_previous_version_is_migrated(
    make_store: MakeStore, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A namespace made by the version before workers online (schema version 2) keeps its
    tasks and dead letters: ``migrate=false`` names the missing version, a store that
    migrates adds the workers table, and deleting the namespace drops it too."""
    shipped = migrations.available()
    assert [m.version for m in shipped][-1] == 3
    namespace = fresh_namespace("prev")
    monkeypatch.setattr(migrations, "available", lambda: [m for m in shipped if m.version <= 2])
    old = await make_store(namespace)
    done = event(uuid.uuid4(), Phase.COMPLETED)
    letter = dead_letter()
    await old.apply_batch([done])
    await old.record_dead_letters([letter])
    await old.close()
    monkeypatch.undo()
    with pytest.raises(ConfigError, match=r"lacks schema versions \[3\]"):
        await make_store(namespace, url=with_params(pg_url, migrate="false"))
    store = await make_store(namespace)
    assert await store.get(done.id) == merge(None, done)[0]
    assert await store.get_dead_letter(letter.id) == letter
    record = worker_record(make_announcement("w-1"), seen_at=T0)
    await store.save_worker(record)
    assert await store.list_workers() == [record]
    async with await _connect(pg_url) as conn:
        assert await migrations.applied_versions(conn, store.schema) == {1, 2, 3}
    await store.close()
    deleted = await (await make_store(namespace, connect=False)).delete_namespace()
    assert f"table {store.schema}.workers" in deleted
    assert store.schema not in await schema_names(pg_url)
