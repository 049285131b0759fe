"""The ``sqlite:///PATH`` store: stdlib sqlite3, durable across processes, off the event loop.

Every call runs on one dedicated thread that owns the connection (a single-worker executor), so
the event loop never blocks on the disk. The database runs in WAL mode with a busy timeout;
each namespace gets tables of its own (``tacoq_tasks_<sanitized namespace>_<hash>``, and
``tacoq_dead_...`` and ``tacoq_workers_...`` likewise), created on connect (so a database made
by an earlier version gains the newer tables when it is opened). Timestamps are stored as
integer microseconds since the epoch (exact, UTC) and payloads as BLOBs (exact bytes).
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import hashlib
import json
import os
import re
import sqlite3
import urllib.parse
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar
from uuid import UUID

from tacoq.builtin.memory_store import wake
from tacoq.contracts.broker import Health, check_not_connected
from tacoq.contracts.cursors import decode_cursor, micros
from tacoq.contracts.store import (
    BatchResult,
    DeadLetterFilter,
    DeadLetterPage,
    DeadLetterRecord,
    Store,
    TaskFilter,
    TaskPage,
    kinds_named,
)
from tacoq.errors import ConfigError, StoreUnavailable
from tacoq.model.merge import MergeCounts, fold_batch, merge
from tacoq.model.task import ErrorInfo, Payload, Phase, Task, TaskEvent, TaskStatus
from tacoq.model.workers import Announcement, Heartbeat, WorkerRecord

__all__ = ["SqliteStore", "sqlite_path", "table_name"]

T = TypeVar("T")

#: Rows selected per ``IN (...)`` query (well under SQLite's bound-parameter limit).
SELECT_CHUNK = 500
#: Bounds of :meth:`SqliteStore.wait`'s poll for completions written by other processes.
POLL_FIRST, POLL_MAX = 0.05, 0.5

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_COLUMNS = [
    "id", "task_kind", "worker_kind", "status", "priority", "attempt", "ttl", "is_error",
    "error_type", "error_message", "error_traceback", "input_type", "input_data", "output_type",
    "output_data", "created_at", "started_at", "completed_at", "executed_by", "expires_at",
]  # fmt: skip
_SELECT = ", ".join(_COLUMNS[:-1])

# The single process-wide set of open stores by (database file, table): an apply_batch wakes
# the waiters of every store of the same table in this process at once.
_OPEN: dict[tuple[str, str], set[SqliteStore]] = {}


def sqlite_path(url: str) -> str:
    """The file of ``sqlite:///relative/path`` or ``sqlite:////absolute/path``."""
    if not url.startswith("sqlite:///") or "?" in url or "#" in url:
        raise ConfigError(
            f"invalid SQLite store URL {url!r}: use sqlite:///relative/path or "
            "sqlite:////absolute/path (no query string)"
        )
    path = url[len("sqlite:///") :]
    if not path or path.endswith("/"):
        raise ConfigError(f"the SQLite store URL {url!r} names no database file")
    return path


def table_name(namespace: str, what: str = "tasks") -> str:
    """The table of a namespace (``what``: ``tasks``, ``dead`` or ``workers``): sanitized for
    SQL, with a hash so distinct names never clash."""
    safe = re.sub(r"[^A-Za-z0-9_]", "_", namespace)[:40]
    digest = hashlib.sha256(namespace.encode()).hexdigest()[:8]
    return f"tacoq_{what}_{safe}_{digest}"


_DEAD_COLUMNS = [
    "id", "origin", "reason", "headers", "content_type", "body", "body_size", "task_id",
    "first_seen", "last_seen", "count",
]  # fmt: skip
#: On a second record of one id: the fields of whichever was seen last, the earliest
#: first_seen, the latest last_seen, the greatest count (tacoq.contracts.store.merge_dead_letter).
_DEAD_LATEST = ("origin", "reason", "headers", "content_type", "body", "body_size", "task_id")


def _encode_dead(record: DeadLetterRecord) -> tuple[Any, ...]:
    return (
        str(record.id), record.origin, record.reason, json.dumps(record.headers),
        record.content_type, record.body, record.body_size,
        None if record.task_id is None else str(record.task_id),
        micros(record.first_seen), micros(record.last_seen), record.count,
    )  # fmt: skip


