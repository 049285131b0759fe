"""The "A/B comparisons" section of docs/benchmarks.md (written by every run, like the rest of
the page): how ``--compare REV`` works and how to read its report."""

from __future__ import annotations

from bench.compare_stats import MIN_PAIRS, NO_REGRESSION_FLOOR

SECTION = [
    "## A/B comparisons",
    "",
    "`nox -s bench -- --compare REV` measures TacoQ against its own version REV in the same "
    'run: it is how an issue states "does not regress" (the median per-pair ratio is at '
    f"least {NO_REGRESSION_FLOOR}, with its spread shown). A ratio against a peer moves by "
    "±20 % between runs on this shared machine; two versions measured in alternating pairs "
    "of one run do not carry that drift into their ratio.",
    "",
    "- **The two sides.** *base* is REV. Its files come from `git archive` (nothing is "
    "checked out, no worktree is added) into `.bench/compare/<commit>-py<version>/src`, and "
    "its packages are installed from its own folders (every `*/pyproject.toml` or "
    "`*/*/pyproject.toml` naming `tacoq` or `tacoq-*`: the core with those of the bench "
    "session's extras REV defines, the cli, each plugin REV has) with psutil, in one pip "
    "call, into `.../venv`. The build is cached by commit (the four most recently used are "
    "kept; git ignores `.bench/`; delete it to start over). *head* is the working tree as the "
    "session's interpreter has it installed: `nox -s bench` installs it at its start, "
    "uncommitted changes included (the report says so).",
    "- **Each side runs its own code.** A measurement is one process of the side's "
    "interpreter, `python -m bench.compare_side measure SCENARIO VARIANT`, running this "
    "checkout's bench code, so every process the scenario starts (`tacoq worker`, `tacoq "
    "relay`, `tacoq demo`, the publishers and callers) is that interpreter's or a console "
    "script beside it. Before measuring, each side lists the SHA-256 of every module of its "
    "installed TacoQ distributions: each must be a file of the side's source tree, the two "
    "environments must differ, and every sample must carry its side's code digest. Two sides "
    "with the same code are reported as an A/A run (the ratios then show the noise alone). "
    "The current bench code drives REV's TacoQ: a REV that lacks something the bench uses "
    "fails that variant, with the error in its row.",
    "- **What is measured.** The TacoQ variants of the chosen scenarios (`--scenario`, "
    "repeatable; default all), without baselines or peers, each in `--pairs` pairs (default "
    f"and minimum {MIN_PAIRS}; fewer only with `--quick`): a sample of each side, one right "
    "after the other, head first in odd pairs and base first in even ones, so drift hits "
    "both alike. `--tasks`, `--quick` and `--timeout` mean what they mean in a normal run; "
    "`--repeats` does not apply.",
    "- **The report.** Per variant: each side's median; the median of the per-pair ratios, "
    "oriented so that above 1 means head is better (head ÷ base for tasks/s, base ÷ head for "
    "ms and µs), with its min, interquartile range and max, and every pair's ratio; "
    "CPU-seconds per task of each side (the scenario's own when it measures one, as the peer "
    "scenarios do; otherwise the measuring processes' CPU from start to exit over the tasks "
    "of a sample, as for demo-embedded); the scenario's other side numbers, base -> head; "
    f'and the verdict "does not regress" (median >= {NO_REGRESSION_FLOOR}). It is printed '
    "and written to `docs/benchmarks-compare.md` (or `--output`); this page is left alone.",
    "- **Errors** get one line and exit status 2: an unknown REV; a REV that fails to build "
    "(with the path of the pip log); a REV without a `tacoq-core` folder; a side whose "
    "installed TacoQ is not its tree's code (for head: run it through `nox -s bench`). A "
    "measurement that fails is reported in its row, and the exit status is 1.",
    "",
    "For example: `nox -s bench -- --compare HEAD~1 --scenario peers-drain --scenario "
    "peers-latency --scenario demo-embedded`.",
]
"""The section's lines (Markdown), placed after the scenarios."""
