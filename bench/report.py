"""Reporting: the machine, the results table (terminal and Markdown), docs/benchmarks.md."""

from __future__ import annotations

import datetime as dt
import os
import platform
import shlex
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from bench.compare_doc import SECTION as COMPARE_SECTION
from bench.harness import ROOT, Row, Settings, format_value

#: Side numbers that get a column of their own (the peer scenarios report them).
CPU_NOTE, RSS_NOTE = "CPU s/task", "peak RSS MiB"
COLUMNS = (
    "scenario", "variant", "median", "min", "max", "unit", "TacoQ ÷ other", CPU_NOTE, RSS_NOTE,
    "notes",
)  # fmt: skip


@dataclass(frozen=True)
class Machine:
    """Where and with what the numbers were measured."""

    cores: int
    cpu: str
    memory_gib: float
    system: str
    python: str
    tacoq: str
    pinned: bool
    date: str
    rabbitmq: str = "unknown"
    postgres: str = "unknown"
    peers: str = "unknown"

    def lines(self) -> list[str]:
        """Describe the machine as Markdown list items."""
        pinning = "pinned to core 0 with `taskset -c 0`" if self.pinned else "not pinned"
        return [
            f"- Date: {self.date}",
            f"- CPU: {self.cpu}, {self.cores} cores (the TacoQ-only scenarios' measured "
            f"processes {pinning}; the peer scenarios are not pinned). The machine is shared: "
            "other test suites ran beside this one, so the numbers are noisy; compare the "
            "ratios of one run, not absolute numbers across runs.",
            f"- Memory: {self.memory_gib:.1f} GiB",
            f"- System: {self.system}",
            f"- Python: {self.python}",
            f"- RabbitMQ: {self.rabbitmq}",
            f"- PostgreSQL: {self.postgres}",
            f"- TacoQ: {self.tacoq}",
            f"- Peers: {self.peers}",
        ]


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gib() -> float:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError, AttributeError):
        return float("nan")


def _version(distribution: str) -> str:
    try:
        return version(distribution)
    except PackageNotFoundError:
        return "not installed"


