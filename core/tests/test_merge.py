"""The one merge rule (:mod:`tacoq.model.merge`): any order and duplication converge to one row."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Sequence
from dataclasses import replace
from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from tacoq.model.merge import MergeCounts, MergeOutcome, fold, fold_batch, merge
from tacoq.model.task import ErrorInfo, Phase, Task, TaskEvent, TaskStatus
from tacoq.testing.strategies import T0, deliveries, event, task_histories, task_history


def expected_row(history: Sequence[TaskEvent]) -> Task:
    """An independent oracle: the row the spec describes for one task's true history.

    The greatest event decides the state; the assignment gives kinds, input, priority and
    ``created_at``; worker fields come from the greatest event only when it is a worker's; an
    unfinished row shows the error its current attempt's assignment carries (a retry's cause).
    """
    greatest = max(history, key=lambda e: e.key)
    assignment = next(e for e in history if e.phase is Phase.ASSIGNED)
    by_worker = greatest.phase is not Phase.ASSIGNED
    done = greatest.phase is Phase.COMPLETED
    current = next(
        e for e in history if e.phase is Phase.ASSIGNED and e.attempt == greatest.attempt
    )
    return Task(
        id=assignment.id,
        task_kind=assignment.task_kind,
        worker_kind=assignment.worker_kind,
        status=greatest.phase.status,
        priority=assignment.priority,
        attempt=greatest.attempt,
        ttl=greatest.ttl,
        is_error=done and greatest.is_error,
        error=greatest.error if done else current.error,
        input=assignment.input,
        output=greatest.output if done else None,
        created_at=assignment.created_at,
        started_at=greatest.started_at if by_worker else None,
        completed_at=greatest.completed_at if done else None,
        executed_by=greatest.executed_by if by_worker else None,
    )


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_any_delivery_of_one_task_converges(data: st.DataObject) -> None:
    """Shuffled and duplicated, a task's events fold to the oracle's row; copies are counted."""
    history = data.draw(task_history(), label="history")
    delivered = [e for batch in data.draw(deliveries(history)) for e in batch]
    row, counts = fold(delivered)
    assert row == expected_row(history)
    completions = sum(1 for e in delivered if e.phase is Phase.COMPLETED)
    assert counts.duplicate_completions == max(completions - 1, 0)
    assert counts.conflicting_completions == 0
    assert counts.applied + counts.ignored + counts.duplicate_completions == len(delivered)


@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_fold_batch_over_batches_converges(data: st.DataObject) -> None:
    """Batches of many tasks, folded with ``fold_batch`` onto stored rows, give the oracle."""
    history = data.draw(task_histories(), label="history")
    rows: dict[uuid.UUID, Task] = {}
    for batch in data.draw(deliveries(history)):
        changed, _ = fold_batch(batch, rows)
        assert all(rows.get(i) != row for i, row in changed.items())  # only real changes
        rows.update(changed)
    by_id: dict[uuid.UUID, list[TaskEvent]] = {}
    for e in history:
        by_id.setdefault(e.id, []).append(e)
    assert rows == {task_id: expected_row(events) for task_id, events in by_id.items()}


def _outcomes(events: Sequence[TaskEvent]) -> tuple[Task | None, list[MergeOutcome]]:
    row: Task | None = None
    outcomes = []
    for e in events:
        row, outcome = merge(row, e)
        outcomes.append(outcome)
    return row, outcomes


def test_completion_before_running_before_assignment() -> None:
    """Reversed arrival still shows the completion, with the assignment's input filled in."""
    i = uuid.uuid4()
    a, r, c = (event(i, p) for p in (Phase.ASSIGNED, Phase.RUNNING, Phase.COMPLETED))
    row, outcomes = _outcomes([c, r, a])
    assert outcomes == [MergeOutcome.CREATED, MergeOutcome.IGNORED, MergeOutcome.FILLED]
    assert row == fold([a, r, c])[0] == expected_row([a, r, c])
    assert row is not None
    assert row.status is TaskStatus.COMPLETED
    assert row.created_at == T0
    assert row.input == a.input
    assert row.priority == 7


def test_redelivered_running_after_completion_is_ignored() -> None:
    """A RUNNING redelivered after the completion never reopens the task."""
    i = uuid.uuid4()
    a, r, c = (event(i, p) for p in (Phase.ASSIGNED, Phase.RUNNING, Phase.COMPLETED))
    done, _ = fold([a, r, c])
    assert done is not None
    again, outcome = merge(done, r)
    assert outcome is MergeOutcome.IGNORED
    assert again is done


