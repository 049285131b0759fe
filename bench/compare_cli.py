"""``python -m bench --compare REV``: check the options, prepare both sides, run the pairs,
print and write the report. Exit status: 0 when every comparison has its pairs, 1 when a side
failed a measurement, 2 when the comparison could not start (the one-line reason on stderr)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from bench.compare import prepare, run_comparisons
from bench.compare_build import CompareError
from bench.compare_report import markdown_report, verdict_lines
from bench.compare_stats import MIN_PAIRS
from bench.harness import ROOT, Scenario, Settings
from bench.report import describe_machine, invoked_command, write_report

COMPARE_REPORT = ROOT / "docs" / "benchmarks-compare.md"


def _progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _fail(message: str) -> int:
    print(f"bench --compare: {message}", file=sys.stderr)
    return 2


def option_error(args: argparse.Namespace) -> str | None:
    """Why these options cannot make a comparison, or None."""
    if args.repeats is not None:
        return "--repeats does not apply to --compare: use --pairs"
    if args.pairs is not None and args.pairs < MIN_PAIRS and not args.quick:
        return f"--pairs must be at least {MIN_PAIRS} (fewer only with --quick, for a smoke test)"
    return None


def run_compare(
    args: argparse.Namespace, argv: Sequence[str], chosen: Sequence[Scenario], tasks: int
) -> int:
    """Run the comparison the parsed ``args`` ask for; return the exit status."""
    problem = option_error(args)
    if problem:
        return _fail(problem)
    pairs = args.pairs or MIN_PAIRS
    settings = Settings(repeats=pairs, tasks=tasks, timeout_s=args.timeout, quick=args.quick)
    try:
        prepared = prepare(args.compare, _progress)
    except CompareError as exc:
        return _fail(str(exc))
    for note in prepared.notes:
        _progress(f"note: {note}")
    comparisons = run_comparisons(prepared, chosen, settings, _progress)
    report = markdown_report(
        comparisons, prepared, settings, describe_machine(), invoked_command(list(argv))
    )
    print(report)
    write_report(args.output or COMPARE_REPORT, report)
    for line in verdict_lines(comparisons):
        print(line, file=sys.stderr)
    failed = [item for item in comparisons if item.failed]
    for item in failed:
        print(f"FAILED {item.scenario.name} / {item.label}: {item.error}", file=sys.stderr)
    return 1 if failed else 0