def _git_revision() -> str:
    try:
        completed = subprocess.run(
            ["git", "describe", "--always", "--dirty"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return completed.stdout.strip() or "unknown"


def _rabbitmq_version() -> str:
    try:
        completed = subprocess.run(
            ["rabbitmqctl", "version"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown (rabbitmqctl unavailable)"
    lines = completed.stdout.strip().splitlines()
    return lines[-1].strip() if completed.returncode == 0 and lines else "unknown"


def _postgres_version() -> str:
    try:
        import psycopg

        from bench.peers.common import postgres_url

        with psycopg.connect(postgres_url(), connect_timeout=5) as conn:
            row = conn.execute("SELECT version()").fetchone()
    except Exception:
        return "unknown (unreachable)"
    return str(row[0]) if row else "unknown"


def describe_machine() -> Machine:
    """Read the machine, the interpreter and the installed TacoQ."""
    tacoq = (
        f"tacoq-core {_version('tacoq-core')}, tacoq {_version('tacoq')} "
        f"(checkout {_git_revision()})"
    )
    return Machine(
        cores=os.cpu_count() or 1,
        cpu=_cpu_model(),
        memory_gib=_memory_gib(),
        system=f"{platform.system()} {platform.release()} ({platform.machine()})",
        python=f"{platform.python_implementation()} {platform.python_version()}",
        tacoq=tacoq,
        pinned=shutil.which("taskset") is not None,
        date=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        rabbitmq=_rabbitmq_version(),
        postgres=_postgres_version(),
        peers=(
            f"celery {_version('celery')} (kombu {_version('kombu')}, SQLAlchemy "
            f"{_version('sqlalchemy')}, psycopg2-binary {_version('psycopg2-binary')}), "
            f"dramatiq {_version('dramatiq')} (pika {_version('pika')}), psycopg "
            f"{_version('psycopg')}"
        ),
    )


def _number(value: float | None) -> str:
    return "-" if value is None else format_value(value)


def _side(values: dict[str, float], name: str) -> str:
    value = values.pop(name, None)
    if value is None:
        return "-"
    return f"{value:.3g}" if name == CPU_NOTE else f"{value:,.0f}"


def cells(row: Row) -> tuple[str, ...]:
    """Return the table cells of ``row`` (a failed row says FAILED and why)."""
    if row.error is not None:
        failed = f"{'SKIPPED' if row.skipped else 'FAILED'}: {row.error}"
        return (row.scenario, row.label, failed, "-", "-", row.unit, "-", "-", "-", "")
    ratio = f"{row.ratio:.2f}" if row.ratio is not None else "-"
    medians = row.note_medians()
    cpu, rss = _side(medians, CPU_NOTE), _side(medians, RSS_NOTE)
    notes = ", ".join(f"{name} {value:,.2f}" for name, value in medians.items())
    if len(row.paired) > 1:
        pairs = "per repeat " + " / ".join(f"{ratio:.2f}" for ratio in row.paired)
        notes = f"{pairs}, {notes}" if notes else pairs
    return (
        row.scenario,
        row.label,
        _number(row.median),
        _number(row.low),
        _number(row.high),
        row.unit,
        row.reference if row.is_baseline else ratio,
        cpu,
        rss,
        notes,
    )


def print_table(rows: Sequence[Row]) -> None:
    """Print the results, one table per scenario: with rich when installed, else plain text."""
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        table_rows = [COLUMNS, *(cells(row) for row in rows)]
        widths = [max(len(line[i]) for line in table_rows) for i in range(len(COLUMNS))]
        for line in table_rows:
            print("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)))
        return
    console = Console()
    for scenario in dict.fromkeys(row.scenario for row in rows):
        table = Table(title=f"{scenario} (median of the repeats)")
        table.add_column("variant")
        for column in COLUMNS[2:]:
            table.add_column(column, justify="right")
        for row in rows:
            if row.scenario == scenario:
                table.add_row(
                    *cells(row)[1:], style="red" if row.error and not row.skipped else None
                )
        console.print(table)


def markdown_table(rows: Sequence[Row]) -> str:
    """Return the results as a Markdown table."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(cells(row)).replace("\n", " ") + " |" for row in rows]
    return "\n".join(lines)


def markdown_report(
    rows: Sequence[Row],
    descriptions: Sequence[tuple[str, str]],
    settings: Settings,
    machine: Machine,
    command: str,
) -> str:
    """Return the whole docs/benchmarks.md page."""
    scenario_lines = [f"- **{name}**: {text}" for name, text in descriptions]
    return "\n".join(
        [
            "# Benchmarks",
            "",
            "Written by the benchmark harness (`bench/`); do not edit by hand, run it again.",
            "",
            f"Command: `{command}`",
            "",
            f"Each value is the median of {settings.repeats} runs of {settings.tasks:,} tasks "
            "(min and max beside it; a scenario may use more, see its description), TacoQ and "
            "what it is compared with measured in the same run, interleaved. `TacoQ ÷ other` is "
            "the ratio of the medians: on a TacoQ row, TacoQ over the scenario's baseline; on a "
            "peer row (Celery, Dramatiq; the `peers-*` scenarios), TacoQ (the `reference` row) "
            "over that peer. For tasks/s, 2.00 means TacoQ is twice as fast; for latency (ms), "
            "0.20 means TacoQ answers in a fifth of the time. `CPU s/task` is CPU-seconds per "
            "task summed over every process of the system, `peak RSS MiB` the peak RSS of one "
            "worker process after the drain (medians). Notes start with the ratio `per repeat` "
            "(TacoQ's sample over the other's from the same repeat, measured one after the "
            "other: the spread a shared machine gives), then other side numbers (medians). "
            "A scenario whose service is unreachable is marked SKIPPED.",
            "",
            markdown_table(rows),
            "",
            "## Scenarios",
            "",
            *scenario_lines,
            "",
            *COMPARE_SECTION,
            "",
            "## Machine",
            "",
            *machine.lines(),
            "",
        ]
    )


def invoked_command(argv: Sequence[str]) -> str:
    """Return the command that produced this run: nox's when it ran us, else ``python -m``."""
    from_nox = os.environ.get("TACOQ_BENCH_COMMAND")
    if from_nox:
        return from_nox
    return shlex.join(["python", "-m", "bench", *argv])


def write_report(path: Path, text: str) -> None:
    """Write ``text`` to ``path``, making its folder when needed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    print(f"wrote {path}", file=sys.stderr)
