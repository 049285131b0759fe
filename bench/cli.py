"""Command line of the harness: ``python -m bench [--quick] [--repeats N] [--scenario NAME]``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from bench.harness import MAX_REPEATS, MAX_TASKS, ROOT, Row, Settings, run_scenario
from bench.report import (
    describe_machine,
    invoked_command,
    markdown_report,
    print_table,
    write_report,
)
from bench.scenarios import SCENARIOS

DEFAULT_TASKS = 20_000
QUICK_TASKS = 2_000


def bounded_int(low: int, high: int) -> Callable[[str], int]:
    """Return an argparse type accepting integers from ``low`` to ``high``."""

    def parse(text: str) -> int:
        value = int(text)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be from {low} to {high}")
        return value

    return parse


def parser() -> argparse.ArgumentParser:
    """Build the argument parser."""
    names = [scenario.name for scenario in SCENARIOS]
    result = argparse.ArgumentParser(
        prog="python -m bench",
        description="Measure TacoQ against raw-library baselines in the same run.",
    )
    result.add_argument(
        "--repeats", type=bounded_int(1, MAX_REPEATS), default=5, help="runs per variant"
    )
    result.add_argument(
        "--tasks",
        type=bounded_int(1, MAX_TASKS),
        help=f"tasks per run (default {DEFAULT_TASKS:,}; {QUICK_TASKS:,} with --quick)",
    )
    result.add_argument(
        "--quick", action="store_true", help=f"{QUICK_TASKS:,} tasks per run, for a smoke test"
    )
    result.add_argument(
        "--scenario",
        action="append",
        choices=names,
        help="run only this scenario (repeatable; default: all)",
    )
    result.add_argument(
        "--timeout", type=float, default=300.0, help="seconds allowed for one measurement"
    )
    result.add_argument(
        "--output",
        type=Path,
        default=ROOT / "docs" / "benchmarks.md",
        help="where to write the Markdown report (default: docs/benchmarks.md)",
    )
    result.add_argument("--list", action="store_true", help="list the scenarios and exit")
    return result


def main(argv: Sequence[str] | None = None) -> int:
    """Run the chosen scenarios, print the table, write the report; 1 when a variant failed."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    args = parser().parse_args(args_list)
    if args.list:
        for scenario in SCENARIOS:
            print(f"{scenario.name}: {scenario.description}")
        return 0
    tasks = args.tasks or (QUICK_TASKS if args.quick else DEFAULT_TASKS)
    settings = Settings(repeats=args.repeats, tasks=tasks, timeout_s=args.timeout, quick=args.quick)
    chosen = [s for s in SCENARIOS if args.scenario is None or s.name in args.scenario]

    rows: list[Row] = []
    for scenario in chosen:
        rows += run_scenario(scenario, settings, lambda line: print(line, file=sys.stderr))
    print_table(rows)
    report = markdown_report(
        rows,
        [(scenario.name, scenario.description) for scenario in chosen],
        settings,
        describe_machine(),
        invoked_command(args_list),
    )
    write_report(args.output, report)
    for row in rows:
        if row.skipped:
            print(f"SKIPPED {row.scenario} / {row.label}: {row.error}", file=sys.stderr)
    failed = [row for row in rows if row.error is not None and not row.skipped]
    for row in failed:
        print(f"FAILED {row.scenario} / {row.label}: {row.error}", file=sys.stderr)
    return 1 if failed else 0