def _decode_dead(r: Sequence[Any]) -> DeadLetterRecord:
    return DeadLetterRecord(
        id=UUID(r[0]), origin=r[1], reason=r[2], headers=json.loads(r[3]), content_type=r[4],
        body=bytes(r[5]), body_size=r[6], task_id=None if r[7] is None else UUID(r[7]),
        first_seen=_EPOCH + timedelta(microseconds=r[8]),
        last_seen=_EPOCH + timedelta(microseconds=r[9]), count=r[10],
    )  # fmt: skip


_WORKER_COLUMNS = ["name", "worker_kind", "announcement", "heartbeat", "seen_at"]


def _encode_worker(record: WorkerRecord) -> tuple[Any, ...]:
    # The announcement and the heartbeat are kept apart (JSON text each): a heartbeat writes
    # its own column and never the announcement, which may be large and newer.
    announcement, heartbeat = record.announcement, record.heartbeat
    return (
        record.name,
        record.worker_kind,
        None if announcement is None else announcement.model_dump_json(),
        None if heartbeat is None else heartbeat.model_dump_json(),
        micros(record.seen_at),
    )


def _decode_worker(r: Sequence[Any]) -> WorkerRecord:
    return WorkerRecord(
        name=r[0],
        worker_kind=r[1],
        announcement=None if r[2] is None else Announcement.model_validate_json(r[2]),
        heartbeat=None if r[3] is None else Heartbeat.model_validate_json(r[3]),
        seen_at=_EPOCH + timedelta(microseconds=r[4]),
    )


def _us(moment: datetime | None) -> int | None:
    return None if moment is None else micros(moment)


def _dt(value: int | None) -> datetime | None:
    return None if value is None else _EPOCH + timedelta(microseconds=value)


def _encode(row: Task) -> tuple[Any, ...]:
    err, data_in, data_out = row.error, row.input, row.output
    completed = _us(row.completed_at)
    return (
        str(row.id), row.task_kind, row.worker_kind, row.status.value, row.priority, row.attempt,
        row.ttl, int(row.is_error),
        *((None, None, None) if err is None else (err.type, err.message, err.traceback)),
        *((None, None) if data_in is None else (data_in.content_type, data_in.data)),
        *((None, None) if data_out is None else (data_out.content_type, data_out.data)),
        _us(row.created_at), _us(row.started_at), completed, row.executed_by,
        None if completed is None else completed + row.ttl * 1_000_000,
    )  # fmt: skip


def _decode(r: Sequence[Any]) -> Task:
    return Task(
        id=UUID(r[0]), task_kind=r[1], worker_kind=r[2], status=TaskStatus(r[3]), priority=r[4],
        attempt=r[5], ttl=r[6], is_error=bool(r[7]),
        error=None if r[8] is None else ErrorInfo(r[8], r[9], r[10]),
        input=None if r[11] is None else Payload(r[11], bytes(r[12])),
        output=None if r[13] is None else Payload(r[13], bytes(r[14])),
        created_at=_dt(r[15]), started_at=_dt(r[16]), completed_at=_dt(r[17]), executed_by=r[18],
    )  # fmt: skip


def _is_locked(exc: sqlite3.Error) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text


def _dead_where(filters: DeadLetterFilter | None) -> tuple[list[str], list[Any]]:
    where: list[str] = []
    params: list[Any] = []
    if filters is not None:
        if filters.origin is not None:
            where.append("origin = ?")
            params.append(filters.origin)
        if filters.reason is not None:
            where.append("instr(reason, ?) > 0")
            params.append(filters.reason)
        if filters.task_id is not None:
            where.append("task_id = ?")
            params.append(str(filters.task_id))
    return where, params


def _decode_text(data: bytes) -> str:
    return data.decode("utf-8", "surrogateescape")


