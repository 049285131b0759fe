"""Hypothesis strategies for task histories, reused by the store contract and plugin suites.

A *true history* is what really happened to some tasks: each task has attempts ``1..n``; every
attempt is assigned and optionally running; only the last attempt may complete. Each distinct
``(id, attempt, phase)`` event appears once. :func:`deliveries` then shuffles, duplicates and
batches it the way a broker may deliver it to the relay.

Ids drawn by hypothesis repeat between examples (that is how it shrinks), so a test against a
real store renames them per example with :func:`with_fresh_ids`. :func:`event` builds one
realistic event for hand-written examples.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from uuid import UUID

from hypothesis import strategies as st

from tacoq.model.task import ErrorInfo, Payload, Phase, TaskEvent

__all__ = [
    "T0",
    "deliveries",
    "error_infos",
    "event",
    "payloads",
    "task_histories",
    "task_history",
    "timestamps",
    "with_fresh_ids",
]

#: The time examples start from: exact to the microsecond, UTC.
T0 = datetime.fromisoformat("2026-01-01T00:00:00.123456+00:00")


def event(
    task_id: UUID,
    phase: Phase,
    attempt: int = 1,
    *,
    worker: str = "worker-1",
    created_at: datetime | None = T0,
    output: bytes | None = b'{"ok": true}',
    error: ErrorInfo | None = None,
    ttl: int = 3600,
    task_kind: str = "add",
    worker_kind: str = "math",
) -> TaskEvent:
    """A realistic event of ``phase``: assignments carry input and ``created_at``, workers'
    events carry ``executed_by`` and timestamps, a completion carries output or error."""
    base = TaskEvent(task_id, attempt, phase, task_kind, worker_kind, ttl=ttl)
    if phase is Phase.ASSIGNED:
        body = Payload("application/json", b"[1, 2]")
        return replace(base, priority=7, created_at=created_at, input=body, error=error)
    started = T0 + timedelta(seconds=attempt)
    if phase is Phase.RUNNING:
        return replace(base, executed_by=worker, started_at=started)
    failed = error is not None
    return replace(
        base,
        executed_by=worker,
        started_at=started,
        completed_at=started + timedelta(milliseconds=5),
        is_error=failed,
        error=error,
        output=None if failed or output is None else Payload("application/json", output),
    )


_NAMES = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_.-", min_size=1, max_size=12)
_CONTENT_TYPES = st.sampled_from(
    ["application/json", "application/octet-stream", "text/plain; charset=utf-8", "x/y"]
)


def timestamps() -> st.SearchStrategy[datetime]:
    """Aware UTC datetimes with microseconds, between 1990 and 2100."""
    return st.datetimes(
        min_value=datetime(1990, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
    )


def payloads() -> st.SearchStrategy[Payload]:
    """Payloads of arbitrary bytes (including empty, NUL and non-UTF-8) or encoded text."""
    data = st.binary(max_size=64) | st.text(max_size=32).map(str.encode)
    return st.builds(Payload, content_type=_CONTENT_TYPES, data=data)


def error_infos() -> st.SearchStrategy[ErrorInfo]:
    """Errors with any message text and an optional traceback."""
    return st.builds(
        ErrorInfo,
        type=_NAMES,
        message=st.text(max_size=40),
        traceback=st.none() | st.text(max_size=80),
    )


@st.composite
def task_history(
    draw: st.DrawFn,
    task_id: UUID | None = None,
    *,
    max_attempts: int = 3,
    retry_errors: bool = True,
) -> list[TaskEvent]:
    """The true history of one task, in the order it happened.

    With ``retry_errors`` a retry's assignment carries the previous attempt's error (see
    ``test_merge.py`` for why that is off by default).
    """
    task_id = task_id or draw(st.uuids(version=4))
    attempts = draw(st.integers(1, max_attempts))
    task_kind, worker_kind = draw(_NAMES), draw(_NAMES)
    ttl = draw(st.integers(0, 10**7))
    priority = draw(st.integers(0, 255))
    created_at = draw(timestamps())
    task_input = draw(st.none() | payloads())
    base = TaskEvent(task_id, 1, Phase.ASSIGNED, task_kind, worker_kind, ttl=ttl)
    events: list[TaskEvent] = []
    previous_error: ErrorInfo | None = None
    for attempt in range(1, attempts + 1):
        events.append(
            replace(
                base,
                attempt=attempt,
                priority=priority,
                created_at=created_at,
                input=task_input,
                error=previous_error if retry_errors else None,
            )
        )
        worker, started_at = draw(_NAMES), draw(timestamps())
        if draw(st.booleans()):
            events.append(
                replace(
                    base,
                    attempt=attempt,
                    phase=Phase.RUNNING,
                    executed_by=worker,
                    started_at=started_at,
                )
            )
        if attempt == attempts and draw(st.booleans()):
            is_error = draw(st.booleans())
            events.append(
                replace(
                    base,
                    attempt=attempt,
                    phase=Phase.COMPLETED,
                    executed_by=worker,
                    started_at=started_at,
                    completed_at=draw(timestamps()),
                    is_error=is_error,
                    output=None if is_error else draw(st.none() | payloads()),
                    error=draw(error_infos()) if is_error else None,
                )
            )
        previous_error = draw(error_infos())
    return events


@st.composite
def task_histories(
    draw: st.DrawFn,
    *,
    min_tasks: int = 1,
    max_tasks: int = 5,
    max_attempts: int = 3,
    retry_errors: bool = True,
) -> list[TaskEvent]:
    """The true histories of several tasks (distinct ids), concatenated."""
    ids = draw(st.lists(st.uuids(version=4), min_size=min_tasks, max_size=max_tasks, unique=True))
    events: list[TaskEvent] = []
    for task_id in ids:
        events += draw(task_history(task_id, max_attempts=max_attempts, retry_errors=retry_errors))
    return events


@st.composite
def deliveries(
    draw: st.DrawFn, events: Sequence[TaskEvent], *, max_copies: int = 3, max_batches: int = 4
) -> list[list[TaskEvent]]:
    """``events`` as a broker may deliver them: shuffled, some duplicated, in batches."""
    copies = [e for e in events for _ in range(draw(st.integers(1, max_copies)))]
    shuffled = draw(st.permutations(copies))
    if not shuffled:
        return []
    cuts = draw(
        st.lists(st.integers(1, max(len(shuffled) - 1, 1)), max_size=max_batches - 1, unique=True)
    )
    bounds = [0, *sorted(c for c in cuts if c < len(shuffled)), len(shuffled)]
    return [list(shuffled[a:b]) for a, b in itertools.pairwise(bounds) if b > a]


def with_fresh_ids(batches: Iterable[Sequence[TaskEvent]]) -> list[list[TaskEvent]]:
    """The same batches with every task id replaced (consistently) by a new random id."""
    renamed: dict[UUID, UUID] = {}
    fresh: list[list[TaskEvent]] = []
    for batch in batches:
        fresh.append([replace(e, id=renamed.setdefault(e.id, uuid.uuid4())) for e in batch])
    return fresh
