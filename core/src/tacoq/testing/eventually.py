"""Eventual assertions and namespace isolation for tests against asynchronous backends."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")

__all__ = ["eventually", "fresh_namespace"]


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
    """A namespace no other test run uses, so tests never consume each other's messages."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"
