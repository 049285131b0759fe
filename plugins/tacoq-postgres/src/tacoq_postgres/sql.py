"""The store's SQL for one schema, and the mapping between :class:`~tacoq.model.task.Task` and rows.

Every statement is composed once per store with :class:`psycopg.sql.Identifier` for the schema
and table, and rendered to bytes there: psycopg converts a ``bytes`` query once and caches it
(and prepares it after a few uses), where a ``Composed`` one is rendered again on every call,
which cost more than a single-event batch's round trips. Values always travel as parameters.
A batch writes its changed rows with a single ``INSERT ... SELECT FROM unnest(arrays) ON
CONFLICT (id) DO UPDATE`` (one array per column).

A worker's row keeps its last announcement and last heartbeat as JSON text in two columns, so
a heartbeat (:attr:`Statements.worker_touch`) writes its own column and ``seen_at`` in one
statement and never the announcement.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from psycopg import sql
from psycopg.types.json import Jsonb

from tacoq.contracts.store import DeadLetterRecord
from tacoq.model.task import ErrorInfo, Payload, Task, TaskStatus
from tacoq.model.workers import Announcement, Heartbeat, WorkerRecord

__all__ = [
    "COLUMNS",
    "DEAD_COLUMNS",
    "NOTIFY_LIMIT",
    "WORKER_COLUMNS",
    "Statements",
    "dead_columns_of",
    "decode",
    "decode_dead",
    "decode_worker",
    "lock_keys",
    "notify_payloads",
    "worker_params",
]

#: Column names and the array type each one travels as in the batch upsert.
COLUMNS: tuple[tuple[str, str], ...] = (
    ("id", "uuid"), ("task_kind", "text"), ("worker_kind", "text"), ("status", "text"),
    ("priority", "integer"), ("attempt", "integer"), ("ttl", "bigint"), ("is_error", "boolean"),
    ("error_type", "text"), ("error_message", "bytea"), ("error_traceback", "bytea"),
    ("input_type", "text"), ("input_data", "bytea"), ("output_type", "text"),
    ("output_data", "bytea"), ("created_at", "timestamptz"), ("started_at", "timestamptz"),
    ("completed_at", "timestamptz"), ("executed_by", "text"), ("expires_at", "timestamptz"),
)  # fmt: skip
#: Columns of the dead-letters table and the array type each travels as in the upsert.
DEAD_COLUMNS: tuple[tuple[str, str], ...] = (
    ("id", "uuid"), ("origin", "text"), ("reason", "text"), ("headers", "jsonb"),
    ("content_type", "text"), ("body", "bytea"), ("body_size", "bigint"), ("task_id", "uuid"),
    ("first_seen", "timestamptz"), ("last_seen", "timestamptz"), ("count", "integer"),
)  # fmt: skip
#: Columns of the workers table, in the order of :func:`worker_params`.
WORKER_COLUMNS = ("name", "worker_kind", "announcement", "heartbeat", "seen_at")
#: On a second record of one id, these come from whichever was seen last.
DEAD_LATEST = ("origin", "reason", "headers", "content_type", "body", "body_size", "task_id")
#: NOTIFY payloads must be shorter than 8000 bytes; ids travel as 32 hex digits plus a comma.
NOTIFY_LIMIT = 7999
_IDS_PER_NOTIFY = (NOTIFY_LIMIT + 1) // 33
_FAR_FUTURE = datetime(9999, 12, 31, tzinfo=UTC)


def _text(value: str | None) -> bytes | None:
    # surrogatepass: any Python str round-trips exactly.
    return None if value is None else value.encode("utf-8", "surrogatepass")


def _untext(value: bytes | None) -> str | None:
    if value is None:
        return None
    try:
        return bytes(value).decode("utf-8", "surrogatepass")
    except UnicodeDecodeError:
        # Not written by _text (another client, by hand): every undecodable byte becomes a lone
        # surrogate, which the relay's API shows as \\udcXX, rather than the row failing to load.
        return bytes(value).decode("utf-8", "surrogateescape")


def _utc(value: datetime | None) -> datetime | None:
    if value is None or value.tzinfo is UTC:  # the store's sessions use TimeZone UTC
        return value
    return value.astimezone(UTC)


def _expires(row: Task) -> datetime | None:
    if row.completed_at is None:
        return None
    try:
        return row.completed_at + timedelta(seconds=row.ttl)
    except OverflowError:
        return _FAR_FUTURE


def _record(row: Task) -> tuple[Any, ...]:
    e, i, o = row.error, row.input, row.output
    return (
        row.id, row.task_kind, row.worker_kind, row.status.value, row.priority, row.attempt,
        row.ttl, row.is_error,
        *((None, None, None) if e is None else (e.type, _text(e.message), _text(e.traceback))),
        *((None, None) if i is None else (i.content_type, i.data)),
        *((None, None) if o is None else (o.content_type, o.data)),
        row.created_at, row.started_at, row.completed_at, row.executed_by, _expires(row),
    )  # fmt: skip


def columns_of(rows: Iterable[Task]) -> list[list[Any]]:
    """The rows as one list per column (the parameters of the batch upsert)."""
    records = [_record(row) for row in rows]
    return [list(column) for column in zip(*records, strict=True)] if records else []


def decode(r: Sequence[Any]) -> Task:
    """A :class:`Task` from a row selected with :attr:`Statements.select_columns`."""
    return Task(
        id=r[0], task_kind=r[1], worker_kind=r[2], status=TaskStatus(r[3]), priority=r[4],
        attempt=r[5], ttl=r[6], is_error=r[7],
        error=None if r[8] is None else ErrorInfo(r[8], _untext(r[9]) or "", _untext(r[10])),
        input=None if r[11] is None else Payload(r[11], bytes(r[12])),
        output=None if r[13] is None else Payload(r[13], bytes(r[14])),
        created_at=_utc(r[15]), started_at=_utc(r[16]), completed_at=_utc(r[17]),
        executed_by=r[18],
    )  # fmt: skip


def dead_columns_of(records: Iterable[DeadLetterRecord]) -> list[list[Any]]:
    """Dead-letter records as one list per column (the parameters of the dead-letter upsert)."""
    rows = [_dead_record(r) for r in records]
    return [list(column) for column in zip(*rows, strict=True)] if rows else []


def _dead_record(r: DeadLetterRecord) -> tuple[Any, ...]:
    return (
        r.id, r.origin, r.reason, Jsonb(r.headers), r.content_type, r.body, r.body_size,
        r.task_id, r.first_seen, r.last_seen, r.count,
    )  # fmt: skip


def decode_dead(r: Sequence[Any]) -> DeadLetterRecord:
    """A :class:`DeadLetterRecord` from a row selected with :attr:`Statements.dead_columns`."""
    return DeadLetterRecord(
        id=r[0], origin=r[1], reason=r[2], headers=dict(r[3]), content_type=r[4],
        body=bytes(r[5]), body_size=r[6], task_id=r[7], first_seen=r[8].astimezone(UTC),
        last_seen=r[9].astimezone(UTC), count=r[10],
    )  # fmt: skip


def worker_params(record: WorkerRecord) -> list[Any]:
    """The parameters of :attr:`Statements.worker_save` for ``record``."""
    announcement, heartbeat = record.announcement, record.heartbeat
    return [
        record.name,
        record.worker_kind,
        None if announcement is None else announcement.model_dump_json(),
        None if heartbeat is None else heartbeat.model_dump_json(),
        record.seen_at,
    ]


def decode_worker(r: Sequence[Any]) -> WorkerRecord:
    """A :class:`WorkerRecord` from a row of :attr:`Statements.worker_list`."""
    return WorkerRecord(
        name=r[0],
        worker_kind=r[1],
        announcement=None if r[2] is None else Announcement.model_validate_json(r[2]),
        heartbeat=None if r[3] is None else Heartbeat.model_validate_json(r[3]),
        seen_at=r[4].astimezone(UTC),
    )


def lock_keys(schema: str, ids: Iterable[UUID]) -> list[int]:
    """Sorted, distinct advisory-lock keys (signed 64-bit) for task ids in ``schema``.

    Taking locks in one global order means two batches can never deadlock on each other. Two
    ids sharing a key only serialize their batches, never break them.
    """
    salt = int.from_bytes(hashlib.sha256(schema.encode()).digest()[:8], "big")
    keys = {((task_id.int >> 64) ^ salt) for task_id in ids}
    return sorted(k - (1 << 64) if k >= 1 << 63 else k for k in keys)


def notify_payloads(ids: Sequence[UUID]) -> list[str]:
    """Completed ids as comma-separated hex, chunked under the NOTIFY payload limit."""
    return [
        ",".join(task_id.hex for task_id in ids[start : start + _IDS_PER_NOTIFY])
        for start in range(0, len(ids), _IDS_PER_NOTIFY)
    ]


def parse_payload(payload: str) -> list[UUID]:
    """The ids of a NOTIFY payload made by :func:`notify_payloads` (malformed parts skipped)."""
    found: list[UUID] = []
    for part in payload.split(","):
        try:
            found.append(UUID(hex=part))
        except ValueError:
            continue
    return found


def _render(statement: sql.Composable) -> bytes:
    # Identifiers are quoted by psycopg itself; no connection is needed for UTF-8 text.
    return statement.as_bytes(None)


class Statements:
    """Every statement of a store, composed for its schema and rendered to bytes once."""

    def __init__(self, schema: str) -> None:
        table = sql.Identifier(schema, "tasks")
        names = [name for name, _ in COLUMNS]
        cols = sql.SQL(", ").join(sql.Identifier(n) for n in names)
        self.table = table
        self.select_columns = cols
        self.lock = _render(
            sql.SQL("SELECT count(pg_advisory_xact_lock(k)) FROM unnest(%b::bigint[]) AS k")
        )
        self.select_many = _render(
            sql.SQL("SELECT {} FROM {} WHERE id = ANY(%b::uuid[])").format(cols, table)
        )
        self.get = _render(sql.SQL("SELECT {} FROM {} WHERE id = %s").format(cols, table))
        arrays = sql.SQL(", ").join(
            # Binary arrays: far cheaper to build than text ones (no quoting of each element).
            sql.SQL("%b::{}[]").format(sql.SQL(kind))
            for _, kind in COLUMNS
        )
        updates = sql.SQL(", ").join(
            sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(n)) for n in names[1:]
        )
        self.upsert = _render(
            sql.SQL(
                "INSERT INTO {} ({}) SELECT * FROM unnest({}) ON CONFLICT (id) DO UPDATE SET {}"
            ).format(table, cols, arrays, updates)
        )
        # Typed: in INSERT ... SELECT, a NULL parameter would otherwise be taken as text.
        typed_params = sql.SQL(", ").join(
            sql.SQL("%s::{}").format(sql.SQL(kind)) for _, kind in COLUMNS
        )
        # The lock (the same key apply_batch takes) keeps an insert from landing between a
        # batch's read and its write; the CTE runs before the insert needs its row.
        self.insert_if_absent = _render(
            sql.SQL(
                "WITH lock AS (SELECT pg_advisory_xact_lock(%s)) "
                "INSERT INTO {} ({}) SELECT {} FROM lock ON CONFLICT (id) DO NOTHING RETURNING id"
            ).format(table, cols, typed_params)
        )
        self.notify = _render(
            sql.SQL("SELECT count(pg_notify(%s, p)) FROM unnest(%s::text[]) AS p")
        )
        self.delete = _render(sql.SQL("DELETE FROM {} WHERE id = %s").format(table))
        dead = sql.Identifier(schema, "dead_letters")
        self.dead_table = dead
        dead_cols = sql.SQL(", ").join(sql.Identifier(n) for n, _ in DEAD_COLUMNS)
        self.dead_columns = dead_cols
        latest = sql.SQL(", ").join(
            sql.SQL(
                "{0} = CASE WHEN EXCLUDED.last_seen >= {1}.last_seen THEN EXCLUDED.{0} "
                "ELSE {1}.{0} END"
            ).format(sql.Identifier(n), dead)
            for n in DEAD_LATEST
        )
        dead_arrays = sql.SQL(", ").join(
            sql.SQL("%s::{}[]").format(sql.SQL(kind)) for _, kind in DEAD_COLUMNS
        )
        # The fields of whichever record was seen last, the earliest first_seen, the latest
        # last_seen, the greatest count (tacoq.contracts.store.merge_dead_letter).
        self.dead_upsert = _render(
            sql.SQL(
                "INSERT INTO {0} ({1}) SELECT * FROM unnest({2}) ON CONFLICT (id) DO UPDATE "
                "SET {3}, first_seen = LEAST({0}.first_seen, EXCLUDED.first_seen), "
                "last_seen = GREATEST({0}.last_seen, EXCLUDED.last_seen), "
                "count = GREATEST({0}.count, EXCLUDED.count)"
            ).format(dead, dead_cols, dead_arrays, latest)
        )
        self.dead_get = _render(sql.SQL("SELECT {} FROM {} WHERE id = %s").format(dead_cols, dead))
        workers = sql.Identifier(schema, "workers")
        self.workers_table = workers
        self.worker_save = _render(
            sql.SQL(
                "INSERT INTO {} ({}) VALUES (%s, %s, %s::json, %s::json, %s) "
                "ON CONFLICT (name) DO UPDATE SET {}"
            ).format(
                workers,
                sql.SQL(", ").join(sql.Identifier(n) for n in WORKER_COLUMNS),
                sql.SQL(", ").join(
                    sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(n))
                    for n in WORKER_COLUMNS[1:]
                ),
            )
        )
        # One statement: a save of the same worker meanwhile lands wholly before or after it
        # (the row lock orders them), and the announcement is never written here.
        self.worker_touch = _render(
            sql.SQL(
                "UPDATE {} SET heartbeat = %s::json, seen_at = GREATEST(seen_at, %s) "
                "WHERE name = %s"
            ).format(workers)
        )
        self.worker_remove = _render(sql.SQL("DELETE FROM {} WHERE name = %s").format(workers))
        # json::text is the text as it was written; the columns sort by code point (COLLATE C).
        self.worker_list = _render(
            sql.SQL(
                "SELECT name, worker_kind, announcement::text, heartbeat::text, seen_at FROM {} "
                "ORDER BY worker_kind, name"
            ).format(workers)
        )
        self.worker_prune = _render(sql.SQL("DELETE FROM {} WHERE seen_at < %s").format(workers))
        self.cleanup = _render(
            sql.SQL(
                "DELETE FROM {0} WHERE id IN (SELECT id FROM {0} WHERE status = 'COMPLETED' "
                "AND expires_at <= %s ORDER BY expires_at LIMIT %s FOR UPDATE SKIP LOCKED)"
            ).format(table)
        )
