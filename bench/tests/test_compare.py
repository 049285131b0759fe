"""The pure parts of ``--compare REV``: ratios, median and spread, verdict, the pairing order,
REV resolution, package discovery, option checks. No service, no measurement: a throwaway git
repository at most. Run with ``nox -s bench_tests`` (``nox -s tests`` does not collect them)."""

from __future__ import annotations

import argparse
import os
import subprocess
from pathlib import Path

import pytest

from bench.cli import parser
from bench.compare import PROCESS_CPU, cpu_per_task
from bench.compare_build import CompareError, Package, package_folders, resolve_rev
from bench.compare_cli import option_error
from bench.compare_side import code_digest
from bench.compare_stats import (
    MIN_PAIRS,
    NO_REGRESSION_FLOOR,
    higher_is_better,
    pair_ratio,
    paired_ratios,
    spread_of,
    verdict,
)
from bench.harness import Row, Sample, Scenario, Settings, Variant, repeat_order, run_scenario
from bench.report import CPU_NOTE

# --- ratios, median, spread, verdict --------------------------------------------------------


@pytest.mark.parametrize(
    ("unit", "higher"),
    [("tasks/s", True), ("updates/s", True), ("ms", False), ("µs", False)],
)
def test_rates_are_better_higher_and_times_lower(unit: str, higher: bool) -> None:
    assert higher_is_better(unit) is higher


def test_a_pair_ratio_is_above_one_when_head_is_better() -> None:
    assert pair_ratio(base=100.0, head=110.0, unit="tasks/s") == pytest.approx(1.1)
    assert pair_ratio(base=2.0, head=1.6, unit="ms") == pytest.approx(1.25)
    assert pair_ratio(base=2.0, head=2.5, unit="ms") == pytest.approx(0.8)


def test_a_pair_ratio_refuses_a_non_positive_sample() -> None:
    with pytest.raises(ValueError, match="positive"):
        pair_ratio(base=0.0, head=1.0, unit="tasks/s")


def test_only_pairs_both_sides_measured_count() -> None:
    base = [(1, 100.0), (2, 100.0), (3, 100.0)]
    head = [(3, 90.0), (1, 120.0)]  # pair 2 failed on head
    assert paired_ratios(base, head, "tasks/s") == [(1, 1.2), (3, 0.9)]


def test_spread_of_an_odd_count() -> None:
    spread = spread_of([1.10, 0.90, 1.00, 0.95, 1.05])
    assert (spread.median, spread.low, spread.high, spread.count) == (1.00, 0.90, 1.10, 5)
    assert spread.q1 == pytest.approx(0.95)
    assert spread.q3 == pytest.approx(1.05)


def test_spread_of_an_even_count_and_of_one() -> None:
    assert spread_of([0.9, 1.1]).median == pytest.approx(1.0)
    one = spread_of([1.02])
    assert (one.median, one.low, one.high, one.q1, one.q3) == (1.02,) * 5


def test_spread_needs_a_ratio() -> None:
    with pytest.raises(ValueError, match="no ratio"):
        spread_of([])


def test_the_verdict_holds_at_the_floor_and_fails_below() -> None:
    assert spread_of([NO_REGRESSION_FLOOR]).does_not_regress
    assert not spread_of([0.96, 0.969, 1.2]).does_not_regress
    assert verdict(spread_of([1.0] * 9)).startswith("does not regress: yes (median per-pair")
    assert verdict(spread_of([0.9] * 9)).startswith("does not regress: no (median")
    assert "9 pairs" in verdict(spread_of([1.0] * 9))
    assert verdict(None).startswith("does not regress: n/a")


# --- the pairing order ------------------------------------------------------------------------


def test_repeat_order_alternates_only_when_asked() -> None:
    assert [repeat_order(2, repeat, False) for repeat in (1, 2, 3)] == [[0, 1]] * 3
    assert [repeat_order(2, repeat, True) for repeat in (1, 2, 3, 4)] == [
        [0, 1],
        [1, 0],
        [0, 1],
        [1, 0],
    ]
    assert repeat_order(3, 2, True) == [2, 1, 0]


def test_run_scenario_alternates_the_sides_and_keeps_the_pairs() -> None:
    calls: list[str] = []

    def side(name: str, value: float) -> Variant:
        def measure(settings: Settings) -> Sample:
            calls.append(name)
            return Sample(value, {PROCESS_CPU: 1.0})

        return Variant(name, measure)

    # The comparison's shape: head is the candidate, base the baseline.
    scenario = Scenario("s", "d", "tasks/s", (side("head", 110.0),), side("base", 100.0))
    head, base = run_scenario(scenario, Settings(repeats=4), lambda line: None, alternate=True)
    assert calls == ["head", "base", "base", "head", "head", "base", "base", "head"]
    assert head.repeats == base.repeats == [1, 2, 3, 4]
    pairs = paired_ratios(
        list(zip(base.repeats, base.samples, strict=True)),
        list(zip(head.repeats, head.samples, strict=True)),
        scenario.unit,
    )
    assert [ratio for _, ratio in pairs] == [pytest.approx(1.1)] * 4


def test_run_scenario_keeps_the_listed_order_by_default() -> None:
    calls: list[str] = []

    def variant(name: str) -> Variant:
        def measure(settings: Settings) -> float:
            calls.append(name)
            return 1.0

        return Variant(name, measure)

    scenario = Scenario("s", "d", "tasks/s", (variant("a"),), variant("b"))
    run_scenario(scenario, Settings(repeats=2), lambda line: None)
    assert calls == ["a", "b", "a", "b"]


