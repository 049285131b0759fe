"""Retry policies: which failures a task retries, how many times, and how long it waits.

A retry is a new assignment of the same task id with ``attempt + 1``, published through the
broker's delayed publish (docs/architecture.md, "2. Run", step 6): while it waits it holds no
worker slot and no prefetch.
The wait grows exponentially with the attempt, is capped, and is jittered so that many tasks
failing together (a database restart) do not come back together.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

__all__ = ["DEFAULT_RETRY_BACKOFF", "DEFAULT_RETRY_BACKOFF_MAX", "RetryPolicy"]

#: Seconds before the first retry (before jitter); doubled for each later attempt.
DEFAULT_RETRY_BACKOFF = 1.0
#: The longest wait between two attempts, in seconds (before jitter).
DEFAULT_RETRY_BACKOFF_MAX = 60.0


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How one task kind retries.

    ``retries`` extra attempts after the first, for exceptions that are instances of
    ``retry_on``. Before attempt ``n + 1`` the task waits ``min(backoff_max, backoff * 2**(n-1))``
    seconds, jittered into its upper half ("equal jitter"): the wait still grows with every
    attempt, and simultaneous failures spread out. ``backoff=0`` retries at once.
    """

    retries: int = 0
    retry_on: tuple[type[BaseException], ...] = (Exception,)
    backoff: float = DEFAULT_RETRY_BACKOFF
    backoff_max: float = DEFAULT_RETRY_BACKOFF_MAX

    def __post_init__(self) -> None:
        if self.retries < 0:
            raise ValueError("retries must be >= 0")
        if self.backoff < 0:
            raise ValueError("retry_backoff must be >= 0 seconds")
        if self.backoff_max < self.backoff:
            raise ValueError("retry_backoff_max must be >= retry_backoff")
        if not all(isinstance(t, type) and issubclass(t, BaseException) for t in self.retry_on):
            raise TypeError("retry_on must be a tuple of exception types")

    def should_retry(self, exc: BaseException, attempt: int) -> bool:
        """True when attempt ``attempt`` failing with ``exc`` gets another attempt."""
        return attempt <= self.retries and isinstance(exc, self.retry_on)

    def ceiling(self, attempt: int) -> float:
        """The un-jittered wait before the attempt after ``attempt``, in seconds."""
        if self.backoff == 0:
            return 0.0
        exponent = min(attempt - 1, 64)  # 2**64 seconds is past any cap; avoid float overflow
        return min(self.backoff_max, self.backoff * 2.0**exponent)

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """The jittered wait before the attempt after ``attempt``: in ``[ceiling/2, ceiling]``."""
        ceiling = self.ceiling(attempt)
        return ceiling / 2 + (rng or random).uniform(0, ceiling / 2)
