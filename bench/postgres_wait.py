"""One wait-latency measurement, run as ``python -m bench.postgres_wait MODE --samples S --url U
--namespace NS``; prints a JSON summary (``samples``, ``p50_ms``, ``p99_ms``, ...).

Each sample is one task, one at a time, 10 ms apart (so every sample starts from idle):

- ``tacoq``: a writer ``PostgresStore`` applies the task's ASSIGNED event; a waiter on ANOTHER
  ``PostgresStore`` instance (its own pool and LISTEN connection) calls ``wait(id)`` and is
  given 10 ms to park (register, read the PENDING row, wait). **The clock starts** just before
  the writer's ``apply_batch([COMPLETED])`` call (so the commit is inside the measurement) and
  **ends** when the waiter's ``wait`` returns the completed row: woken by the NOTIFY of the
  writer's commit, it reads the row again.
- ``notify``: the baseline: raw psycopg, one autocommit connection ``LISTEN``s and iterates
  ``notifies()``; **the clock starts** just before another autocommit connection executes
  ``NOTIFY`` (committed when the call returns) and **ends** when the listening connection yields
  the notification.

Both run in one process on one event loop; the first 20 samples are a warm-up, not counted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
import uuid
from typing import Any

from bench.postgres_apply import assigned, completed

MODES = ("tacoq", "notify")
WARMUP = 20
PARK_S = 0.01


def percentile(values: list[float], fraction: float) -> float:
    """The ``fraction`` quantile of ``values`` (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


def summary(latencies: list[float], **extra: float) -> dict[str, Any]:
    """Latencies in seconds as a summary in milliseconds."""
    return {
        "samples": len(latencies),
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
        "max_ms": max(latencies) * 1000,
        **extra,
    }


async def tacoq_wait(url: str, namespace: str, samples: int) -> dict[str, Any]:
    """Writer store commits completions; a waiter on a second store instance waits for them."""
    from datetime import UTC, datetime

    from tacoq_postgres.store import PostgresStore

    writer = PostgresStore(url, namespace=namespace)
    waiter = PostgresStore(url, namespace=namespace)
    await writer.connect()
    await waiter.connect()

    async def wait_for(task_id: uuid.UUID) -> float:
        row = await waiter.wait(task_id, 5.0)
        seen = time.perf_counter()
        if row is None or not row.is_completed:
            raise RuntimeError(f"the waiter returned {row!r} without the completion")
        return seen

    latencies: list[float] = []
    commits: list[float] = []
    try:
        for index in range(WARMUP + samples):
            task_id = uuid.uuid4()
            now = datetime.now(UTC)
            await writer.apply_batch([assigned(task_id, index, now)])
            waiting = asyncio.create_task(wait_for(task_id))
            await asyncio.sleep(PARK_S)
            started = time.perf_counter()
            await writer.apply_batch([completed(task_id, index, now)])
            committed = time.perf_counter()
            seen = await asyncio.wait_for(waiting, 10)
            if index >= WARMUP:
                latencies.append(seen - started)
                commits.append(committed - started)
    finally:
        await waiter.close()
        await writer.close()
    return summary(latencies, commit_p50_ms=statistics.median(commits) * 1000)


async def notify_wait(url: str, namespace: str, samples: int) -> dict[str, Any]:
    """Raw LISTEN/NOTIFY: NOTIFY on one autocommit connection, notifies() on another."""
    import psycopg
    from psycopg import sql

    from bench.postgres_common import conninfo_of

    channel = f"{namespace}.completed"
    conninfo = conninfo_of(url)
    listen = await psycopg.AsyncConnection.connect(conninfo, autocommit=True)
    writer = await psycopg.AsyncConnection.connect(conninfo, autocommit=True)
    arrivals: dict[str, float] = {}
    arrived = asyncio.Event()

    async def receive() -> None:
        async for note in listen.notifies():
            arrivals[note.payload] = time.perf_counter()
            arrived.set()

    latencies: list[float] = []
    commits: list[float] = []
    async with listen, writer:
        await listen.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
        receiver = asyncio.create_task(receive())
        try:
            for index in range(WARMUP + samples):
                payload = uuid.uuid4().hex
                arrived.clear()
                await asyncio.sleep(PARK_S)
                started = time.perf_counter()
                await writer.execute("SELECT pg_notify(%s, %s)", [channel, payload])
                committed = time.perf_counter()
                while payload not in arrivals:
                    await asyncio.wait_for(arrived.wait(), 10)
                    arrived.clear()
                if index >= WARMUP:
                    latencies.append(arrivals.pop(payload) - started)
                    commits.append(committed - started)
        finally:
            receiver.cancel()
            await asyncio.gather(receiver, return_exceptions=True)
    return summary(latencies, commit_p50_ms=statistics.median(commits) * 1000)


def main(argv: list[str] | None = None) -> int:
    """Measure one mode and print its JSON summary."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("mode", choices=MODES)
    parser.add_argument("--samples", type=int, default=300)
    parser.add_argument("--url", required=True)
    parser.add_argument("--namespace", required=True)
    args = parser.parse_args(argv)
    run = tacoq_wait if args.mode == "tacoq" else notify_wait
    print(json.dumps(asyncio.run(run(args.url, args.namespace, args.samples))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
