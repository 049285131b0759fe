"""The harness: scenarios, repeated measurements, pinned subprocesses and their results.

A :class:`Scenario` has TacoQ variants and one baseline. Every repeat measures each of them
once, interleaved, so slow drift of the machine hits all alike. A peer scenario
(``peers=True``) turns it around: TacoQ is the reference (the ``baseline`` variant) and every
candidate is a peer (Celery, Dramatiq), whose ratio is TacoQ's median over the peer's. A
variant that fails stops being measured and is reported as a failure row; the others go on.
"""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
MAX_REPEATS = 50
MAX_TASKS = 1_000_000


class MeasurementError(Exception):
    """A measurement could not be taken; the message says why, in one line."""


class SkipScenario(MeasurementError):
    """The scenario cannot run here (a service is unreachable): every row says SKIPPED and why,
    and the run does not count as failed."""


@dataclass(frozen=True)
class Sample:
    """A measurement with side numbers reported beside it (``notes``: name -> value)."""

    value: float
    notes: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Settings:
    """What every measurement of a run shares."""

    repeats: int = 5
    tasks: int = 20_000
    timeout_s: float = 300.0
    #: ``--quick``: a smoke test; scenarios with a floor on N (the peer drain) may go under it.
    quick: bool = False


@dataclass(frozen=True)
class Variant:
    """One thing to measure: ``measure`` returns one sample in the scenario's unit."""

    label: str
    measure: Callable[[Settings], float | Sample]
    #: True when it measures TacoQ itself (not a raw-library baseline or a peer): the variants
    #: ``--compare REV`` measures under both versions.
    tacoq: bool = False


@dataclass(frozen=True)
class Scenario:
    """TacoQ variants and the baseline they are compared with, measured in the same run."""

    name: str
    description: str
    unit: str
    candidates: tuple[Variant, ...]
    baseline: Variant
    #: True: ``baseline`` is TacoQ, the candidates are peers, each ratio is TacoQ ÷ the peer.
    peers: bool = False
    #: Tasks in one sample, when the scenario knows it up front (``--compare`` divides a
    #: measurement's process CPU by it when the sample carries no ``CPU s/task`` of its own).
    sample_tasks: Callable[[Settings], int] | None = None

    def tacoq_variants(self) -> list[Variant]:
        """The variants that measure TacoQ itself, in the order the scenario lists them."""
        return [variant for variant in (*self.candidates, self.baseline) if variant.tacoq]


@dataclass
class Row:
    """The samples of one variant of one scenario, or why it failed."""

    scenario: str
    label: str
    unit: str
    is_baseline: bool
    samples: list[float] = field(default_factory=list)
    error: str | None = None
    # TacoQ ÷ the other: the row's median / the baseline's, or for a peer row the baseline's
    # (TacoQ's) median / the row's; None for the baseline itself.
    ratio: float | None = None
    skipped: bool = False
    notes: dict[str, list[float]] = field(default_factory=dict)
    #: The repeat (1, 2, ...) each of ``samples`` came from.
    repeats: list[int] = field(default_factory=list)
    #: The ratio per repeat, from this row's and the baseline's samples of the same repeat
    #: (measured one after the other), in repeat order; empty for the baseline itself.
    paired: list[float] = field(default_factory=list)
    #: What the ratio column shows for the baseline row: ``baseline``, or ``reference`` when
    #: the baseline is TacoQ itself (a peer scenario).
    reference: str = "baseline"

    def note_medians(self) -> dict[str, float]:
        """The median of each side number."""
        return {name: statistics.median(values) for name, values in self.notes.items()}

    @property
    def median(self) -> float | None:
        """The median sample, or None when there is none."""
        return statistics.median(self.samples) if self.samples else None

    @property
    def low(self) -> float | None:
        """The smallest sample, or None when there is none."""
        return min(self.samples) if self.samples else None

    @property
    def high(self) -> float | None:
        """The largest sample, or None when there is none."""
        return max(self.samples) if self.samples else None


Progress = Callable[[str], None]


def repeat_order(count: int, repeat: int, alternate: bool) -> list[int]:
    """The order (indexes) in which repeat ``repeat`` (1, 2, ...) measures ``count`` variants:
    as listed, or with ``alternate`` reversed on every even repeat (ABBA), so a drift of the
    machine within a repeat hits the first and the last alike."""
    order = list(range(count))
    return order[::-1] if alternate and repeat % 2 == 0 else order