class SqliteStore(Store):
    """A durable store in one SQLite file, shared safely by several processes.

    :meth:`wait` is woken at once by an ``apply_batch`` of any store of the same file and
    namespace in this process; a completion written by another process is seen by a bounded
    poll that starts at 50 ms and doubles up to 500 ms (the only polling this store does).
    """

    #: How long SQLite itself waits for a lock before failing a statement (milliseconds).
    busy_timeout_ms: int = 5000
    #: How many times a whole operation is tried while the database stays locked.
    lock_retries: int = 5

    def __init__(self, url: str, *, namespace: str) -> None:
        super().__init__(url, namespace=namespace)
        self.path = sqlite_path(url)
        self.table = table_name(namespace)
        self._conn: sqlite3.Connection | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._key: tuple[str, str] | None = None
        self._waiters: dict[UUID, set[asyncio.Future[None]]] = {}
        q = f'"{self.table}"'
        names = ", ".join(_COLUMNS)
        marks = ", ".join("?" * len(_COLUMNS))
        updates = ", ".join(f"{c} = excluded.{c}" for c in _COLUMNS[1:])
        self._sql_upsert = (
            f"INSERT INTO {q} ({names}) VALUES ({marks}) ON CONFLICT(id) DO UPDATE SET {updates}"
        )
        self._sql_insert = f"INSERT INTO {q} ({names}) VALUES ({marks}) ON CONFLICT(id) DO NOTHING"
        self._sql_get = f"SELECT {_SELECT} FROM {q} WHERE id = ?"
        self.dead_table = table_name(namespace, "dead")
        d = f'"{self.dead_table}"'
        newer = f"excluded.last_seen >= {d}.last_seen"
        latest = ", ".join(
            f"{c} = CASE WHEN {newer} THEN excluded.{c} ELSE {d}.{c} END" for c in _DEAD_LATEST
        )
        self._sql_dead_upsert = (
            f"INSERT INTO {d} ({', '.join(_DEAD_COLUMNS)}) VALUES "
            f"({', '.join('?' * len(_DEAD_COLUMNS))}) ON CONFLICT(id) DO UPDATE SET {latest}, "
            f"first_seen = min({d}.first_seen, excluded.first_seen), "
            f"last_seen = max({d}.last_seen, excluded.last_seen), "
            f"count = max({d}.count, excluded.count)"
        )
        self.workers_table = table_name(namespace, "workers")
        w = f'"{self.workers_table}"'
        self._sql_worker_save = (
            f"INSERT INTO {w} ({', '.join(_WORKER_COLUMNS)}) VALUES "
            f"({', '.join('?' * len(_WORKER_COLUMNS))}) ON CONFLICT(name) DO UPDATE SET "
            + ", ".join(f"{c} = excluded.{c}" for c in _WORKER_COLUMNS[1:])
        )
        self._sql_worker_touch = (
            f"UPDATE {w} SET heartbeat = ?, seen_at = MAX(seen_at, ?) WHERE name = ?"
        )
        self._sql_worker_list = (
            f"SELECT {', '.join(_WORKER_COLUMNS)} FROM {w} ORDER BY worker_kind, name"
        )
        self._sql_schema = [
            f"CREATE TABLE IF NOT EXISTS {q} (id TEXT PRIMARY KEY, task_kind TEXT NOT NULL, "
            "worker_kind TEXT NOT NULL, status TEXT NOT NULL, priority INTEGER NOT NULL, "
            "attempt INTEGER NOT NULL, ttl INTEGER NOT NULL, is_error INTEGER NOT NULL, "
            "error_type TEXT, error_message TEXT, error_traceback TEXT, input_type TEXT, "
            "input_data BLOB, output_type TEXT, output_data BLOB, created_at INTEGER, "
            "started_at INTEGER, completed_at INTEGER, executed_by TEXT, expires_at INTEGER)",
            f'CREATE INDEX IF NOT EXISTS "{self.table}_created" ON {q} (created_at DESC, id DESC)',
            f'CREATE INDEX IF NOT EXISTS "{self.table}_expires" ON {q} (expires_at) '
            "WHERE status = 'COMPLETED'",
            f"CREATE TABLE IF NOT EXISTS {d} (id TEXT PRIMARY KEY, origin TEXT NOT NULL, "
            "reason TEXT NOT NULL, headers TEXT NOT NULL, content_type TEXT NOT NULL, "
            "body BLOB NOT NULL, body_size INTEGER NOT NULL, task_id TEXT, "
            "first_seen INTEGER NOT NULL, last_seen INTEGER NOT NULL, count INTEGER NOT NULL)",
            f'CREATE INDEX IF NOT EXISTS "{self.dead_table}_seen" ON {d} (last_seen DESC, id DESC)',
            # Text sorts as UTF-8 bytes (BINARY), which is code point order, as in Python.
            f"CREATE TABLE IF NOT EXISTS {w} (name TEXT PRIMARY KEY, worker_kind TEXT NOT NULL, "
            "announcement TEXT, heartbeat TEXT, seen_at INTEGER NOT NULL)",
            f'CREATE INDEX IF NOT EXISTS "{self.workers_table}_seen" ON {w} (seen_at)',
        ]

    @property
    def closed(self) -> bool:
        """True before :meth:`connect` and after :meth:`close`."""
        return self._executor is None

    # -- the thread that owns the connection ----------------------------------------------------

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn`` on the store's thread; retry a locked database, map failures."""
        delay = 0.05
        for attempt in range(self.lock_retries):
            executor = self._executor
            if executor is None:
                raise StoreUnavailable(f"the SQLite store {self.path!r} is not connected")
            try:
                return await asyncio.get_running_loop().run_in_executor(executor, fn, *args)
            except sqlite3.DatabaseError as exc:
                if isinstance(exc, sqlite3.IntegrityError | sqlite3.ProgrammingError):
                    raise
                if _is_locked(exc) and attempt < self.lock_retries - 1:
                    await asyncio.sleep(delay)
                    delay *= 2
                    continue
                raise StoreUnavailable(f"the SQLite store {self.path!r} failed: {exc}") from exc
            except RuntimeError as exc:  # the executor was shut down by close()
                raise StoreUnavailable(f"the SQLite store {self.path!r} is closed") from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise sqlite3.OperationalError("connection is closed")
        return self._conn

    def _open_sync(self) -> str:
        """Open the connection and create the schema; the database file's real path."""
        if self._conn is None:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            timeout = self.busy_timeout_ms / 1000
            conn = sqlite3.connect(self.path, timeout=timeout, isolation_level=None)
            # Text another program wrote that is not UTF-8 loads (each bad byte a lone
            # surrogate, shown escaped by the relay's API) instead of failing the whole read.
            conn.text_factory = _decode_text
            try:
                conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_ms)}")
                conn.execute("PRAGMA journal_mode = WAL")
                # In WAL mode, NORMAL keeps every commit across a process crash (an OS crash or
                # power loss may lose the last transactions) and fsyncs only at checkpoints.
                conn.execute("PRAGMA synchronous = NORMAL")
            except BaseException:
                conn.close()
                raise
            self._conn = conn
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in self._sql_schema:
                conn.execute(statement)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return os.path.realpath(self.path)

    def _select_sync(self, ids: Sequence[UUID]) -> dict[UUID, Task]:
        conn = self._connection()
        rows: dict[UUID, Task] = {}
        keys = [str(task_id) for task_id in ids]
        for start in range(0, len(keys), SELECT_CHUNK):
            chunk = keys[start : start + SELECT_CHUNK]
            sql = (
                f'SELECT {_SELECT} FROM "{self.table}" WHERE id IN ({", ".join("?" * len(chunk))})'
            )
            for record in conn.execute(sql, chunk):
                task = _decode(record)
                rows[task.id] = task
        return rows

    def _apply_sync(self, events: Sequence[TaskEvent]) -> tuple[MergeCounts, list[UUID]]:
        conn = self._connection()
        conn.execute("BEGIN IMMEDIATE")  # take the write lock first: read-merge-write is atomic
        try:
            rows = self._select_sync(list(dict.fromkeys(event.id for event in events)))
            changed, counts = fold_batch(events, rows)
            if changed:
                conn.executemany(self._sql_upsert, [_encode(row) for row in changed.values()])
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        completed = [
            task_id
            for task_id, row in changed.items()
            if row.is_completed and not ((before := rows.get(task_id)) and before.is_completed)
        ]
        return counts, completed

    def _execute_sync(self, sql: str, params: Sequence[Any]) -> int:
        return self._connection().execute(sql, params).rowcount

    def _fetch_sync(self, sql: str, params: Sequence[Any]) -> list[Task]:
        return [_decode(record) for record in self._connection().execute(sql, params)]

    def _executemany_sync(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        conn = self._connection()
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.executemany(sql, rows)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def _fetch_dead_sync(self, sql: str, params: Sequence[Any]) -> list[DeadLetterRecord]:
        return [_decode_dead(record) for record in self._connection().execute(sql, params)]

    def _fetch_workers_sync(self, sql: str, params: Sequence[Any]) -> list[WorkerRecord]:
        return [_decode_worker(record) for record in self._connection().execute(sql, params)]

    def _close_sync(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    # -- the store contract ---------------------------------------------------------------------

    async def connect(self) -> None:
        """Open the database file (creating it and the namespace's table if needed)."""
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="tacoq-sqlite")
        try:
            real_path = await self._run(self._open_sync)
        except StoreUnavailable:
            await self.close()
            raise
        except OSError as exc:
            await self.close()
            raise StoreUnavailable(f"cannot open the SQLite store {self.path!r}: {exc}") from exc
        self._key = (real_path, self.table)
        _OPEN.setdefault(self._key, set()).add(self)

    async def apply_batch(self, events: Sequence[TaskEvent]) -> BatchResult:
        """Fold the batch onto the stored rows in one transaction; write only changed rows."""
        if not events:
            return BatchResult()
        counts, completed = await self._run(self._apply_sync, events)
        stats = self.stats
        stats.batches += 1
        stats.events += len(events)
        stats.duplicate_completions += counts.duplicate_completions
        stats.conflicting_completions += counts.conflicting_completions
        if completed and self._key is not None:
            for store in _OPEN.get(self._key, ()):
                store._notify(completed)
        return BatchResult(counts=counts, completed=completed)

    def _notify(self, completed: Sequence[UUID]) -> None:
        for task_id in completed:
            waiting = self._waiters.pop(task_id, None)
            if waiting:
                wake(waiting)

    async def insert_if_absent(self, event: TaskEvent) -> bool:
        """Create the row of an ASSIGNED event unless the id exists; True when it was new."""
        if event.phase is not Phase.ASSIGNED:
            raise ValueError(f"insert_if_absent takes an ASSIGNED event, not {event.phase.name}")
        row = _encode(merge(None, event)[0])
        return await self._run(self._execute_sync, self._sql_insert, row) == 1

    async def delete(self, task_id: UUID) -> bool:
        """Delete one task's row; True if it existed."""
        sql = f'DELETE FROM "{self.table}" WHERE id = ?'
        return await self._run(self._execute_sync, sql, (str(task_id),)) > 0

    async def get(self, task_id: UUID) -> Task | None:
        """The task's row, or ``None``."""
        found = await self._run(self._fetch_sync, self._sql_get, (str(task_id),))
        return found[0] if found else None

    async def wait(self, task_id: UUID, timeout: float) -> Task | None:
        """Wait until the task completes or ``timeout`` passes; return its current row.

        Woken at once by this process's ``apply_batch``; polls (50 ms doubling to 500 ms) for
        completions committed by other processes.
        """
        if self._executor is None:
            raise StoreUnavailable(f"the SQLite store {self.path!r} is not connected")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        interval = POLL_FIRST
        row: Task | None = None
        while True:
            future: asyncio.Future[None] = loop.create_future()
            self._waiters.setdefault(task_id, set()).add(future)
            try:
                if self.closed:
                    return row
                row = await self.get(task_id)
                remaining = deadline - loop.time()
                if (row is not None and row.is_completed) or remaining <= 0:
                    return row
                await asyncio.wait((future,), timeout=min(interval, remaining))
                interval = min(interval * 2, POLL_MAX)
            finally:
                waiting = self._waiters.get(task_id)
                if waiting is not None:
                    waiting.discard(future)
                    if not waiting:
                        del self._waiters[task_id]

    async def list(
        self, filters: TaskFilter | None = None, *, cursor: str | None = None, limit: int = 50
    ) -> TaskPage:
        """Tasks matching ``filters``, newest ``created_at`` first (ties by id, descending)."""
        where: list[str] = []
        params: list[Any] = []
        if filters is not None:
            for column, value in (
                ("status", None if filters.status is None else filters.status.value),
                ("task_kind", filters.task_kind),
                ("worker_kind", filters.worker_kind),
            ):
                if value is not None:
                    where.append(f"{column} = ?")
                    params.append(value)
        if cursor is not None:
            created, after_id = decode_cursor(cursor)
            if created is None:
                where.append("(created_at IS NULL AND id < ?)")
                params.append(str(after_id))
            else:
                where.append(
                    "(created_at < ? OR (created_at = ? AND id < ?) OR created_at IS NULL)"
                )
                params += [created, created, str(after_id)]
        sql = f'SELECT {_SELECT} FROM "{self.table}"'
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY created_at DESC, id DESC LIMIT ?"
        params.append(max(limit, 0) + 1)
        page = await self._run(self._fetch_sync, sql, params)
        return TaskPage.of(page, limit)

    async def cleanup(self, now: datetime, limit: int = 1000) -> int:
        """Delete up to ``limit`` completed tasks whose ``completed_at + ttl`` is not after now."""
        q = f'"{self.table}"'
        sql = (
            f"DELETE FROM {q} WHERE id IN (SELECT id FROM {q} WHERE status = 'COMPLETED' "
            "AND expires_at <= ? ORDER BY expires_at LIMIT ?)"
        )
        deleted = await self._run(self._execute_sync, sql, (micros(now), max(limit, 0)))
        self.stats.deleted += deleted
        return deleted

    # -- dead letters ----------------------------------------------------------------------------

    async def record_dead_letters(self, letters: Sequence[DeadLetterRecord]) -> None:
        """Insert or update dead-letter records in one transaction."""
        if letters:
            rows = [_encode_dead(letter) for letter in letters]
            await self._run(self._executemany_sync, self._sql_dead_upsert, rows)
            self.stats.dead_letters_recorded += len(letters)

    async def get_dead_letter(self, letter_id: UUID) -> DeadLetterRecord | None:
        """The dead letter of that id, or ``None``."""
        sql = f'SELECT {", ".join(_DEAD_COLUMNS)} FROM "{self.dead_table}" WHERE id = ?'
        found = await self._run(self._fetch_dead_sync, sql, (str(letter_id),))
        return found[0] if found else None

    async def list_dead_letters(
        self,
        filters: DeadLetterFilter | None = None,
        *,
        cursor: str | None = None,
        limit: int = 50,
    ) -> DeadLetterPage:
        """Dead letters matching ``filters``, newest ``last_seen`` first (ties by id)."""
        where, params = _dead_where(filters)
        if cursor is not None:
            seen, after_id = decode_cursor(cursor)
            where.append("(last_seen < ? OR (last_seen = ? AND id < ?))")
            params += [seen or 0, seen or 0, str(after_id)]
        sql = f'SELECT {", ".join(_DEAD_COLUMNS)} FROM "{self.dead_table}"'
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY last_seen DESC, id DESC LIMIT ?"
        params.append(max(limit, 0) + 1)
        page = await self._run(self._fetch_dead_sync, sql, params)
        return DeadLetterPage.of(page, limit)

    async def remove_dead_letter(self, letter_id: UUID, *, count: int | None = None) -> bool:
        """Delete one dead letter (only while its count is ``count``, when given)."""
        sql = f'DELETE FROM "{self.dead_table}" WHERE id = ?'
        params: list[Any] = [str(letter_id)]
        if count is not None:
            sql += " AND count = ?"
            params.append(count)
        return await self._run(self._execute_sync, sql, params) > 0

    async def purge_dead_letters(self, filters: DeadLetterFilter | None = None) -> int:
        """Delete every dead letter matching ``filters``."""
        where, params = _dead_where(filters)
        sql = f'DELETE FROM "{self.dead_table}"'
        if where:
            sql += " WHERE " + " AND ".join(where)
        return await self._run(self._execute_sync, sql, params)

    # -- workers online --------------------------------------------------------------------------

    async def save_worker(self, record: WorkerRecord) -> None:
        """Keep ``record`` as its worker's state (one upsert)."""
        await self._run(self._execute_sync, self._sql_worker_save, _encode_worker(record))

    async def touch_worker(self, heartbeat: Heartbeat, seen_at: datetime) -> bool:
        """Set the worker's last heartbeat and ``seen_at`` in one statement (the announcement
        is another column: a newer one saved meanwhile stays); False when no such worker."""
        params = (heartbeat.model_dump_json(), micros(seen_at), heartbeat.name)
        return await self._run(self._execute_sync, self._sql_worker_touch, params) > 0

    async def remove_worker(self, name: str) -> bool:
        """Forget the worker ``name``; True when one was kept."""
        sql = f'DELETE FROM "{self.workers_table}" WHERE name = ?'
        return await self._run(self._execute_sync, sql, (name,)) > 0

    async def list_workers(self) -> builtins.list[WorkerRecord]:
        """Every worker kept, by worker kind then name (code point order)."""
        return await self._run(self._fetch_workers_sync, self._sql_worker_list, ())

    async def prune_workers(self, seen_before: datetime) -> int:
        """Forget the workers last heard from before ``seen_before``."""
        sql = f'DELETE FROM "{self.workers_table}" WHERE seen_at < ?'
        return await self._run(self._execute_sync, sql, (micros(seen_before),))

    # -- namespace maintenance ------------------------------------------------------------------

    def _existing_sync(self) -> tuple[sqlite3.Connection, builtins.list[str]] | None:
        """A connection to the database file and the namespace's tables in it, or ``None``
        when the file does not exist (opened read-write, never created)."""
        if not os.path.exists(self.path):
            return None
        uri = "file:" + urllib.parse.quote(os.path.abspath(self.path)) + "?mode=rw"
        conn = sqlite3.connect(uri, uri=True, timeout=self.busy_timeout_ms / 1000)
        conn.isolation_level = None
        conn.text_factory = _decode_text
        tables = (self.table, self.dead_table, self.workers_table)
        try:
            found = {
                name
                for (name,) in conn.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table' AND name IN (?, ?, ?)",
                    tables,
                )
            }
        except BaseException:
            conn.close()
            raise
        return conn, [name for name in tables if name in found]

    def _worker_kinds_sync(self) -> builtins.list[str]:
        existing = self._existing_sync()
        if existing is None:
            return []
        conn, tables = existing
        with contextlib.closing(conn):
            tasks: builtins.list[str] = []
            origins: builtins.list[str] = []
            if self.table in tables:
                tasks = [
                    r[0] for r in conn.execute(f'SELECT DISTINCT worker_kind FROM "{self.table}"')
                ]
            if self.dead_table in tables:
                origins = [
                    r[0] for r in conn.execute(f'SELECT DISTINCT origin FROM "{self.dead_table}"')
                ]
            if self.workers_table in tables:
                query = f'SELECT DISTINCT worker_kind FROM "{self.workers_table}"'
                tasks += [r[0] for r in conn.execute(query)]
        return kinds_named(tasks, origins)

    def _delete_sync(self) -> builtins.list[str]:
        existing = self._existing_sync()
        if existing is None:
            return []
        conn, tables = existing
        with contextlib.closing(conn):
            conn.execute("BEGIN IMMEDIATE")
            try:
                for name in tables:  # its indexes go with it
                    conn.execute(f'DROP TABLE IF EXISTS "{name}"')
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        return [f"table {name}" for name in tables]

    async def _maintain(self, fn: Callable[[], T]) -> T:
        """Run a maintenance function on a thread of its own; failures become
        :class:`StoreUnavailable`."""
        try:
            return await asyncio.to_thread(fn)
        except (sqlite3.Error, OSError) as exc:
            raise StoreUnavailable(f"the SQLite store {self.path!r} failed: {exc}") from exc

    async def worker_kinds(self) -> builtins.list[str]:
        """The worker kinds of the namespace's tables (none when the file or tables do not
        exist; nothing is created)."""
        return await self._maintain(self._worker_kinds_sync)

    async def delete_namespace(self) -> builtins.list[str]:
        """Drop the namespace's tables (tasks, dead letters, workers; the database file stays:
        other namespaces may share it); nothing when they do not exist."""
        check_not_connected(not self.closed, f"the SQLite store {self.path!r}")
        return await self._maintain(self._delete_sync)

    async def health(self) -> Health:
        """Whether the database file answers a query."""
        try:
            await self._run(self._execute_sync, "SELECT 1", ())
        except StoreUnavailable as exc:
            return Health(False, str(exc))
        return Health(True, f"sqlite {self.path}")

    async def close(self) -> None:
        """Wake every waiter, close the connection and stop the store's thread."""
        if self._key is not None:
            _OPEN.get(self._key, set()).discard(self)
            if not _OPEN.get(self._key):
                _OPEN.pop(self._key, None)
            self._key = None
        executor, self._executor = self._executor, None
        for waiting in self._waiters.values():
            wake(waiting)
        self._waiters.clear()
        if executor is not None:
            try:
                await asyncio.get_running_loop().run_in_executor(executor, self._close_sync)
            finally:
                executor.shutdown(wait=False)
