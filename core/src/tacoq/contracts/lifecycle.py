"""Lifecycle notifications for observers, and the handler middleware protocol.

Plugins receive these through the ``tacoq_task_listener`` and ``tacoq_handler_middleware``
hooks (see :mod:`tacoq.contracts.hookspecs`). They are for metrics, tracing and logging; they never
change what happens to a task.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol
from uuid import UUID

if TYPE_CHECKING:
    from tacoq.worker.context import TaskContext

__all__ = ["HandlerMiddleware", "LifecycleEvent", "LifecycleKind", "TaskListener"]


class LifecycleKind(enum.StrEnum):
    """What happened to a task."""

    PUBLISHED = "published"
    """A publisher's publish was confirmed by the broker."""
    STARTED = "started"
    """A worker started running an attempt."""
    SUCCEEDED = "succeeded"
    """A worker finished an attempt without error."""
    FAILED = "failed"
    """A worker finished a task's last attempt with an error (``error_type`` says which)."""
    RETRYING = "retrying"
    """An attempt failed and a new attempt was scheduled (``error_type`` says why)."""
    DEAD_LETTERED = "dead_lettered"
    """A message was set aside in the dead-letter queue (``error_type`` holds the reason)."""
    STORED = "stored"
    """The relay committed a completion to the store."""


@dataclass(frozen=True, slots=True)
class LifecycleEvent:
    """One notification. ``duration`` is the handler's run time for SUCCEEDED and FAILED."""

    kind: LifecycleKind
    task_id: UUID
    task_kind: str
    worker_kind: str
    attempt: int = 1
    duration: float | None = None
    error_type: str | None = None
    is_error: bool = False


class TaskListener(Protocol):
    """Receives lifecycle events. May return an awaitable, which is awaited before going on.

    Keep it quick: it runs on the worker's, publisher's or relay's event loop.
    """

    def on_task_event(self, event: LifecycleEvent) -> Awaitable[None] | None:
        """Called once per lifecycle event."""
        ...


class HandlerMiddleware(Protocol):
    """Wraps each call of a task handler (tracing spans, timing, context variables)."""

    async def __call__(self, ctx: TaskContext, call_next: Callable[[], Awaitable[Any]]) -> Any:
        """Run ``await call_next()`` (the handler, or the next middleware) and return its result."""
        ...