# --- CPU per task -----------------------------------------------------------------------------


def _row(notes: dict[str, list[float]]) -> Row:
    return Row("s", "v", "tasks/s", False, samples=[1.0], notes=notes)


def test_cpu_per_task_prefers_the_scenarios_own() -> None:
    scenario = Scenario("s", "d", "tasks/s", (), Variant("b", lambda s: 1.0))
    row = _row({CPU_NOTE: [0.001, 0.003, 0.002], PROCESS_CPU: [9.0]})
    assert cpu_per_task(row, scenario, Settings()) == pytest.approx(0.002)


def test_cpu_per_task_falls_back_on_process_cpu_over_the_sample_size() -> None:
    sized = Scenario(
        "s", "d", "tasks/s", (), Variant("b", lambda s: 1.0), sample_tasks=lambda s: s.tasks
    )
    row = _row({PROCESS_CPU: [2.0, 4.0, 3.0]})
    assert cpu_per_task(row, sized, Settings(tasks=1000)) == pytest.approx(0.003)
    unsized = Scenario("s", "d", "tasks/s", (), Variant("b", lambda s: 1.0))
    assert cpu_per_task(row, unsized, Settings()) is None


# --- the variants a comparison measures -------------------------------------------------------


def test_tacoq_variants_are_the_ones_marked() -> None:
    from bench.scenarios import SCENARIOS

    for scenario in SCENARIOS:
        assert scenario.tacoq_variants(), f"{scenario.name} has no TacoQ variant to compare"
        for variant in (*scenario.candidates, scenario.baseline):
            named = variant.label.lower().startswith("tacoq")
            assert variant.tacoq is named, f"{scenario.name} / {variant.label}"


# --- REV resolution ---------------------------------------------------------------------------


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A git repository with one commit."""
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.com",
    }

    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=tmp_path, env=env, check=True, capture_output=True)

    git("init", "-q")
    (tmp_path / "file.txt").write_text("x\n")
    git("add", "file.txt")
    git("commit", "-q", "-m", "first")
    return tmp_path


def test_a_known_revision_resolves_to_its_full_hash(repo: Path) -> None:
    sha = resolve_rev("HEAD", root=repo)
    assert len(sha) == 40
    assert all(char in "0123456789abcdef" for char in sha)


@pytest.mark.parametrize("rev", ["no-such-branch", "HEAD~5", "0123456789abcdef", " ", "-x"])
def test_an_unknown_revision_is_one_clear_error(repo: Path, rev: str) -> None:
    with pytest.raises(CompareError, match=r"^unknown revision"):
        resolve_rev(rev, root=repo)


# --- package discovery ------------------------------------------------------------------------


def _package(tree: Path, folder: str, text: str) -> None:
    (tree / folder).mkdir(parents=True)
    (tree / folder / "pyproject.toml").write_text(text)


def test_packages_are_read_from_the_revisions_own_folders(tmp_path: Path) -> None:
    extras = '[project.optional-dependencies]\nrelay = ["x"]\nother = ["y"]\n'
    _package(tmp_path, "plugins/tacoq-b", '[project]\nname = "tacoq-b"\n')
    _package(tmp_path, "cli", '[project]\nname = "tacoq"\n')
    _package(tmp_path, "core", f'[project]\nname = "tacoq-core"\n{extras}')
    _package(tmp_path, "plugins/tacoq-a", '[project]\nname = "tacoq-a"\n')
    _package(tmp_path, "plugins/unrelated", '[project]\nname = "something"\n')
    _package(tmp_path, "plugins/broken", "[project\n")
    _package(tmp_path, ".bench/tacoq-x", '[project]\nname = "tacoq-x"\n')
    (tmp_path / "plugins" / "no-pyproject").mkdir()
    found = package_folders(tmp_path)
    assert [package.requirement(tmp_path) for package in found] == [
        "./core[relay]",  # only the bench session's extras REV defines ("testing" is not)
        "./cli",
        "./plugins/tacoq-a",
        "./plugins/tacoq-b",
    ]


def test_a_tree_without_tacoq_core_cannot_be_built(tmp_path: Path) -> None:
    _package(tmp_path, "cli", '[project]\nname = "tacoq"\n')
    with pytest.raises(CompareError, match="no tacoq-core"):
        package_folders(tmp_path)


def test_a_requirement_names_its_extras() -> None:
    tree = Path("/t")
    assert Package(tree / "core", "tacoq-core", ("relay", "testing")).requirement(tree) == (
        "./core[relay,testing]"
    )


# --- code identity ----------------------------------------------------------------------------


def test_the_code_digest_ignores_order_and_sees_any_change() -> None:
    files = {"tacoq/a.py": "1", "tacoq/b.py": "2"}
    assert code_digest(files) == code_digest(dict(reversed(list(files.items()))))
    assert code_digest(files) != code_digest({**files, "tacoq/b.py": "3"})


# --- options ----------------------------------------------------------------------------------


def _options(*argv: str) -> argparse.Namespace:
    return parser().parse_args(["--compare", "HEAD~1", *argv])


def test_pairs_default_to_the_minimum_and_fewer_need_quick() -> None:
    assert option_error(_options()) is None
    assert option_error(_options("--pairs", str(MIN_PAIRS))) is None
    assert "at least" in (option_error(_options("--pairs", "3")) or "")
    assert option_error(_options("--pairs", "3", "--quick")) is None


def test_repeats_do_not_go_with_compare() -> None:
    assert "--pairs" in (option_error(_options("--repeats", "3")) or "")
