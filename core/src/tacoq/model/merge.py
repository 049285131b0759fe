"""The one merge rule: how a task's events fold into its row (docs/architecture.md, "5. The
merge rule").

Every store applies exactly this rule, natively or by calling :func:`merge`; the store contract
suite checks each store against it.

- Events are ordered by ``(attempt, phase)`` with ASSIGNED < RUNNING < COMPLETED; the row shows
  the greatest event it has seen.
- ``COMPLETED`` is final: the first committed completion wins; later completions are counted
  (as duplicates when identical, as conflicts otherwise) and never applied.
- Kinds, input, priority and ``created_at`` come from the assignment (whenever it arrives),
  never from the store's clock.

So any order and any duplication of one task's events converge to the same row.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, replace
from uuid import UUID

from tacoq.model.task import Phase, Task, TaskEvent

__all__ = ["MergeCounts", "MergeOutcome", "fold", "fold_batch", "merge"]


class MergeOutcome(enum.Enum):
    """What :func:`merge` did with one event."""

    CREATED = "created"
    """The event made a new row."""
    APPLIED = "applied"
    """The event was greater than the row's and became its state."""
    FILLED = "filled"
    """A late assignment filled in the input, priority and ``created_at``."""
    IGNORED = "ignored"
    """The event was older than (or equal to) what the row already shows."""
    DUPLICATE_COMPLETION = "duplicate_completion"
    """A completion identical to the one the row holds (a redelivery)."""
    CONFLICTING_COMPLETION = "conflicting_completion"
    """A different completion after the row completed (the task ran twice)."""


@dataclass(slots=True)
class MergeCounts:
    """Counters of what a batch of merges did; stores keep these as statistics."""

    applied: int = 0
    ignored: int = 0
    duplicate_completions: int = 0
    conflicting_completions: int = 0

    def add(self, outcome: MergeOutcome) -> None:
        """Count one outcome."""
        if outcome is MergeOutcome.DUPLICATE_COMPLETION:
            self.duplicate_completions += 1
        elif outcome is MergeOutcome.CONFLICTING_COMPLETION:
            self.conflicting_completions += 1
        elif outcome is MergeOutcome.IGNORED:
            self.ignored += 1
        else:
            self.applied += 1

    def __iadd__(self, other: MergeCounts) -> MergeCounts:
        self.applied += other.applied
        self.ignored += other.ignored
        self.duplicate_completions += other.duplicate_completions
        self.conflicting_completions += other.conflicting_completions
        return self


def _row_from(event: TaskEvent) -> Task:
    return Task(
        id=event.id,
        task_kind=event.task_kind,
        worker_kind=event.worker_kind,
        status=event.phase.status,
        priority=event.priority,
        attempt=event.attempt,
        ttl=event.ttl,
        is_error=event.is_error,
        error=event.error,
        input=event.input,
        output=event.output,
        created_at=event.created_at,
        started_at=event.started_at,
        completed_at=event.completed_at,
        executed_by=event.executed_by,
    )


def _fill_assignment(row: Task, event: TaskEvent) -> Task:
    return replace(
        row,
        task_kind=event.task_kind,
        worker_kind=event.worker_kind,
        priority=event.priority,
        created_at=event.created_at,
        input=event.input,
    )


def _same_completion(row: Task, event: TaskEvent) -> bool:
    return (
        row.attempt == event.attempt
        and row.executed_by == event.executed_by
        and row.is_error == event.is_error
        and row.output == event.output
        and row.error == event.error
        and row.completed_at == event.completed_at
    )


def merge(row: Task | None, event: TaskEvent) -> tuple[Task, MergeOutcome]:
    """Fold one event into a row (``None`` when the store has no row yet).

    Returns the new row (the same object when nothing changed) and what happened.
    """
    if row is None:
        return _row_from(event), MergeOutcome.CREATED
    filled = False
    if event.phase is Phase.ASSIGNED:
        if row.created_at is None and event.created_at is not None:
            row, filled = _fill_assignment(row, event), True
        if (
            not row.is_completed
            and event.attempt == row.attempt
            and event.error is not None
            and event.error != row.error
        ):
            # The previous attempt's error, carried by this attempt's assignment (or by the
            # failing worker's retry notice), is shown whichever event arrived first. An
            # assignment without an error never clears one, so the two converge in any order.
            row, filled = replace(row, error=event.error), True
    if row.is_completed:
        if event.phase is Phase.COMPLETED:
            if _same_completion(row, event):
                return row, MergeOutcome.DUPLICATE_COMPLETION
            return row, MergeOutcome.CONFLICTING_COMPLETION
        return row, MergeOutcome.FILLED if filled else MergeOutcome.IGNORED
    if event.key > (row.attempt, int(row.phase)):
        return _advance(row, event), MergeOutcome.APPLIED
    return row, MergeOutcome.FILLED if filled else MergeOutcome.IGNORED


def _advance(row: Task, event: TaskEvent) -> Task:
    """The row once ``event`` (greater than the row's state) is its state."""
    if event.phase is Phase.ASSIGNED:
        # A retry: a new attempt waits in the queue, showing the last error known.
        return replace(
            row,
            status=event.phase.status,
            attempt=event.attempt,
            ttl=event.ttl,
            started_at=None,
            executed_by=None,
            error=event.error if event.error is not None else row.error,
        )
    if event.phase is Phase.RUNNING:
        return replace(
            row,
            status=event.phase.status,
            attempt=event.attempt,
            ttl=event.ttl,
            started_at=event.started_at,
            executed_by=event.executed_by,
        )
    # Built directly (every field), not with dataclasses.replace: this is the relay's hot path.
    return Task(
        id=row.id,
        task_kind=row.task_kind,
        worker_kind=row.worker_kind,
        status=event.phase.status,
        priority=row.priority,
        attempt=event.attempt,
        ttl=event.ttl,
        is_error=event.is_error,
        error=event.error,
        input=row.input,
        output=event.output,
        created_at=row.created_at,
        started_at=event.started_at,
        completed_at=event.completed_at,
        executed_by=event.executed_by,
    )


def fold(events: Iterable[TaskEvent], row: Task | None = None) -> tuple[Task | None, MergeCounts]:
    """Fold a sequence of one task's events, in order, into its row."""
    counts = MergeCounts()
    for event in events:
        row, outcome = merge(row, event)
        counts.add(outcome)
    return row, counts


def fold_batch(
    events: Iterable[TaskEvent], rows: dict[UUID, Task]
) -> tuple[dict[UUID, Task], MergeCounts]:
    """Fold a batch of events of many tasks onto ``rows`` (the stored rows of those tasks).

    Returns only the rows that changed, keyed by id, and the batch's counters. Stores use this
    to merge a batch in memory first, so each row is written at most once per batch.
    """
    counts = MergeCounts()
    changed: dict[UUID, Task] = {}
    for event in events:
        current = changed.get(event.id) or rows.get(event.id)
        new, outcome = merge(current, event)
        counts.add(outcome)
        if new is not current:
            changed[event.id] = new
    return changed, counts
