"""``tacoq demo``: the whole system in one process — publisher, worker and relay.

On the defaults it runs on the in-memory broker and store; with ``--broker``/``--store`` it runs
across real services, in a namespace of its own. It publishes typed tasks with mixed priorities
(async and sync handlers, some failing on purpose), shows progress, then checks every task's
final state and prints a summary. Exit code 0 only when every task ended as expected and the
demo's relay stored every completion (none "missed"). It refuses a namespace another relay
serves, and removes its namespace from real services when it ends, unless ``--keep``
(:mod:`tacoq_cli.demo_namespace`).

The counters use the ``tacoq_task_listener`` hook: the demo registers a plugin, as any metrics
plugin would.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import sys
import time
import uuid
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from pydantic import BaseModel
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

import tacoq
from tacoq.config import redact_url, resolve_broker_url, resolve_namespace, resolve_store_url
from tacoq.contracts.hookspecs import hookimpl
from tacoq.contracts.lifecycle import LifecycleEvent, LifecycleKind
from tacoq.model.task import Task
from tacoq.plugins import get_plugin_host
from tacoq.relay.engine import RelayEngine
from tacoq_cli.demo_namespace import DemoNamespace

__all__ = ["DemoCounters", "run_demo"]

DEMO_WORKER_KIND = "demo"
FAIL_EVERY = 25
SYNC_EVERY = 10
PRIORITIES = (0, 32, 128, 200, 255)
#: At most this many tasks are in flight: the publisher waits below it, as a well-behaved
#: producer would, so latency measures the system rather than a self-made backlog.
IN_FLIGHT_WINDOW = 2000
#: Publishes awaiting their broker confirm at once.
PUBLISH_WINDOW = 100


class ResizeIn(BaseModel):
    """Input of the demo's async task."""

    width: int
    height: int
    fail: bool = False


class ResizeOut(BaseModel):
    """Output of the demo's async task."""

    width: int
    height: int
    pixels: int


def build_demo_app() -> tacoq.WorkerApp:
    """The demo's worker: an async typed task and a sync task that runs in a thread."""
    app = tacoq.WorkerApp(DEMO_WORKER_KIND)

    @app.task
    async def resize(req: ResizeIn) -> ResizeOut:
        if req.fail:
            raise ValueError(f"cannot resize to {req.width}x{req.height} (failing on purpose)")
        return ResizeOut(
            width=req.width // 2, height=req.height // 2, pixels=req.width * req.height
        )

    @app.task
    def checksum(data: bytes) -> str:
        return hashlib.sha256(data).hexdigest()

    return app


