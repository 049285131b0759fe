"""The report of an A/B comparison (``--compare REV``): a Markdown page, printed and written
(by default to ``docs/benchmarks-compare.md``; ``docs/benchmarks.md`` is left alone)."""

from __future__ import annotations

from collections.abc import Sequence

from bench.compare import PROCESS_CPU, Comparison, Prepared
from bench.compare_stats import NO_REGRESSION_FLOOR, higher_is_better, verdict
from bench.harness import ROOT, Settings, format_value
from bench.report import CPU_NOTE, Machine

COLUMNS = (
    "scenario", "variant", "unit", "base median", "head median",
    "head vs base (median per-pair ratio)", "min", "IQR", "max", "pairs",
    "CPU s/task base", "CPU s/task head", f"does not regress (>= {NO_REGRESSION_FLOOR})",
    "per-pair ratios (pair 1, 2, ...)", "side numbers (base -> head, medians)",
)  # fmt: skip
#: Side numbers with a column of their own, or only there to compute one.
NOT_SIDE_NUMBERS = (CPU_NOTE, PROCESS_CPU)


def _shown(path: object) -> str:
    """A path relative to the repository root when it is inside it."""
    text = str(path)
    root = f"{ROOT}/"
    return text[len(root) :] if text.startswith(root) else text


def side_numbers(item: Comparison) -> str:
    """The other side numbers of the scenario (p99, peak RSS ...), base -> head."""
    base, head = item.base.note_medians(), item.head.note_medians()
    shown = [
        f"{name} {base[name]:,.2f} -> {head[name]:,.2f}"
        for name in base
        if name in head and name not in NOT_SIDE_NUMBERS
    ]
    return ", ".join(shown)


def _cpu(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"


def cells(item: Comparison) -> tuple[str, ...]:
    """The table cells of one comparison (a side that failed or was skipped says so)."""
    unit = f"{item.scenario.unit} ({'higher' if higher_is_better(item.scenario.unit) else 'lower'}"
    unit += " is better)"
    base = "-" if item.base.median is None else format_value(item.base.median)
    head = "-" if item.head.median is None else format_value(item.head.median)
    spread = item.spread
    if spread is None:
        failed = item.error or "no pair measured on both sides"
        return (item.scenario.name, item.label, unit, base, head, failed, *["-"] * 8, "")
    ratios = " / ".join(f"{ratio:.3f}" for _, ratio in item.ratios)
    if item.error:
        ratios += f" ({item.error})"
    return (
        item.scenario.name,
        item.label,
        unit,
        base,
        head,
        f"{spread.median:.3f}",
        f"{spread.low:.3f}",
        f"{spread.q1:.3f}-{spread.q3:.3f}",
        f"{spread.high:.3f}",
        str(spread.count),
        _cpu(item.cpu_base),
        _cpu(item.cpu_head),
        "yes" if spread.does_not_regress else "no",
        ratios,
        side_numbers(item),
    )


def markdown_table(comparisons: Sequence[Comparison]) -> str:
    """The comparisons as a Markdown table."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for item in comparisons:
        lines.append("| " + " | ".join(cells(item)).replace("\n", " ") + " |")
    return "\n".join(lines)


def verdict_lines(comparisons: Sequence[Comparison]) -> list[str]:
    """One line per comparison: ``scenario / variant: does not regress: yes|no (...)``."""
    return [f"{item.scenario.name} / {item.label}: {verdict(item.spread)}" for item in comparisons]


def markdown_report(
    comparisons: Sequence[Comparison],
    prepared: Prepared,
    settings: Settings,
    machine: Machine,
    command: str,
) -> str:
    """The whole comparison page."""
    base, head = prepared.base, prepared.head
    side_lines = [
        f"- **{side.name}**{' (REV `' + prepared.rev + '`)' if side is base else ''}: "
        f"{side.described}; `{_shown(side.python)}` running tacoq from "
        f"`{_shown(side.identity.get('tacoq_file'))}` "
        f"({', '.join(f'{k} {v}' for k, v in dict(side.identity.get('versions', {})).items())}), "
        f"code digest `{side.digest[:12]}`"
        for side in (base, head)
    ]
    scenarios = dict.fromkeys(item.scenario for item in comparisons)
    return "\n".join(
        [
            "# A/B comparison",
            "",
            "Written by the benchmark harness (`python -m bench --compare REV`); run it again "
            'rather than edit it. How it works: docs/benchmarks.md, "A/B comparisons".',
            "",
            f"Command: `{command}`",
            "",
            *side_lines,
            "- Each side ran its own code: every installed TacoQ module of a side is a file of "
            "its source tree (REV's `git archive`, or the working tree), checked before the run, "
            "and every sample reported the code digest of its side.",
            *(f"- Note: {note}" for note in prepared.notes),
            "",
            f"Each row is one TacoQ variant measured in {settings.repeats} "
            f"pair{'' if settings.repeats == 1 else 's'} of "
            f"{settings.tasks:,} tasks (a scenario may use more, see its description): in each "
            "pair one sample of base and one of head, one right after the other, head first in "
            "odd pairs and base first in even ones. A pair's ratio is oriented so that above 1 "
            "means head is better: head ÷ base for a rate (tasks/s), base ÷ head for a time "
            "(ms, µs). The ratio column is the median of the per-pair ratios; min, IQR "
            "(quartiles) and max show their spread, and every pair's ratio is listed. Base and "
            "head median are the medians of each side's samples. `CPU s/task`: the scenario's "
            "own CPU-seconds per task when it measures one (the peer scenarios: every process "
            "of the system during the timed window); otherwise the measuring processes' CPU "
            "from start to exit, interpreter start-up included, over the tasks of a sample "
            "(demo-embedded); `-` when the scenario gives neither. The last column: the scenario's "
            "other side numbers (p99, peak RSS), base's median -> head's. Does not regress: median "
            f"per-pair ratio >= {NO_REGRESSION_FLOOR}.",
            "",
            markdown_table(comparisons),
            "",
            "## Verdicts",
            "",
            *(f"- {line}" for line in verdict_lines(comparisons)),
            "",
            "## Scenarios",
            "",
            *(f"- **{scenario.name}**: {scenario.description}" for scenario in scenarios),
            "",
            "## Machine",
            "",
            *machine.lines(),
            "",
        ]
    )
