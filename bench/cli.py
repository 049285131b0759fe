"""Command line of the harness: ``python -m bench [--quick] [--repeats N] [--scenario NAME]``,
or an A/B comparison with ``--compare REV [--pairs N]`` (see :mod:`bench.compare`)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from bench.compare_stats import MIN_PAIRS, NO_REGRESSION_FLOOR
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
DEFAULT_REPEATS = 5
REPORT = ROOT / "docs" / "benchmarks.md"

EPILOG = f"""\
A/B comparison (--compare REV): measures TacoQ's own variants of the chosen scenarios under
two versions in the same run: base = REV (its files from `git archive`, its packages installed
from its own folders in one pip call, into a virtual environment cached by commit under
.bench/compare/) and head = the working tree as this interpreter has it installed (nox -s bench
installs it; uncommitted changes are measured as they are). Every measurement runs in a process
of its side's interpreter, with this checkout's bench code; before the run each side must show
that every TacoQ module it imports is a file of its own tree. The two sides alternate in
--pairs pairs (default and minimum {MIN_PAIRS}; fewer only with --quick): head first in odd
pairs, base first in even ones. Per variant the report gives the median of the per-pair ratios
(above 1: head better; head/base for tasks/s, base/head for ms and µs), min/IQR/max, every
pair's ratio, CPU-seconds per task of each side and the verdict "does not regress" (median
>= {NO_REGRESSION_FLOOR}). It is printed and written to docs/benchmarks-compare.md (or
--output); docs/benchmarks.md is left alone. Example:
  nox -s bench -- --compare HEAD~1 --scenario peers-drain --scenario peers-latency \\
      --scenario demo-embedded
"""


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
        description=(
            "Measure TacoQ against raw-library baselines and its peers in the same run, or "
            "(--compare REV) against its own version REV."
        ),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    result.add_argument(
        "--repeats",
        type=bounded_int(1, MAX_REPEATS),
        help=f"runs per variant (default {DEFAULT_REPEATS}; not with --compare, see --pairs)",
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
        help=(
            "where to write the Markdown report (default: docs/benchmarks.md; with --compare, "
            "docs/benchmarks-compare.md)"
        ),
    )
    result.add_argument("--list", action="store_true", help="list the scenarios and exit")
    ab = result.add_argument_group("A/B comparison (see below)")
    ab.add_argument(
        "--compare",
        metavar="REV",
        help="compare the working tree (head) with git revision REV (base), in pairs",
    )
    ab.add_argument(
        "--pairs",
        type=bounded_int(1, MAX_REPEATS),
        help=f"pairs per TacoQ variant with --compare (default and minimum {MIN_PAIRS}; "
        "fewer with --quick)",
    )
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
    chosen = [s for s in SCENARIOS if args.scenario is None or s.name in args.scenario]
    if args.compare is not None:
        from bench.compare_cli import run_compare

        return run_compare(args, args_list, chosen, tasks)
    if args.pairs is not None:
        parser().error("--pairs goes with --compare REV")
    repeats = args.repeats or DEFAULT_REPEATS
    settings = Settings(repeats=repeats, tasks=tasks, timeout_s=args.timeout, quick=args.quick)

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
    write_report(args.output or REPORT, report)
    for row in rows:
        if row.skipped:
            print(f"SKIPPED {row.scenario} / {row.label}: {row.error}", file=sys.stderr)
    failed = [row for row in rows if row.error is not None and not row.skipped]
    for row in failed:
        print(f"FAILED {row.scenario} / {row.label}: {row.error}", file=sys.stderr)
    return 1 if failed else 0