def run_scenario(
    scenario: Scenario, settings: Settings, progress: Progress, *, alternate: bool = False
) -> list[Row]:
    """Measure every variant of ``scenario`` ``settings.repeats`` times; return one row each.

    ``alternate``: reverse the order of the variants on every even repeat (see
    :func:`repeat_order`); by default every repeat measures them in the order listed.
    """
    variants = [*scenario.candidates, scenario.baseline]
    rows = [
        Row(scenario.name, variant.label, scenario.unit, variant is scenario.baseline)
        for variant in variants
    ]
    if scenario.peers:
        rows[-1].reference = "reference"
    for repeat in range(1, settings.repeats + 1):
        for index in repeat_order(len(variants), repeat, alternate):
            variant, row = variants[index], rows[index]
            if row.error is not None:
                continue
            try:
                measured = variant.measure(settings)
            except SkipScenario as exc:
                for each in rows:
                    each.error, each.skipped = str(exc), True
                progress(f"{scenario.name} | SKIPPED: {exc}")
                return rows
            except MeasurementError as exc:
                row.error = str(exc)
                progress(f"{scenario.name} | {variant.label} | FAILED: {exc}")
                continue
            if isinstance(measured, Sample):
                sample = measured.value
                for name, value in measured.notes.items():
                    row.notes.setdefault(name, []).append(value)
            else:
                sample = measured
            row.samples.append(sample)
            row.repeats.append(repeat)
            progress(
                f"{scenario.name} | {variant.label} | repeat {repeat}/{settings.repeats}: "
                f"{format_value(sample)} {scenario.unit}"
            )
    baseline = rows[-1]
    by_repeat = dict(zip(baseline.repeats, baseline.samples, strict=True))
    for row in rows[:-1]:
        if row.median and baseline.median:
            row.ratio = _ratio(scenario, row.median, baseline.median)
        row.paired = [
            _ratio(scenario, sample, by_repeat[repeat])
            for repeat, sample in zip(row.repeats, row.samples, strict=True)
            if by_repeat.get(repeat) and sample
        ]
    return rows


def _ratio(scenario: Scenario, value: float, baseline: float) -> float:
    """TacoQ ÷ the other: the baseline (TacoQ) over a peer's value, else a variant over the
    baseline."""
    return baseline / value if scenario.peers else value / baseline


def format_value(value: float) -> str:
    """A measured value for people: no decimals from 100 up, more below (milliseconds)."""
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.1f}" if abs(value) >= 10 else f"{value:.2f}"


def pinned(argv: Sequence[str]) -> list[str]:
    """Return ``argv`` pinned to CPU core 0 with ``taskset`` when it exists, else unchanged."""
    taskset = shutil.which("taskset")
    return [taskset, "-c", "0", *argv] if taskset else list(argv)


def run_pinned(argv: Sequence[str], timeout_s: float) -> str:
    """Run ``argv`` pinned to one core from the repository root; return its stdout.

    Raises :class:`MeasurementError` when it cannot start, times out or exits non-zero.
    """
    command = pinned(argv)
    shown = " ".join([Path(argv[0]).name, *argv[1:]])  # short, for error messages
    try:
        completed = subprocess.run(
            command,
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
    except FileNotFoundError as exc:
        raise MeasurementError(f"cannot run {command[0]}: {exc}") from exc
    except subprocess.TimeoutExpired as exc:
        raise MeasurementError(f"{shown} took more than {timeout_s:g}s") from exc
    if completed.returncode != 0:
        last = (completed.stderr.strip() or completed.stdout.strip()).splitlines()[-1:] or ["?"]
        raise MeasurementError(f"{shown} exited {completed.returncode}: {last[0].strip()[:200]}")
    return completed.stdout


def parse_json_summary(stdout: str, required: Sequence[str]) -> dict[str, Any]:
    """Return the JSON object a command printed (the whole output, or its last ``{`` line)."""
    candidates = [stdout.strip()]
    candidates += [line for line in reversed(stdout.splitlines()) if line.startswith("{")]
    for text in candidates:
        try:
            summary = json.loads(text)
        except ValueError:
            continue
        if isinstance(summary, dict):
            missing = [key for key in required if key not in summary]
            if missing:
                raise MeasurementError(f"summary lacks {', '.join(missing)}: {text[:200]}")
            return summary
    raise MeasurementError(f"no JSON summary in the output: {stdout.strip()[:200]!r}")


def throughput_of(summary: dict[str, Any]) -> float:
    """Return ``summary["throughput"]`` as a positive number, or raise MeasurementError."""
    value = summary.get("throughput")
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise MeasurementError(f"bad throughput in summary: {value!r}")
    return float(value)


def python_command(module: str, *args: str) -> list[str]:
    """Return the command that runs ``python -m module args`` with this interpreter."""
    return [sys.executable, "-m", module, *args]
