"""A/B comparison: ``python -m bench --compare REV`` (issue 17).

A ratio against a peer moves by ±20 % between runs on this shared machine, so "does not
regress" compares TacoQ with its own previous version in the same run:

- **base** is REV, built by :mod:`bench.compare_build` into its own virtual environment;
  **head** is the working tree as this interpreter has it installed (``nox -s bench``
  installs it at the session's start);
- each side is measured by ITS interpreter: a measurement is one
  ``<side's python> -m bench.compare_side measure ...`` process (:mod:`bench.compare_side`)
  running the current checkout's bench code, so the processes the scenario starts are that
  side's too. Before measuring, each side says which TacoQ it runs (the hash of every
  installed module): every module must come from that side's source tree, the two
  interpreters must differ, and every sample must carry the same code digest as its side;
- for each TacoQ variant of each chosen scenario, :func:`bench.harness.run_scenario` measures
  the two sides in ``--pairs`` pairs, one after the other, head first on odd pairs and base
  first on even ones, so drift hits both alike;
- :mod:`bench.compare_stats` turns the pairs into ratios (above 1: head is better), their
  median and spread, and the verdict; :mod:`bench.compare_report` writes it out.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.compare_build import (
    CompareError,
    build,
    describe_commit,
    git,
    resolve_rev,
    source_hashes,
    uncommitted_changes,
)
from bench.compare_stats import Spread, paired_ratios, spread_of
from bench.harness import (
    ROOT,
    MeasurementError,
    Progress,
    Row,
    Sample,
    Scenario,
    Settings,
    SkipScenario,
    Variant,
    parse_json_summary,
    run_scenario,
)
from bench.report import CPU_NOTE

#: The note a comparison adds to every sample: CPU-seconds of the measuring process and the
#: children it waited for (used for CPU s/task when the scenario reports none of its own).
PROCESS_CPU = "process CPU s"
#: Seconds allowed for one ``identify`` probe.
PROBE_TIMEOUT_S = 120.0


@dataclass
class Side:
    """One version under comparison: ``base`` (REV) or ``head`` (the working tree)."""

    name: str
    python: Path
    tree: Path
    #: ``<short hash> <subject>`` and, for head, whether the tree has uncommitted changes.
    described: str
    identity: dict[str, Any] = field(default_factory=dict)

    @property
    def digest(self) -> str:
        """The code digest the side reported (empty before :func:`probe`)."""
        return str(self.identity.get("digest", ""))

    def env(self) -> dict[str, str]:
        """The environment of the side's processes: its ``bin`` first on ``PATH``, its
        ``VIRTUAL_ENV``, no ``PYTHONPATH`` (nothing of the other side leaks in)."""
        env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
        env["PATH"] = os.pathsep.join([str(self.python.parent), env.get("PATH", "")])
        env["VIRTUAL_ENV"] = str(self.python.parent.parent)
        return env


def run_side(side: Side, args: Sequence[str], timeout_s: float) -> dict[str, Any]:
    """Run ``<side's python> -m bench.compare_side ARGS`` from the repository root; its JSON."""
    argv = [str(side.python), "-m", "bench.compare_side", *args]
    try:
        completed = subprocess.run(
            argv,
            cwd=ROOT,
            env=side.env(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
    except OSError as exc:
        raise MeasurementError(f"{side.name}: cannot run {side.python}: {exc}") from exc
    except subprocess.TimeoutExpired:
        raise MeasurementError(f"{side.name}: {args[0]} took more than {timeout_s:g}s") from None
    if completed.returncode != 0:
        last = (completed.stderr.strip() or completed.stdout.strip()).splitlines()[-1:] or ["?"]
        raise MeasurementError(
            f"{side.name}: {args[0]} exited {completed.returncode}: {last[0].strip()[:200]}"
        )
    return parse_json_summary(completed.stdout, ())


def probe(side: Side) -> None:
    """Ask the side which TacoQ it runs; :class:`CompareError` unless every installed module
    of it is a file of the side's source tree."""
    try:
        side.identity = run_side(side, ["identify"], PROBE_TIMEOUT_S)
    except MeasurementError as exc:
        raise CompareError(f"cannot tell which TacoQ {side.name} runs: {exc}") from None
    files: dict[str, str] = side.identity.get("files", {})
    if not files:
        raise CompareError(f"{side.name} ({side.python}) has no TacoQ installed")
    known = source_hashes(side.tree)
    foreign = sorted(path for path, sha in files.items() if sha not in known)
    if foreign:
        hint = " (run it through `nox -s bench`, which installs the working tree)"
        raise CompareError(
            f"{side.name} runs TacoQ code that is not in {side.tree}: {', '.join(foreign[:3])}"
            f"{' and more' if len(foreign) > 3 else ''}{hint if side.name == 'head' else ''}"
        )


def check_sides(base: Side, head: Side) -> str:
    """Raise :class:`CompareError` if both sides run in one environment (``sys.prefix``);
    return a note when they run the same TacoQ code (an A/A run: it shows the noise), else an
    empty string."""
    prefix = base.identity.get("prefix")
    if prefix == head.identity.get("prefix"):
        raise CompareError(f"base and head run in the same environment: {prefix}")
    if base.digest == head.digest:
        return "base and head run the same TacoQ code (an A/A run: the ratios show the noise)"
    return ""


def measure_on(side: Side, scenario: str, label: str) -> Callable[[Settings], Sample]:
    """A ``Variant.measure`` that takes one sample of ``label`` in a process of ``side``."""

    def measure(settings: Settings) -> Sample:
        args = ["measure", scenario, label, "--tasks", str(settings.tasks)]
        args += ["--timeout", str(settings.timeout_s), *(["--quick"] if settings.quick else [])]
        result = run_side(side, args, 4 * settings.timeout_s + 120)
        if result.get("digest") != side.digest:
            raise MeasurementError(
                f"{side.name} measured with other TacoQ code than it reported before the run"
            )
        if "skipped" in result:
            raise SkipScenario(str(result["skipped"]))
        if "error" in result:
            raise MeasurementError(f"{side.name}: {result['error']}")
        notes = {name: float(value) for name, value in dict(result.get("notes", {})).items()}
        notes[PROCESS_CPU] = float(result["cpu_s"])
        return Sample(float(result["value"]), notes)

    return measure


@dataclass
class Comparison:
    """One TacoQ variant of one scenario, measured on both sides in pairs."""

    scenario: Scenario
    label: str
    base: Row
    head: Row
    #: ``(pair, ratio)``, above 1 when head is better (see :mod:`bench.compare_stats`).
    ratios: list[tuple[int, float]]
    spread: Spread | None
    cpu_base: float | None = None
    cpu_head: float | None = None

    @property
    def error(self) -> str | None:
        """Why a side has no sample (failed or skipped), or None."""
        for row in (self.base, self.head):
            if row.error is not None:
                kind = "SKIPPED" if row.skipped else "FAILED"
                return f"{kind}: {row.error}"
        return None

    @property
    def failed(self) -> bool:
        """Whether a side failed (not skipped for want of a service)."""
        return any(row.error is not None and not row.skipped for row in (self.base, self.head))


def cpu_per_task(row: Row, scenario: Scenario, settings: Settings) -> float | None:
    """CPU-seconds per task of a side: the scenario's own ``CPU s/task`` (its timed window,
    every process of the system) when it reports one; else the measuring process tree's CPU
    (start to exit) over the scenario's tasks per sample, when it declares them; else None."""
    medians = row.note_medians()
    if CPU_NOTE in medians:
        return medians[CPU_NOTE]
    if scenario.sample_tasks is not None and PROCESS_CPU in medians:
        return medians[PROCESS_CPU] / scenario.sample_tasks(settings)
    return None


def compare_variant(
    scenario: Scenario,
    variant: Variant,
    sides: tuple[Side, Side],
    settings: Settings,
    progress: Progress,
) -> Comparison:
    """Measure ``variant`` on base and head in ``settings.repeats`` alternating pairs."""
    base, head = sides
    paired = Scenario(
        name=scenario.name,
        description=scenario.description,
        unit=scenario.unit,
        candidates=(
            Variant(f"head: {variant.label}", measure_on(head, scenario.name, variant.label)),
        ),
        baseline=Variant(f"base: {variant.label}", measure_on(base, scenario.name, variant.label)),
    )
    head_row, base_row = run_scenario(paired, settings, progress, alternate=True)
    ratios = paired_ratios(
        list(zip(base_row.repeats, base_row.samples, strict=True)),
        list(zip(head_row.repeats, head_row.samples, strict=True)),
        scenario.unit,
    )
    return Comparison(
        scenario=scenario,
        label=variant.label,
        base=base_row,
        head=head_row,
        ratios=ratios,
        spread=spread_of([ratio for _, ratio in ratios]) if ratios else None,
        cpu_base=cpu_per_task(base_row, scenario, settings),
        cpu_head=cpu_per_task(head_row, scenario, settings),
    )


@dataclass
class Prepared:
    """Both sides, built and identified, and what to say about them."""

    rev: str
    base: Side
    head: Side
    notes: list[str]


def prepare(rev: str, progress: Progress) -> Prepared:
    """Resolve and build REV, identify both sides, check them; :class:`CompareError` if not."""
    sha = resolve_rev(rev)
    notes: list[str] = []
    changed = uncommitted_changes()
    head_commit = git("rev-parse", "HEAD").stdout.strip()
    head_described = describe_commit(head_commit) if head_commit else "no commit"
    if changed:
        head_described += f" plus uncommitted changes ({len(changed)} paths)"
        notes.append(
            f"the working tree has uncommitted changes ({len(changed)} paths, e.g. "
            f"{changed[0]}): head is measured as it is on disk, as installed at the start"
        )
    if sha == head_commit and not changed:
        notes.append(f"REV {rev!r} is the commit checked out here")
    built = build(sha, progress)
    base = Side("base", built.python, built.tree, describe_commit(sha))
    head = Side("head", Path(sys.executable), ROOT, head_described)
    for side in (base, head):
        probe(side)
        progress(
            f"{side.name}: {side.described}; tacoq from {side.identity.get('tacoq_file')}; "
            f"code digest {side.digest[:12]}"
        )
    same = check_sides(base, head)
    if same:
        notes.append(same)
    return Prepared(rev, base, head, notes)


def run_comparisons(
    prepared: Prepared, scenarios: Sequence[Scenario], settings: Settings, progress: Progress
) -> list[Comparison]:
    """Every TacoQ variant of every scenario, compared in pairs (scenarios without one are
    left out, with a progress line)."""
    comparisons: list[Comparison] = []
    sides = (prepared.base, prepared.head)
    for scenario in scenarios:
        variants = scenario.tacoq_variants()
        if not variants:
            progress(f"{scenario.name}: no TacoQ variant to compare, left out")
        for variant in variants:
            comparisons.append(compare_variant(scenario, variant, sides, settings, progress))
    return comparisons
