"""What ``tacoq postgres stats`` shows: the schema version, tasks by status and kind, the oldest
pending task, and completed tasks past their ttl that cleanup has not deleted yet."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg import sql

from tacoq.errors import ConfigError, StoreUnavailable
from tacoq_postgres import migrate as migrations
from tacoq_postgres.settings import PostgresSettings

__all__ = ["TableReport", "collect", "run_migrations"]


@dataclass(frozen=True, slots=True)
class TableReport:
    """A snapshot of one store schema."""

    schema: str
    version: int
    #: ``(status, task_kind, count)``, sorted.
    by_status_kind: list[tuple[str, str, int]] = field(default_factory=list)
    oldest_pending: datetime | None = None
    expired_waiting: int = 0

    @property
    def total(self) -> int:
        """How many tasks the schema holds."""
        return sum(count for _, _, count in self.by_status_kind)

    def as_json(self) -> dict[str, Any]:
        """The report as a JSON object (timestamps in RFC 3339 UTC with ``Z``)."""
        oldest = self.oldest_pending
        return {
            "schema": self.schema,
            "version": self.version,
            "total": self.total,
            "by_status_kind": [
                {"status": s, "task_kind": k, "count": n} for s, k, n in self.by_status_kind
            ],
            "oldest_pending": None
            if oldest is None
            else oldest.astimezone(UTC).isoformat().replace("+00:00", "Z"),
            "expired_waiting_for_cleanup": self.expired_waiting,
        }


async def _connect(settings: PostgresSettings) -> psycopg.AsyncConnection[Any]:
    try:
        return await psycopg.AsyncConnection.connect(settings.conninfo, autocommit=True)
    except psycopg.OperationalError as exc:
        first = (str(exc).strip().splitlines() or [""])[0]
        raise StoreUnavailable(f"cannot reach Postgres at {settings.display_url}: {first}") from exc


async def run_migrations(settings: PostgresSettings) -> tuple[list[str], int]:
    """Apply the missing migrations; the names applied and the schema's version now."""
    async with await _connect(settings) as conn:
        applied = await migrations.migrate(conn, settings.schema)
        version = max(await migrations.applied_versions(conn, settings.schema))
    return [f"{m.version:04d}_{m.name}" for m in applied], version


async def collect(settings: PostgresSettings, now: datetime) -> TableReport:
    """Read the report of ``settings.schema`` (``ConfigError`` when it was never migrated)."""
    table = sql.Identifier(settings.schema, "tasks")
    async with await _connect(settings) as conn:
        versions = await migrations.applied_versions(conn, settings.schema)
        if not versions:
            raise ConfigError(
                f"schema {settings.schema!r} at {settings.display_url} has no TacoQ tables: "
                "run `tacoq postgres migrate` first (or check --namespace)"
            )
        cur = await conn.execute(
            sql.SQL(
                "SELECT status, task_kind, count(*) FROM {} GROUP BY 1, 2 ORDER BY 1, 2"
            ).format(table)
        )
        groups = [(str(s), str(k), int(n)) for s, k, n in await cur.fetchall()]
        cur = await conn.execute(
            sql.SQL(
                "SELECT (SELECT min(created_at) FROM {0} WHERE status = 'PENDING'), "
                "(SELECT count(*) FROM {0} WHERE status = 'COMPLETED' AND expires_at <= %s)"
            ).format(table),
            [now],
        )
        found = await cur.fetchone()
    oldest, expired = found if found is not None else (None, 0)
    return TableReport(
        schema=settings.schema,
        version=max(versions),
        by_status_kind=groups,
        oldest_pending=oldest,
        expired_waiting=int(expired or 0),
    )
