"""RunningNotices: one timer reports RUNNING for exactly the attempts that outlive the threshold."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime
from typing import Any, cast

from tacoq.model.task import Phase, TaskEvent, utcnow
from tacoq.worker.report import RunningNotices, TaskReporter

THRESHOLD = 0.05
TICK = 0.01


class Recorder:
    """Stands in for the reporter: records each RUNNING with the loop time it was asked for."""

    def __init__(self) -> None:
        self.running: list[tuple[uuid.UUID, datetime, float]] = []

    def report_running(self, assignment: TaskEvent, started_at: datetime) -> None:
        loop_time = asyncio.get_running_loop().time()
        self.running.append((assignment.id, started_at, loop_time))


def _assignment() -> TaskEvent:
    return TaskEvent(
        id=uuid.uuid4(),
        attempt=1,
        phase=Phase.ASSIGNED,
        task_kind="k",
        worker_kind="w",
        ttl=60,
    )


def _notices() -> tuple[RunningNotices, Recorder]:
    recorder = Recorder()
    return RunningNotices(cast(TaskReporter, recorder), THRESHOLD, TICK), recorder


async def test_an_attempt_that_ends_before_the_threshold_is_never_reported() -> None:
    notices, recorder = _notices()
    start = notices.started(_assignment(), utcnow())
    await asyncio.sleep(THRESHOLD / 5)
    start.finished()
    await asyncio.sleep(THRESHOLD * 2)
    assert recorder.running == []


async def test_an_attempt_still_running_is_reported_once_after_the_threshold() -> None:
    notices, recorder = _notices()
    loop = asyncio.get_running_loop()
    assignment, started_at = _assignment(), utcnow()
    began = loop.time()
    start = notices.started(assignment, started_at)
    await asyncio.sleep(THRESHOLD * 4)
    start.finished()
    assert [(i, s) for i, s, _ in recorder.running] == [(assignment.id, started_at)]
    reported_after = recorder.running[0][2] - began
    assert THRESHOLD <= reported_after < THRESHOLD * 3  # generous: a loaded machine lags


async def test_among_many_starts_only_the_long_ones_are_reported_each_once() -> None:
    notices, recorder = _notices()
    long_ids = []
    starts: list[Any] = []
    for i in range(300):
        assignment = _assignment()
        start = notices.started(assignment, utcnow())
        if i % 7 == 0:
            long_ids.append(assignment.id)
            starts.append(start)
        else:
            start.finished()
        if i % 50 == 0:
            await asyncio.sleep(0.002)
    await asyncio.sleep(THRESHOLD * 4)
    assert sorted(i for i, _, _ in recorder.running) == sorted(long_ids)
    assert not notices._starts  # everything was dropped once seen
    for start in starts:
        start.finished()


async def test_close_stops_reporting() -> None:
    notices, recorder = _notices()
    notices.started(_assignment(), utcnow())
    notices.close()
    await asyncio.sleep(THRESHOLD * 2)
    assert recorder.running == []
