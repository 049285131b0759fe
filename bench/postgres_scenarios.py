"""The Postgres scenarios: ``postgres-apply`` and ``postgres-wait`` (issue 4 point 10). Both
skip with a clear row when PostgreSQL is unreachable; each measurement runs in a schema of its
own, dropped afterwards."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

from bench.harness import (
    MeasurementError,
    Sample,
    Scenario,
    Settings,
    Variant,
    parse_json_summary,
    python_command,
    run_pinned,
    throughput_of,
)
from bench.postgres_common import drop_schema, fresh_namespace, postgres_url, require_postgres

#: Tasks per apply sample: at least this many (so at least 10,000 updates) ...
MIN_APPLY_TASKS = 5_000
#: ... and at most this many, whatever ``--tasks`` says (bounded run time).
MAX_APPLY_TASKS = 50_000
#: Waits measured per wait sample (issue 4 asks for p50 and p99 over at least 300).
WAIT_SAMPLES = 300


def apply_tasks(settings: Settings) -> int:
    """How many tasks (two updates each) one apply sample uses."""
    return min(max(settings.tasks, MIN_APPLY_TASKS), MAX_APPLY_TASKS)


def _apply(mode: str, batch: int) -> Callable[[Settings], float]:
    def measure(settings: Settings) -> float:
        url = postgres_url()
        require_postgres(url)
        namespace = fresh_namespace("apply")
        argv = python_command(
            "bench.postgres_apply", mode, "--tasks", str(apply_tasks(settings)),
            "--batch", str(batch), "--url", url, "--namespace", namespace,
        )  # fmt: skip
        try:
            out = run_pinned(argv, settings.timeout_s)
            return throughput_of(parse_json_summary(out, ("updates", "throughput")))
        finally:
            with contextlib.suppress(Exception):
                drop_schema(url, namespace)

    return measure


def _wait(mode: str) -> Callable[[Settings], Sample]:
    def measure(settings: Settings) -> Sample:
        url = postgres_url()
        require_postgres(url)
        namespace = fresh_namespace("wait")
        argv = python_command(
            "bench.postgres_wait", mode, "--samples", str(WAIT_SAMPLES),
            "--url", url, "--namespace", namespace,
        )  # fmt: skip
        try:
            out = run_pinned(argv, settings.timeout_s)
            summary = parse_json_summary(out, ("samples", "p50_ms", "p99_ms", "commit_p50_ms"))
        finally:
            with contextlib.suppress(Exception):
                drop_schema(url, namespace)
        if summary["samples"] != WAIT_SAMPLES:
            raise MeasurementError(f"asked for {WAIT_SAMPLES} waits, got {summary['samples']}")
        notes = {
            "p99 ms": float(summary["p99_ms"]),
            "commit call p50 ms": float(summary["commit_p50_ms"]),
        }
        return Sample(float(summary["p50_ms"]) * 1000, notes)

    return measure


POSTGRES_APPLY = Scenario(
    name="postgres-apply",
    description=(
        "Updates/s applied to a fresh schema by one process pinned to one core, over "
        "max(N, 5,000) tasks (at most 50,000), two updates each as a relay sees them: every "
        "batch holds B/2 tasks' ASSIGNED events (new rows) and the COMPLETED events of the "
        "B/2 tasks assigned in the batch before; events and rows are built before the clock "
        "starts. `PostgresStore.apply_batch` (merge per id, advisory locks, one unnest upsert, "
        "NOTIFY, commit) against raw psycopg `executemany` of the same 20-column rows as "
        "`INSERT ... ON CONFLICT (id) DO UPDATE`, 1,000 rows per transaction, into the same "
        "table (TacoQ's migrations, indexes included). Beside them, raw psycopg with one "
        "`INSERT ... SELECT FROM unnest(...)` of the new rows and one `UPDATE ... FROM "
        "unnest(...)` of the completed ones per 1,000-row transaction."
    ),
    unit="updates/s",
    candidates=(
        Variant(
            "tacoq PostgresStore.apply_batch (batches of 500)", _apply("tacoq", 500), tacoq=True
        ),
        Variant(
            "tacoq PostgresStore.apply_batch (batches of 1,000)",
            _apply("tacoq", 1000),
            tacoq=True,
        ),
        Variant("raw psycopg INSERT/UPDATE FROM unnest (1,000 rows)", _apply("unnest", 1000)),
    ),
    baseline=Variant("raw psycopg executemany upsert (1,000 rows)", _apply("executemany", 1000)),
)

POSTGRES_WAIT = Scenario(
    name="postgres-wait",
    description=(
        f"Latency (p50 of {WAIT_SAMPLES} tasks, one at a time, after 20 warm-up ones; µs) from "
        "a commit to a waiter on another connection seeing it, one process pinned to one core. "
        "TacoQ: from just before a writer `PostgresStore.apply_batch([COMPLETED])` call until "
        "`wait(id)` on a SECOND store instance (its own LISTEN connection) returns the completed "
        "row (woken by the batch's NOTIFY, then reading the row). Baseline: raw psycopg, from "
        "just before `SELECT pg_notify(...)` on an autocommit connection until another "
        "connection's `notifies()` yields it. Notes: p99 in ms, and how long the committing "
        "call itself took (p50, ms; the store's commit writes a row and flushes WAL, the raw "
        "NOTIFY writes nothing). A ratio above 1 means slower than the baseline."
    ),
    unit="µs",
    candidates=(
        Variant("tacoq PostgresStore.wait on a 2nd store (p50)", _wait("tacoq"), tacoq=True),
    ),
    baseline=Variant("raw psycopg LISTEN/NOTIFY (p50)", _wait("notify")),
)
