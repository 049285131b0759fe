"""The event bus: every lifecycle notification reaches the plugins' listeners through it.

The plugin host owns one (:attr:`tacoq.plugins.PluginHost.bus`; ``host.emit(event)``) made of
every ``tacoq_task_listener`` hook's listener; publishers, workers and the relay emit through
it. A listener observes: one that raises (or whose awaitable raises) is logged with the
name of its plugin — the first failure with its traceback, later ones as one line at most every
:data:`REPEAT_LOG_INTERVAL` seconds with how many there were — and never changes what happens to
the task.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field

from tacoq.contracts.lifecycle import LifecycleEvent, TaskListener
from tacoq.logfields import task_fields

__all__ = ["REPEAT_LOG_INTERVAL", "EventBus"]

log = logging.getLogger("tacoq.bus")

#: The least time between two log lines about the same listener's repeated failures (s).
REPEAT_LOG_INTERVAL = 60.0


@dataclass(slots=True)
class _Failures:
    """How one plugin's listener has failed: in all, and since the last log line."""

    total: int = 0
    unlogged: int = 0
    logged_at: float = field(default=0.0)


class EventBus:
    """Delivers lifecycle events to listeners, each named by its plugin; false when empty."""

    def __init__(self, listeners: Sequence[tuple[str, TaskListener]] = ()) -> None:
        self.listeners = tuple(listeners)
        self._failures: dict[str, _Failures] = {}

    def __bool__(self) -> bool:
        return bool(self.listeners)

    def __repr__(self) -> str:
        return f"EventBus({', '.join(name for name, _ in self.listeners) or 'no listeners'})"

    def failures(self, plugin: str) -> int:
        """How many times ``plugin``'s listener has failed so far."""
        found = self._failures.get(plugin)
        return 0 if found is None else found.total

    def emit(self, event: LifecycleEvent) -> Awaitable[None] | None:
        """Call every listener with ``event``; return an awaitable when some listener is async.

        The awaitable waits for those listeners (their failures logged, never raised);
        ``None`` means every listener is done.
        """
        pending: list[tuple[str, Awaitable[None]]] | None = None
        for plugin, listener in self.listeners:
            try:
                result = listener.on_task_event(event)
            except Exception as exc:
                self._failed(plugin, event, exc)
                continue
            if result is not None:
                if pending is None:
                    pending = []
                pending.append((plugin, result))
        return None if pending is None else self._wait(event, pending)

    async def _wait(
        self, event: LifecycleEvent, pending: list[tuple[str, Awaitable[None]]]
    ) -> None:
        for plugin, awaitable in pending:
            try:
                await awaitable
            except Exception as exc:
                self._failed(plugin, event, exc)

    def _failed(self, plugin: str, event: LifecycleEvent, exc: Exception) -> None:
        failures = self._failures.setdefault(plugin, _Failures())
        failures.total += 1
        now = time.monotonic()
        if failures.total == 1:
            failures.logged_at = now
            log.error(
                "the task listener of plugin %r failed on %s of task %s; ignored (the task goes "
                "on; later failures of this listener are logged in one line at most every %gs)",
                plugin,
                event.kind,
                event.task_id,
                REPEAT_LOG_INTERVAL,
                exc_info=exc,
                extra=task_fields(event.task_id, event.task_kind, event.attempt),
            )
            return
        failures.unlogged += 1
        if now - failures.logged_at >= REPEAT_LOG_INTERVAL:
            log.warning(
                "the task listener of plugin %r failed %d more times (%d in all), the last on "
                "%s of task %s: %s: %s; ignored",
                plugin,
                failures.unlogged,
                failures.total,
                event.kind,
                event.task_id,
                type(exc).__name__,
                exc,
                extra=task_fields(event.task_id, event.task_kind, event.attempt),
            )
            failures.unlogged = 0
            failures.logged_at = now
