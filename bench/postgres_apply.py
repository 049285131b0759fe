"""One apply measurement, run as ``python -m bench.postgres_apply MODE --tasks N --batch B
--url U --namespace NS``; prints a JSON summary (``updates``, ``elapsed_s``, ``throughput``).

The event stream is what a relay sees: every task's ASSIGNED event (the assignment's copy) and,
one batch later, its COMPLETED event. Batch ``k`` holds the assignments of tasks
``[k*B/2, (k+1)*B/2)`` and the completions of the tasks assigned in batch ``k - 1``, so half of
every batch inserts new rows and half completes existing ones. Every event counts as one
update; ``2 * N`` updates in all. Events and rows are built before the clock starts; the clock
covers the batches only, after one warm-up batch on other ids.

Modes:

- ``tacoq``: ``PostgresStore.apply_batch`` on each batch (merge, upsert, NOTIFY, commit);
- ``executemany``: the baseline: raw psycopg ``executemany`` of a 20-column ``INSERT ... ON
  CONFLICT (id) DO UPDATE`` with the same rows the store writes, one transaction per batch;
- ``unnest``: raw psycopg, per batch one ``INSERT ... SELECT FROM unnest(...)`` of the new rows
  and one ``UPDATE ... FROM unnest(...)`` of the completed ones, one transaction.

The table is TacoQ's own (created by its migrations in the fresh schema), indexes included.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from tacoq.models import Payload, Phase, Task, TaskEvent

MODES = ("tacoq", "executemany", "unnest")
KIND, WORKER_KIND = "noop", "bench"
#: The columns an UPDATE of a completion sets (besides the status), with their array types.
COMPLETION_COLUMNS = (
    ("status", "text"), ("started_at", "timestamptz"), ("completed_at", "timestamptz"),
    ("executed_by", "text"), ("is_error", "boolean"), ("output_type", "text"),
    ("output_data", "bytea"), ("expires_at", "timestamptz"),
)  # fmt: skip


def assigned(task_id: uuid.UUID, index: int, now: datetime) -> TaskEvent:
    """The ASSIGNED event of task ``index`` (a small JSON input, like the demo's)."""
    body = json.dumps({"index": index, "name": f"task-{index}"}).encode()
    return TaskEvent(
        id=task_id, attempt=1, phase=Phase.ASSIGNED, task_kind=KIND, worker_kind=WORKER_KIND,
        priority=index % 10, created_at=now, input=Payload("application/json", body),
    )  # fmt: skip


def completed(task_id: uuid.UUID, index: int, now: datetime) -> TaskEvent:
    """The COMPLETED event of task ``index`` (a small JSON output)."""
    return TaskEvent(
        id=task_id, attempt=1, phase=Phase.COMPLETED, task_kind=KIND, worker_kind=WORKER_KIND,
        executed_by="bench-worker", started_at=now, completed_at=now + timedelta(milliseconds=1),
        output=Payload("application/json", json.dumps({"index": index}).encode()),
    )  # fmt: skip


def event_batches(tasks: int, batch: int) -> list[list[TaskEvent]]:
    """The stream cut into batches: each holds B/2 assignments and B/2 completions."""
    half = max(batch // 2, 1)
    now = datetime.now(UTC)
    ids = [uuid.uuid4() for _ in range(tasks)]
    chunks = [range(start, min(start + half, tasks)) for start in range(0, tasks, half)]
    batches: list[list[TaskEvent]] = []
    for k in range(len(chunks) + 1):
        events = [assigned(ids[i], i, now) for i in chunks[k]] if k < len(chunks) else []
        if k > 0:
            events += [completed(ids[i], i, now) for i in chunks[k - 1]]
        batches.append(events)
    return batches


def rows_of(batches: list[list[TaskEvent]]) -> list[list[Task]]:
    """The row each event leaves behind (the merge rule's), batch by batch."""
    from tacoq.merge import merge

    rows: dict[uuid.UUID, Task] = {}
    result: list[list[Task]] = []
    for events in batches:
        out = []
        for event in events:
            row, _ = merge(rows.get(event.id), event)
            rows[event.id] = row
            out.append(row)
        result.append(out)
    return result


def records(rows: list[Task]) -> list[tuple[Any, ...]]:
    """Rows as tuples in :data:`tacoq_postgres.sql.COLUMNS` order (what the store writes)."""
    from tacoq_postgres.sql import columns_of

    return list(zip(*columns_of(rows), strict=True)) if rows else []


async def tacoq_apply(url: str, namespace: str, batches: list[list[TaskEvent]]) -> float:
    """``PostgresStore.apply_batch`` on every batch; seconds taken."""
    from tacoq_postgres.store import PostgresStore

    store = PostgresStore(url, namespace=namespace)
    await store.connect()
    try:
        for warm in event_batches(len(batches[0]), len(batches[0]))[:2]:
            await store.apply_batch(warm)
        started = time.perf_counter()
        for events in batches:
            await store.apply_batch(events)
        return time.perf_counter() - started
    finally:
        await store.close()


async def raw_apply(url: str, namespace: str, batches: list[list[TaskEvent]], mode: str) -> float:
    """The raw psycopg baselines (``executemany`` or ``unnest``); seconds taken."""
    import psycopg
    from psycopg import sql

    from bench.postgres_common import conninfo_of, create_schema
    from tacoq_postgres.sql import COLUMNS

    schema = await create_schema(url, namespace)
    table = sql.Identifier(schema, "tasks")
    names = [name for name, _ in COLUMNS]
    cols = sql.SQL(", ").join(map(sql.Identifier, names))
    upsert = sql.SQL(
        "INSERT INTO {} ({}) VALUES ({}) ON CONFLICT (id) DO UPDATE SET {}"
    ).format(
        table, cols, sql.SQL(", ").join(sql.Placeholder() * len(names)),
        sql.SQL(", ").join(
            sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(n)) for n in names[1:]
        ),
    )  # fmt: skip
    insert = sql.SQL("INSERT INTO {} ({}) SELECT * FROM unnest({})").format(
        table, cols, sql.SQL(", ").join(sql.SQL("%b::{}[]").format(sql.SQL(k)) for _, k in COLUMNS)
    )
    set_cols = [name for name, _ in COMPLETION_COLUMNS]
    update = sql.SQL(
        "UPDATE {} AS t SET {} FROM unnest(%b::uuid[], {}) AS u(id, {}) WHERE t.id = u.id"
    ).format(
        table,
        sql.SQL(", ").join(sql.SQL("{0} = u.{0}").format(sql.Identifier(n)) for n in set_cols),
        sql.SQL(", ").join(sql.SQL("%b::{}[]").format(sql.SQL(k)) for _, k in COMPLETION_COLUMNS),
        sql.SQL(", ").join(map(sql.Identifier, set_cols)),
    )  # fmt: skip
    index = {name: i for i, name in enumerate(names)}
    prepared: list[tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]] = []
    for rows in rows_of(batches):
        recs = records(rows)
        new = [r for r in recs if r[index["status"]] != "COMPLETED"]
        done = [r for r in recs if r[index["status"]] == "COMPLETED"]
        prepared.append((new, done))

    def columns(recs: list[tuple[Any, ...]], wanted: list[str]) -> list[list[Any]]:
        return [[r[index[name]] for r in recs] for name in wanted]

    async with await psycopg.AsyncConnection.connect(conninfo_of(url)) as conn:
        warm = records([row for rows in rows_of(event_batches(4, 4)) for row in rows])
        async with conn.transaction():
            await conn.cursor().executemany(upsert, warm)
        started = time.perf_counter()
        for new, done in prepared:
            async with conn.transaction():
                cur = conn.cursor(binary=True)
                if mode == "executemany":
                    await cur.executemany(upsert, new + done)
                else:
                    async with conn.pipeline():
                        if new:
                            await cur.execute(insert, columns(new, names))
                        if done:
                            await cur.execute(update, columns(done, ["id", *set_cols]))
        return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    """Measure one mode and print its JSON summary."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("mode", choices=MODES)
    parser.add_argument("--tasks", type=int, required=True)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--url", required=True)
    parser.add_argument("--namespace", required=True)
    args = parser.parse_args(argv)
    batches = event_batches(args.tasks, args.batch)
    if args.mode == "tacoq":
        elapsed = asyncio.run(tacoq_apply(args.url, args.namespace, batches))
    else:
        elapsed = asyncio.run(raw_apply(args.url, args.namespace, batches, args.mode))
    updates = sum(len(events) for events in batches)
    print(json.dumps({"updates": updates, "elapsed_s": elapsed, "throughput": updates / elapsed}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
