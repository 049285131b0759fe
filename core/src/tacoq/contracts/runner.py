"""The worker runner contract: how ``tacoq worker`` asks a plugin to run a worker app.

``tacoq worker`` turns its options into a :class:`WorkerRunRequest` and asks the
``tacoq_worker_runner`` hook for the first :class:`WorkerRunner` that accepts it; the built-in
one (:class:`tacoq.worker.runner.BuiltinRunner`) answers last and declines ``--reload``, which
the ``tacoq-hotreload`` plugin answers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

__all__ = ["WorkerRunRequest", "WorkerRunner"]


@dataclass(frozen=True, slots=True)
class WorkerRunRequest:
    """What ``tacoq worker`` was asked to run. ``None`` fields fall back to the app's settings."""

    app_ref: str
    broker_url: str | None = None
    namespace: str | None = None
    concurrency: int | None = None
    prefetch: int | None = None
    name: str | None = None
    grace: float | None = None
    heartbeat_interval: float | None = None
    reload: bool = False
    reload_dirs: tuple[str, ...] = field(default_factory=tuple)
    #: ``--log-level`` and ``--log-format`` as given (a runner that starts the worker in a
    #: process of its own passes them on).
    log_level: str | None = None
    log_format: str | None = None


class WorkerRunner(Protocol):
    """Runs a worker until it is told to stop; returns the process exit code."""

    def run(self, request: WorkerRunRequest) -> int:
        """Run the worker described by ``request`` (blocking)."""
        ...