@dataclass
class DemoCounters:
    """A task-listener plugin: counts lifecycle events and times each task end to end."""

    expected: int
    published_at: dict[UUID, float] = field(default_factory=dict)
    stored_at: dict[UUID, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    done: asyncio.Event = field(default_factory=asyncio.Event)
    room: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def in_flight(self) -> int:
        """Tasks published whose completion is not stored yet."""
        return len(self.published_at) - len(self.stored_at)

    @hookimpl
    def tacoq_task_listener(self) -> DemoCounters:
        """Register this object as a lifecycle listener."""
        return self

    def on_task_event(self, event: LifecycleEvent) -> None:
        """Count the event; remember publish and store times for latency."""
        self.counts[event.kind] = self.counts.get(event.kind, 0) + 1
        if event.kind is LifecycleKind.PUBLISHED:
            self.published_at[event.task_id] = time.perf_counter()
        elif event.kind is LifecycleKind.STORED and event.task_id not in self.stored_at:
            self.stored_at[event.task_id] = time.perf_counter()
            if len(self.stored_at) >= self.expected:
                self.done.set()
            if self.in_flight <= IN_FLIGHT_WINDOW // 2:
                self.room.set()


@dataclass
class Expected:
    """What one published task should end as."""

    task_kind: str
    fails: bool
    output: Any


@dataclass
class DemoSummary:
    """The outcome of a demo run."""

    tasks: int
    completed: int
    failed_expected: int
    unexpected: list[str]
    #: Tasks whose completion the demo's relay did not store (another relay took it, or the
    #: wait ended first).
    missed: int
    elapsed_s: float
    p50_ms: float
    p99_ms: float
    broker: str
    store: str
    namespace: str
    #: What became of the namespace (:class:`DemoNamespace`), set when the run ended.
    place: DemoNamespace | None = None

    @property
    def ok(self) -> bool:
        """True when every task ended as expected and none was missed."""
        return not self.unexpected and self.completed == self.tasks and self.missed == 0

    @property
    def throughput(self) -> float:
        """Tasks per second from the first publish to the last completion stored."""
        return self.tasks / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def as_json(self) -> dict[str, Any]:
        """The summary as a JSON-able dict (``tacoq demo --json``)."""
        return {
            "tasks": self.tasks,
            "completed": self.completed,
            "failed_expected": self.failed_expected,
            "unexpected": len(self.unexpected),
            "missed": self.missed,
            "elapsed_s": round(self.elapsed_s, 4),
            "throughput": round(self.throughput, 1),
            "p50_ms": round(self.p50_ms, 3),
            "p99_ms": round(self.p99_ms, 3),
            "ok": self.ok,
            "broker": self.broker,
            "store": self.store,
            "namespace": self.namespace,
            "removed": [] if self.place is None else self.place.removed,
            "kept": None if self.place is None else self.place.kept,
        }


def _percentile(values: list[float], fraction: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def _check(row: Task | None, expected: Expected) -> str | None:
    """None when the row is what the demo expects, else why not."""
    if row is None or not row.is_completed:
        return f"did not complete (status {row.status if row else 'unknown'})"
    if expected.fails:
        if not row.is_error or row.error is None or row.error.type != "ValueError":
            return f"should have failed with ValueError, got {row.error}"
        return None
    if row.is_error:
        return f"failed unexpectedly: {row.error}"
    got = row.result(ResizeOut if expected.task_kind == "resize" else str)
    return None if got == expected.output else f"wrong output {got!r}"


async def _run(
    *,
    tasks: int,
    broker_url: str,
    store_url: str,
    namespace: str,
    concurrency: int,
    console: Console | None,
    keep: bool,
) -> DemoSummary:
    """Claim the namespace, run the demo in it, then remove it (whatever happened, unless it
    is kept); an error or Ctrl-C is reported after the removal, with one line on stderr."""
    host = get_plugin_host()
    place = await DemoNamespace.claim(host, broker_url, store_url, namespace, keep=keep)
    try:
        summary = await _exercise(
            tasks=tasks,
            broker_url=broker_url,
            store_url=store_url,
            namespace=namespace,
            concurrency=concurrency,
            console=console,
        )
    except BaseException:
        await place.release([DEMO_WORKER_KIND])
        print(f"demo: {place.describe()}", file=sys.stderr, flush=True)
        raise
    await place.release([DEMO_WORKER_KIND])
    summary.place = place
    return summary


async def _exercise(
    *,
    tasks: int,
    broker_url: str,
    store_url: str,
    namespace: str,
    concurrency: int,
    console: Console | None,
) -> DemoSummary:
    """Publish, work and relay ``tasks`` tasks in ``namespace``; check each one's end."""
    host = get_plugin_host()
    counters = DemoCounters(expected=tasks)
    plugin_name = f"tacoq-demo-counters-{uuid.uuid4().hex[:8]}"
    host.register(counters, name=plugin_name)
    try:
        app = build_demo_app()
        resize, checksum = app.tasks["resize"], app.tasks["checksum"]
        relay = RelayEngine(broker_url, store_url, namespace=namespace, cleanup=False)
        stop = asyncio.Event()
        relay_job = asyncio.create_task(relay.run(stop), name="demo-relay")
        worker_job = asyncio.create_task(
            app.serve(stop, broker_url=broker_url, namespace=namespace, concurrency=concurrency),
            name="demo-worker",
        )
        expected: dict[UUID, Expected] = {}
        rng = random.Random(42)
        progress: Progress | None = None
        # From here on the relay and the worker are stopped whatever happens (an error,
        # Ctrl-C even while the relay starts), before the namespace is removed.
        try:
            ready = asyncio.ensure_future(relay.ready.wait())
            try:
                await asyncio.wait([ready, relay_job], return_when=asyncio.FIRST_COMPLETED)
            finally:
                ready.cancel()
            if relay_job.done():
                await relay_job  # raises the relay's start-up error
            progress = _progress(console, tasks)
            started = time.perf_counter()
            async with tacoq.Publisher(broker_url, namespace=namespace) as pub:
                pending: list[Awaitable[Any]] = []
                for i in range(tasks):
                    priority = rng.choice(PRIORITIES)
                    task_id = uuid.uuid4()
                    if i % SYNC_EVERY == SYNC_EVERY - 1:
                        data = f"payload-{i}".encode()
                        pending.append(pub.publish(checksum, data, priority=priority, id=task_id))
                        digest = hashlib.sha256(data).hexdigest()
                        expected[task_id] = Expected("checksum", False, digest)
                    else:
                        w, h = 64 + i % 512, 48 + i % 384
                        fails = i % FAIL_EVERY == FAIL_EVERY - 1
                        req = ResizeIn(width=w, height=h, fail=fails)
                        pending.append(pub.publish(resize, req, priority=priority, id=task_id))
                        output = ResizeOut(width=w // 2, height=h // 2, pixels=w * h)
                        expected[task_id] = Expected("resize", fails, output)
                    if len(pending) == PUBLISH_WINDOW or i == tasks - 1:
                        # Many confirms in flight, as a real producer would keep them.
                        await asyncio.gather(*pending)
                        pending = []
                        _advance(progress, counters)
                        if counters.in_flight >= IN_FLIGHT_WINDOW:
                            counters.room.clear()
                            await counters.room.wait()
            await _wait_done(counters, progress, timeout=max(60.0, tasks / 200))
            elapsed = time.perf_counter() - started
            rows = {task_id: await relay.store.get(task_id) for task_id in expected}
        finally:
            if progress is not None:
                _advance(progress, counters)
                progress.stop()
            stop.set()
            await asyncio.gather(relay_job, worker_job)
    finally:
        host.unregister(plugin_name)
    unexpected = []
    for task_id, exp in expected.items():
        problem = _check(rows[task_id], exp)
        if problem:
            unexpected.append(f"{exp.task_kind} {task_id}: {problem}")
    latencies = [
        (counters.stored_at[t] - counters.published_at[t]) * 1000
        for t in expected
        if t in counters.stored_at and t in counters.published_at
    ]
    return DemoSummary(
        tasks=tasks,
        completed=sum(1 for r in rows.values() if r is not None and r.is_completed),
        failed_expected=sum(1 for t, e in expected.items() if e.fails and _is_error(rows[t])),
        unexpected=unexpected,
        missed=sum(1 for t in expected if t not in counters.stored_at),
        elapsed_s=elapsed,
        p50_ms=_percentile(latencies, 0.50),
        p99_ms=_percentile(latencies, 0.99),
        broker=redact_url(broker_url),
        store=redact_url(store_url),
        namespace=namespace,
    )


def _is_error(row: Task | None) -> bool:
    return row is not None and row.is_error


def _progress(console: Console | None, total: int) -> Progress | None:
    if console is None:
        return None
    progress = Progress(
        TextColumn("[bold]demo[/]"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("stored"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )
    progress.add_task("tasks", total=total)
    progress.start()
    return progress


def _advance(progress: Progress | None, counters: DemoCounters) -> None:
    if progress is not None:
        progress.update(progress.task_ids[0], completed=len(counters.stored_at))


async def _wait_done(counters: DemoCounters, progress: Progress | None, *, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not counters.done.is_set():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return  # the check below reports the tasks that did not complete
        try:
            await asyncio.wait_for(counters.done.wait(), min(0.1, remaining))
        except TimeoutError:
            _advance(progress, counters)


def _table(summary: DemoSummary) -> Table:
    table = Table(title="TacoQ demo", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value", justify="right")
    table.add_row("broker / store", f"{summary.broker} / {summary.store}")
    table.add_row("namespace", summary.namespace)
    table.add_row("tasks published", f"{summary.tasks:,}")
    table.add_row("completed", f"{summary.completed:,}")
    table.add_row("failed as expected", f"{summary.failed_expected:,}")
    style = "green" if not summary.unexpected else "red"
    table.add_row("unexpected", f"[{style}]{len(summary.unexpected):,}[/]")
    style = "green" if not summary.missed else "red"
    table.add_row("missed", f"[{style}]{summary.missed:,}[/]")
    table.add_row("throughput", f"{summary.throughput:,.0f} tasks/s")
    table.add_row("latency p50 / p99", f"{summary.p50_ms:,.1f} ms / {summary.p99_ms:,.1f} ms")
    table.add_row("elapsed", f"{summary.elapsed_s:,.2f} s")
    return table


def run_demo(
    *,
    tasks: int,
    broker_url: str | None,
    store_url: str | None,
    namespace: str | None,
    concurrency: int,
    json_output: bool,
    keep: bool = False,
) -> int:
    """Run the demo and print its summary; return 0 only if every task ended as expected and
    none was missed. The namespace is removed afterwards unless ``keep``."""
    if tasks < 1:
        raise tacoq.ConfigError("--tasks must be at least 1")
    if concurrency < 1:
        raise tacoq.ConfigError("--concurrency must be at least 1")
    broker = resolve_broker_url(broker_url)
    store = resolve_store_url(store_url)
    ns = resolve_namespace(namespace or f"demo-{uuid.uuid4().hex[:8]}")
    console = None if json_output else Console()
    summary = asyncio.run(
        _run(
            tasks=tasks,
            broker_url=broker,
            store_url=store,
            namespace=ns,
            concurrency=concurrency,
            console=console,
            keep=keep,
        )
    )
    if console is None:
        print(json.dumps(summary.as_json()))
    else:
        console.print(_table(summary))
        for problem in summary.unexpected[:10]:
            console.print(f"[red]unexpected:[/] {problem}")
        if summary.missed:
            console.print(
                f"[red]missed:[/] the demo's relay stored no completion of {summary.missed:,} "
                f"task(s): another relay consuming namespace {summary.namespace} took them, or "
                "the wait ended first"
            )
        if summary.place is not None:
            console.print(summary.place.describe())
    return 0 if summary.ok else 1
