"""Helpers for tests against a real Postgres: tagged URLs, dropping schemas, killing backends.

Used by this plugin's tests and by cross-package fault tests. Imports psycopg (never import it
from the hook module).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg import sql

from tacoq_postgres.settings import parse_store_url
from tacoq_postgres.store import PostgresStore

__all__ = [
    "MakeStore",
    "admin",
    "drop_schemas",
    "schema_names",
    "terminate_backends",
    "with_params",
    "worker_kinds_in",
]


class MakeStore(Protocol):
    """Opens a store (a fresh namespace unless given), closed and its schema dropped later."""

    async def __call__(
        self, namespace: str | None = None, *, url: str | None = None, connect: bool = True
    ) -> PostgresStore:
        """A store of ``url`` (default: the test's) in ``namespace``, connected unless told."""
        ...


def with_params(url: str, **params: str) -> str:
    """``url`` with query parameters set (replacing any of the same name)."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k not in params]
    return urlunsplit(parts._replace(query=urlencode([*query, *params.items()])))


async def admin(url: str) -> psycopg.AsyncConnection[Any]:
    """An autocommit connection (``application_name`` ``tacoq-test-admin``) for inspection."""
    conninfo = parse_store_url(with_params(url, application_name="tacoq-test-admin"), "x")
    return await psycopg.AsyncConnection.connect(conninfo.conninfo, autocommit=True)


async def drop_schemas(url: str, schemas: Iterable[str]) -> None:
    """Drop schemas and everything in them (missing ones are fine)."""
    names = sorted(set(schemas))
    if not names:
        return
    async with await admin(url) as conn:
        for name in names:
            await conn.execute(
                sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name))
            )


async def schema_names(url: str) -> set[str]:
    """Every schema of the database, from ``information_schema.schemata``."""
    async with await admin(url) as conn:
        cur = await conn.execute("SELECT schema_name FROM information_schema.schemata")
        return {str(row[0]) for row in await cur.fetchall()}


async def worker_kinds_in(url: str, namespace: str) -> list[str]:
    """Every worker kind the namespace's tasks and workers name (the queues a test left behind
    to delete); none when the namespace has no table."""
    from tacoq_postgres.settings import schema_for_namespace

    found: set[str] = set()
    async with await admin(url) as conn:
        for name in ("tasks", "workers"):
            table = sql.Identifier(schema_for_namespace(namespace), name)
            try:
                query = sql.SQL("SELECT DISTINCT worker_kind FROM {}").format(table)
                cur = await conn.execute(query)
            except psycopg.errors.UndefinedTable:
                continue
            found.update(row[0] for row in await cur.fetchall())
    return sorted(found)


async def terminate_backends(url: str, application_name: str, *, listen_only: bool = False) -> int:
    """Terminate the sessions of ``application_name`` (only LISTEN ones if asked); how many."""
    query = (
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
        "WHERE application_name = %s AND pid <> pg_backend_pid()"
    )
    if listen_only:
        query += " AND query ILIKE 'LISTEN%%'"
    async with await admin(url) as conn:
        cur = await conn.execute(query, [application_name])
        found = await cur.fetchone()
    return int(found[0]) if found else 0