def test_retried_attempt_supersedes_the_first() -> None:
    """Attempt 2's assignment after attempt 1's RUNNING waits again; a late RUNNING of 1 is
    ignored; attempt 2's completion is final."""
    i = uuid.uuid4()
    failure = ErrorInfo("TimeoutError", "attempt 1 timed out")
    a1, r1 = event(i, Phase.ASSIGNED), event(i, Phase.RUNNING, worker="w1")
    a2 = event(i, Phase.ASSIGNED, attempt=2, error=failure)
    row, outcomes = _outcomes([a1, r1, a2])
    assert outcomes[-1] is MergeOutcome.APPLIED
    assert row is not None
    assert (row.status, row.attempt) == (TaskStatus.PENDING, 2)
    assert row.executed_by is None
    assert row.started_at is None
    assert row.error == failure
    row, outcome = merge(row, r1)
    assert outcome is MergeOutcome.IGNORED
    row, _ = fold([event(i, Phase.RUNNING, 2, worker="w2"), event(i, Phase.COMPLETED, 2)], row)
    assert row is not None
    assert row.is_completed
    assert row.attempt == 2
    assert row.error is None
    assert row.started_at == T0 + timedelta(seconds=2)


def test_identical_completion_is_a_duplicate() -> None:
    """A redelivered completion is counted as a duplicate and changes nothing."""
    c = event(uuid.uuid4(), Phase.COMPLETED)
    row, counts = fold([c, c, c])
    assert counts == MergeCounts(applied=1, duplicate_completions=2)
    assert row == merge(None, c)[0]


def test_different_second_completion_conflicts_and_is_not_applied() -> None:
    """The first completion wins; a different one is counted as a conflict."""
    i = uuid.uuid4()
    first = event(i, Phase.COMPLETED, worker="w1", output=b"1")
    second = event(i, Phase.COMPLETED, worker="w2", output=b"2")
    row, _ = merge(None, first)
    after, outcome = merge(row, second)
    assert outcome is MergeOutcome.CONFLICTING_COMPLETION
    assert after is row
    _, counts = fold([first, second, first])
    assert counts == MergeCounts(applied=1, duplicate_completions=1, conflicting_completions=1)


def test_fold_batch_returns_only_changed_rows() -> None:
    """Rows a batch does not change are not returned (so stores write nothing for them)."""
    i, j = uuid.uuid4(), uuid.uuid4()
    rows = {i: merge(None, event(i, Phase.COMPLETED))[0]}
    changed, counts = fold_batch(
        [event(i, Phase.RUNNING), event(i, Phase.COMPLETED), event(j, Phase.ASSIGNED)], rows
    )
    assert list(changed) == [j]
    assert counts == MergeCounts(applied=1, ignored=1, duplicate_completions=1)


def test_retry_error_survives_a_late_assignment() -> None:
    """A retry assignment carries the previous error; the row should show it in any order."""
    i = uuid.uuid4()
    failure = ErrorInfo("TimeoutError", "attempt 1 timed out")
    a1, a2 = event(i, Phase.ASSIGNED), event(i, Phase.ASSIGNED, attempt=2, error=failure)
    r2 = event(i, Phase.RUNNING, attempt=2)
    in_order, _ = fold([a1, a2, r2])
    reversed_, _ = fold([r2, a2, a1])
    assert in_order is not None
    assert in_order.error == failure
    assert reversed_ == in_order


def test_a_retry_notice_and_the_retry_assignment_converge_in_any_order() -> None:
    """The failing worker's notice (error, no input) and the assignment copy (input, no error)
    are two ASSIGNED events of one attempt: any order shows the input AND the error."""
    i = uuid.uuid4()
    failure = ErrorInfo("ValueError", "attempt 1 failed")
    a1 = event(i, Phase.ASSIGNED)
    r1 = event(i, Phase.RUNNING)
    copy = event(i, Phase.ASSIGNED, attempt=2)
    notice = replace(
        event(i, Phase.ASSIGNED, attempt=2, error=failure), input=None, created_at=None
    )
    r2 = event(i, Phase.RUNNING, attempt=2)
    rows = {fold(order)[0] for order in itertools.permutations([a1, r1, copy, notice, r2])}
    assert len(rows) == 1
    (row,) = rows
    assert row.attempt == 2
    assert row.error == failure
    assert row.input == a1.input
    assert row.created_at == a1.created_at


def test_duplicates_are_only_completions() -> None:
    """Sanity check of the oracle's counting: other repeated events are ignored, not counted."""
    i = uuid.uuid4()
    a, r = event(i, Phase.ASSIGNED), event(i, Phase.RUNNING)
    _, counts = fold([a, a, r, r])
    assert counts == MergeCounts(applied=2, ignored=2)
