"""Eventual assertions and namespace isolation for tests against asynchronous backends."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")

__all__ = ["NAMESPACE_MARK", "eventually", "fresh_namespace"]

NAMESPACE_MARK = uuid.uuid4().hex[:6]
"""Six hex digits, drawn once per process, that every :func:`fresh_namespace` of this process
carries after its prefix: how :mod:`tacoq.testing.leftovers` tells this test session's queues
and schemas from those of other runs on the same services."""


async def eventually(
    probe: Callable[[], Awaitable[T]],
    *,
    until: Callable[[T], bool] = bool,
    timeout: float = 10.0,
    interval: float = 0.02,
    message: str = "condition",
) -> T:
    """Call ``probe`` until ``until(result)`` holds; return that result.

    Fails with ``AssertionError`` naming ``message`` and the last result after ``timeout``
    seconds. Use it wherever a real broker or store settles asynchronously.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = await probe()
        if until(result):
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(
                f"{message} did not hold within {timeout}s; last value: {result!r}"
            )
        await asyncio.sleep(interval)


def fresh_namespace(prefix: str = "test") -> str:
    """A namespace no other test run uses, so tests never consume each other's messages:
    ``<prefix>-`` then :data:`NAMESPACE_MARK` and 10 random hex digits."""
    return f"{prefix}-{NAMESPACE_MARK}{uuid.uuid4().hex[:10]}"
