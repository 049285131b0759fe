"""The registered scenarios. Add one by appending to :data:`SCENARIOS`.

Every scenario is bounded: a fixed number of tasks per run, a fixed number of repeats, and a
timeout on every subprocess.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

from bench.harness import (
    MeasurementError,
    Scenario,
    Settings,
    Variant,
    parse_json_summary,
    python_command,
    run_pinned,
    throughput_of,
)

DEMO_SUMMARY_KEYS = (
    "tasks",
    "completed",
    "failed_expected",
    "elapsed_s",
    "throughput",
    "p50_ms",
    "p99_ms",
    "ok",
    "broker",
    "store",
)


def tacoq_command() -> str:
    """Return the ``tacoq`` console script of this interpreter's environment, else on PATH."""
    beside = Path(sys.executable).parent / "tacoq"
    if beside.exists():
        return str(beside)
    found = shutil.which("tacoq")
    if found is None:
        raise MeasurementError("the tacoq command is not installed (run `nox -s bench`)")
    return found


def demo_throughput(settings: Settings, *extra: str) -> float:
    """Run ``tacoq demo --tasks N --json`` pinned to one core; return its tasks/s."""
    argv = [tacoq_command(), "demo", "--tasks", str(settings.tasks), "--json", *extra]
    summary = parse_json_summary(run_pinned(argv, settings.timeout_s), DEMO_SUMMARY_KEYS)
    if summary["ok"] is not True:
        raise MeasurementError(f"the demo reported ok={summary['ok']!r}: {summary}")
    if summary["tasks"] != settings.tasks:
        raise MeasurementError(f"asked for {settings.tasks} tasks, the demo ran {summary['tasks']}")
    return throughput_of(summary)


def demo_memory(settings: Settings) -> float:
    """The demo on its embedded defaults (in-memory broker and store)."""
    return demo_throughput(settings)


def demo_sqlite(settings: Settings) -> float:
    """The demo with the built-in SQLite store in a fresh temporary file."""
    with tempfile.TemporaryDirectory(prefix="tacoq-bench-") as folder:
        database = Path(folder) / "store.sqlite3"
        return demo_throughput(settings, "--store", f"sqlite:///{database}")


def asyncio_pydantic_baseline(settings: Settings) -> float:
    """The same pipeline with raw asyncio queues and pydantic (bench/baseline_asyncio.py)."""
    argv = python_command("bench.baseline_asyncio", "--tasks", str(settings.tasks))
    summary = parse_json_summary(run_pinned(argv, settings.timeout_s), ("tasks", "throughput"))
    return throughput_of(summary)


DEMO_EMBEDDED = Scenario(
    name="demo-embedded",
    description=(
        "`tacoq demo --tasks N --json` in one process (publisher, worker, relay), pinned to one "
        "core; the baseline does the least work per task the same pipeline needs: pydantic "
        "input to JSON bytes, an asyncio queue, validate, trivial async handler, output to JSON "
        "bytes, a second queue, a dict."
    ),
    unit="tasks/s",
    candidates=(
        Variant("tacoq demo (memory store)", demo_memory, tacoq=True),
        Variant("tacoq demo (sqlite store)", demo_sqlite, tacoq=True),
    ),
    baseline=Variant("raw asyncio + pydantic", asyncio_pydantic_baseline),
    sample_tasks=lambda settings: settings.tasks,
)


def _rabbit_scenarios() -> list[Scenario]:
    from bench.rabbit_scenarios import RABBIT_DRAIN, RABBIT_PUBLISH

    return [RABBIT_PUBLISH, RABBIT_DRAIN]


def _peer_scenarios() -> list[Scenario]:
    from bench.peer_scenarios import PEER_SCENARIOS

    return PEER_SCENARIOS


def _postgres_scenarios() -> list[Scenario]:
    from bench.postgres_scenarios import POSTGRES_APPLY, POSTGRES_WAIT

    return [POSTGRES_APPLY, POSTGRES_WAIT]


def _relay_scenarios() -> list[Scenario]:
    from bench.relay_scenarios import RELAY_HEARTBEATS, RELAY_LATENCY, RELAY_THROUGHPUT

    return [RELAY_LATENCY, RELAY_THROUGHPUT, RELAY_HEARTBEATS]


SCENARIOS: list[Scenario] = [
    DEMO_EMBEDDED,
    *_rabbit_scenarios(),
    *_peer_scenarios(),
    *_postgres_scenarios(),
    *_relay_scenarios(),
]
"""Every scenario ``python -m bench`` knows, in the order it runs them."""
