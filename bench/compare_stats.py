"""The arithmetic of an A/B comparison (``--compare REV``): per-pair ratios, their median and
spread, and the verdict. Pure functions, no I/O.

Every ratio is oriented so that above 1 means head (the working tree) is better than base (REV):
for a rate (a unit ending in ``/s``) it is head ÷ base, for a time (``ms``, ``µs``) base ÷ head.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

#: "Does not regress" means the median per-pair ratio is at least this (issue 17).
NO_REGRESSION_FLOOR = 0.97
#: The fewest pairs a comparison runs, unless ``--quick`` (issue 17).
MIN_PAIRS = 9


def higher_is_better(unit: str) -> bool:
    """True for a rate (``tasks/s``, ``updates/s``), False for a time (``ms``, ``µs``)."""
    return unit.endswith("/s")


def pair_ratio(base: float, head: float, unit: str) -> float:
    """One pair's ratio, above 1 when head is better: head ÷ base for a rate, else base ÷ head."""
    if base <= 0 or head <= 0:
        raise ValueError(f"samples must be positive, got base {base!r} and head {head!r}")
    return head / base if higher_is_better(unit) else base / head


def paired_ratios(
    base: Sequence[tuple[int, float]], head: Sequence[tuple[int, float]], unit: str
) -> list[tuple[int, float]]:
    """The ratio of every pair both sides measured, as ``(pair, ratio)`` in pair order.

    ``base`` and ``head`` are ``(pair, sample)``; a pair one side failed to measure is left out.
    """
    heads = dict(head)
    return [
        (pair, pair_ratio(sample, heads[pair], unit))
        for pair, sample in sorted(base)
        if pair in heads
    ]


@dataclass(frozen=True)
class Spread:
    """The median of a comparison's per-pair ratios and how far they spread."""

    median: float
    low: float
    high: float
    #: The quartiles (inclusive method); both equal the median with a single pair.
    q1: float
    q3: float
    count: int

    @property
    def does_not_regress(self) -> bool:
        """Whether the median per-pair ratio is at least :data:`NO_REGRESSION_FLOOR`."""
        return self.median >= NO_REGRESSION_FLOOR


def spread_of(ratios: Sequence[float]) -> Spread:
    """The median, min, max and quartiles of ``ratios`` (at least one)."""
    if not ratios:
        raise ValueError("no ratio to summarise")
    median = statistics.median(ratios)
    if len(ratios) == 1:
        q1 = q3 = median
    else:
        q1, _, q3 = statistics.quantiles(ratios, n=4, method="inclusive")
    return Spread(median, min(ratios), max(ratios), q1, q3, len(ratios))


def verdict(spread: Spread | None) -> str:
    """The verdict line: ``does not regress: yes|no (median R >= 0.97; ...)``."""
    if spread is None:
        return "does not regress: n/a (no pair measured on both sides)"
    answer = "yes" if spread.does_not_regress else "no"
    sign = ">=" if spread.does_not_regress else "<"
    return (
        f"does not regress: {answer} (median per-pair ratio {spread.median:.3f} {sign} "
        f"{NO_REGRESSION_FLOOR}; min {spread.low:.3f}, IQR {spread.q1:.3f}-{spread.q3:.3f}, "
        f"max {spread.high:.3f}; {spread.count} pair{'' if spread.count == 1 else 's'})"
    )
