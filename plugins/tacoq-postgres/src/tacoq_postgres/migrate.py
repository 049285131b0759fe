"""Versioned schema migrations: ``migrations/NNNN_name.sql`` shipped as package data.

:func:`migrate` applies the missing ones in one transaction that first takes a
transaction-level advisory lock for the schema, so two processes migrating at once are safe:
the second waits, then finds everything applied. Applied versions are recorded in the
schema's ``schema_migrations`` table. :func:`drop` undoes it all (``tacoq namespace delete``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING, Any

from psycopg import errors as pg_errors
from psycopg import sql

if TYPE_CHECKING:
    from psycopg import AsyncConnection

__all__ = [
    "MIGRATION_LOCK",
    "TABLES",
    "Migration",
    "applied_versions",
    "available",
    "drop",
    "latest",
    "migrate",
]

#: The first key of the two-key advisory lock that serializes migrations (the second is the
#: schema's hash). Apply-batch locks use the one-key form, a separate lock space.
MIGRATION_LOCK = 0x7AC0
#: Every table the migrations create, and the history table: what :func:`drop` removes. A
#: migration that adds a table adds it here (``tests/test_migrations.py`` checks).
TABLES = ("tasks", "dead_letters", "workers", "schema_migrations")

_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True, slots=True)
class Migration:
    """One schema version: its number, name and SQL (run with ``search_path`` = the schema)."""

    version: int
    name: str
    sql: str


def available() -> list[Migration]:
    """Every migration shipped with this package, in version order."""
    found: list[Migration] = []
    for entry in (resources.files("tacoq_postgres") / "migrations").iterdir():
        match = _FILE.match(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    return found


def latest() -> int:
    """The newest schema version this package knows."""
    return max(m.version for m in available())


async def applied_versions(conn: AsyncConnection[Any], schema: str) -> set[int]:
    """Versions recorded in the schema (empty when the schema or its table does not exist)."""
    cur = await conn.execute(
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_tables "
        "WHERE schemaname = %s AND tablename = 'schema_migrations')",
        [schema],
    )
    found = await cur.fetchone()
    if not found or not found[0]:
        return set()
    cur = await conn.execute(
        sql.SQL("SELECT version FROM {}").format(sql.Identifier(schema, "schema_migrations"))
    )
    return {int(row[0]) for row in await cur.fetchall()}


async def migrate(conn: AsyncConnection[Any], schema: str) -> list[Migration]:
    """Bring ``schema`` to the latest version; returns the migrations applied (often none).

    ``conn`` must be idle; it is used for one transaction. Idempotent and safe to run from
    several processes at once.
    """
    ident = sql.Identifier(schema)
    history = sql.Identifier(schema, "schema_migrations")
    async with conn.transaction():
        await conn.execute(
            "SELECT pg_advisory_xact_lock(%s, hashtext(%s))", [MIGRATION_LOCK, schema]
        )
        await conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(ident))
        await conn.execute(
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {} (version integer PRIMARY KEY, name text NOT NULL, "
                "applied_at timestamptz NOT NULL DEFAULT now())"
            ).format(history)
        )
        cur = await conn.execute(sql.SQL("SELECT version FROM {}").format(history))
        done = {int(row[0]) for row in await cur.fetchall()}
        todo = [m for m in available() if m.version not in done]
        if todo:
            # The migration files name their tables unqualified; LOCAL lasts until commit.
            await conn.execute(sql.SQL("SET LOCAL search_path TO {}").format(ident))
            for migration in todo:
                # Without parameters a query may hold several statements.
                await conn.execute(migration.sql.encode())
                await conn.execute(
                    sql.SQL("INSERT INTO {} (version, name) VALUES (%s, %s)").format(history),
                    [migration.version, migration.name],
                )
    return todo


async def drop(conn: AsyncConnection[Any], schema: str, *, with_schema: bool) -> list[str]:
    """Drop TacoQ's tables (:data:`TABLES`) of ``schema`` and, ``with_schema``, the schema
    itself when nothing else is left in it; what was dropped, as ``"table SCHEMA.NAME"`` and
    ``"schema NAME"`` (nothing when none of it exists).

    One transaction, under the migration lock (a migration running meanwhile waits, then
    creates the schema again). ``conn`` must be idle. A schema named in the store URL
    (``schema=``) may be shared with other tables, so the store keeps it (``with_schema``
    false).
    """
    dropped: list[str] = []
    async with conn.transaction():
        await conn.execute(
            "SELECT pg_advisory_xact_lock(%s, hashtext(%s))", [MIGRATION_LOCK, schema]
        )
        cur = await conn.execute(
            "SELECT tablename FROM pg_catalog.pg_tables WHERE schemaname = %s "
            "AND tablename = ANY(%s)",
            [schema, list(TABLES)],
        )
        present = {str(row[0]) for row in await cur.fetchall()}
        for name in TABLES:
            if name in present:
                await conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(schema, name)))
                dropped.append(f"table {schema}.{name}")
        cur = await conn.execute(
            "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = %s)", [schema]
        )
        found = await cur.fetchone()
        if with_schema and found and found[0]:
            try:
                async with conn.transaction():  # a savepoint: a refusal keeps the tables gone
                    await conn.execute(
                        sql.SQL("DROP SCHEMA {} RESTRICT").format(sql.Identifier(schema))
                    )
                dropped.append(f"schema {schema}")
            except pg_errors.DependentObjectsStillExist:
                pass  # something that is not TacoQ's lives there: keep it
    return dropped
