"""Retries (policy, backoff, no slot held while waiting) and timeouts (async cancelled, sync
abandoned but holding its slot), on the real in-process broker and store."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import threading
import time

import pytest

import tacoq
from tacoq.testing import eventually
from tacoq.testing.system import InProcessSystem, in_process_system
from tacoq.worker import WorkerApp
from tacoq.worker.retry import RetryPolicy

WAIT = 15.0


def system() -> contextlib.AbstractAsyncContextManager[InProcessSystem]:
    """A relay and a publisher on a fresh memory:// server; runtimes of 4 slots named "rt"."""
    return in_process_system("rt", concurrency=4, name="rt")


# -- the retry policy ---------------------------------------------------------------------------


def test_backoff_doubles_per_attempt_up_to_its_cap_with_jitter_in_the_upper_half() -> None:
    policy = RetryPolicy(retries=10, backoff=0.5, backoff_max=3.0)
    assert [policy.ceiling(n) for n in range(1, 6)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    for attempt in range(1, 8):
        for _ in range(50):
            assert policy.ceiling(attempt) / 2 <= policy.delay(attempt) <= policy.ceiling(attempt)
    assert RetryPolicy(retries=1, backoff=0).delay(5) == 0
    assert policy.ceiling(10_000) == 3.0  # no overflow for absurd attempts


def test_only_listed_exceptions_retry_and_only_while_attempts_remain() -> None:
    policy = RetryPolicy(retries=2, retry_on=(ConnectionError,))
    assert policy.should_retry(ConnectionResetError(), 1)
    assert policy.should_retry(ConnectionError(), 2)
    assert not policy.should_retry(ConnectionError(), 3)
    assert not policy.should_retry(KeyError(), 1)


@pytest.mark.parametrize(
    "options",
    [
        {"retries": -1},
        {"retry_backoff": -0.1},
        {"retry_backoff": 2.0, "retry_backoff_max": 1.0},
        {"retry_on": ("ConnectionError",)},
    ],
)
def test_bad_retry_options_are_refused_at_declaration(options: dict[str, object]) -> None:
    app = WorkerApp("w")
    with pytest.raises((ValueError, TypeError)):
        app.task(**options)(_noop)  # type: ignore[call-overload]


async def _noop(value: int) -> int:
    return value


def test_retry_options_are_kept_on_the_taskdef() -> None:
    app = WorkerApp("w")
    taskdef = app.task(retries=4, retry_on=(OSError,), retry_backoff=0.2, retry_backoff_max=5)(
        _noop
    )
    assert taskdef.retry == RetryPolicy(4, (OSError,), 0.2, 5)
    assert (taskdef.retries, taskdef.retry_on) == (4, (OSError,))


# -- retries at work ----------------------------------------------------------------------------


async def test_waiting_retries_hold_no_worker_slot() -> None:
    """With one slot, a task published after a failing one completes while the retry waits."""
    app = WorkerApp("w")
    starts: list[float] = []

    @app.task(retries=1, retry_backoff=1.0)
    async def flaky(value: int, ctx: tacoq.TaskContext) -> int:
        starts.append(time.monotonic())
        if ctx.attempt == 1:
            raise ConnectionError("try again")
        return value

    @app.task
    async def quick(value: int) -> int:
        return value

    async with system() as sys_, sys_.serving(app, concurrency=1, prefetch=1) as runtime:
        first = await sys_.pub.publish(flaky, 1)
        await eventually(lambda: _value(runtime.stats.retried), until=lambda n: n == 1)
        second = await sys_.pub.publish(quick, 2)
        quick_row = await sys_.wait(second.id)
        flaky_row = await sys_.wait(first.id)

    assert quick_row.completed_at is not None
    assert flaky_row.started_at is not None
    assert quick_row.completed_at < flaky_row.started_at  # ran during the retry's wait
    assert flaky_row.attempt == 2
    assert flaky_row.result(int) == 1
    assert starts[1] - starts[0] >= 0.5  # the backoff's lower bound (1.0 s, equal jitter)
    assert runtime.stats.retried == 1
    assert runtime.stats.succeeded == 2


async def test_a_waiting_retry_shows_its_attempt_and_the_last_error() -> None:
    """While attempt 2 waits out its backoff, the row is PENDING at attempt 2 and shows why
    attempt 1 failed; once it succeeds the error is gone."""
    app = WorkerApp("w")

    @app.task(retries=1, retry_backoff=4.0)
    async def flaky(value: int, ctx: tacoq.TaskContext) -> int:
        if ctx.attempt == 1:
            raise ConnectionError("upstream refused")
        return value

    async with system() as sys_, sys_.serving(app) as runtime:
        task = await sys_.pub.publish(flaky, 7)
        waiting = await eventually(
            lambda: sys_.relay.store.get(task.id),
            until=lambda row: row is not None and row.attempt == 2 and row.error is not None,
            timeout=WAIT,
            message="the retry's row shows attempt 2 and attempt 1's error",
        )
        done = await sys_.wait(task.id)

    assert waiting is not None
    assert waiting.status is tacoq.TaskStatus.PENDING
    assert waiting.error is not None
    assert waiting.error.type == "ConnectionError"
    assert waiting.error.message == "upstream refused"
    assert waiting.input is not None  # the assignment's fields are there too
    assert done.error is None
    assert done.result(int) == 7
    assert runtime.stats.retried == 1


async def test_backoff_grows_per_attempt_and_is_capped() -> None:
    app = WorkerApp("w")
    starts: list[float] = []

    @app.task(retries=3, retry_backoff=0.3, retry_backoff_max=0.4)
    async def failing(value: int) -> int:
        starts.append(time.monotonic())
        raise RuntimeError(f"failure {len(starts)}")

    async with system() as sys_, sys_.serving(app) as runtime:
        task = await sys_.pub.publish(failing, 1)
        row = await sys_.wait(task.id)

    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert len(gaps) == 3
    assert gaps[0] >= 0.15  # ceiling 0.3
    assert gaps[1] >= 0.2  # ceiling 0.6, capped at 0.4
    assert gaps[2] >= 0.2
    assert max(gaps) < 0.4 + 0.5  # capped (plus scheduling slack)
    assert row.is_error
    assert row.error is not None
    assert (row.error.type, row.error.message) == ("RuntimeError", "failure 4")
    assert row.attempt == 4
    assert (runtime.stats.retried, runtime.stats.failed) == (3, 1)


async def _value(value: int) -> int:
    return value


# -- timeouts -----------------------------------------------------------------------------------


async def test_an_async_handler_is_cancelled_at_its_deadline() -> None:
    app = WorkerApp("w")
    cancelled = asyncio.Event()

    @app.task(timeout=0.1)
    async def slow(value: int) -> int:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return value

    async with system() as sys_, sys_.serving(app) as runtime:
        task = await sys_.pub.publish(slow, 1)
        row = await sys_.wait(task.id, timeout=5)
        assert cancelled.is_set()

    assert row.error is not None
    assert row.error.type == "TimeoutError"
    assert runtime.stats.timed_out == 1
    assert runtime.stats.sync_timed_out_running == 0


async def test_an_async_handler_that_swallows_its_cancellation_still_times_out() -> None:
    app = WorkerApp("w")
    release = asyncio.Event()

    @app.task(timeout=0.2)
    async def stubborn(value: int) -> int:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            await release.wait()  # ignores the cancellation and keeps going
        return value

    try:
        async with system() as sys_, sys_.serving(app) as runtime:
            task = await sys_.pub.publish(stubborn, 1)
            began = time.monotonic()
            row = await sys_.wait(task.id, timeout=10)
            reported_after = time.monotonic() - began
            release.set()
    finally:
        release.set()

    assert row.error is not None
    assert row.error.type == "TimeoutError"
    assert reported_after < 5  # at the deadline, not when the handler chose to return
    assert runtime.stats.timed_out == 1


async def test_a_timed_out_sync_handler_keeps_its_slot_until_its_thread_returns() -> None:
    app = WorkerApp("w")
    release = threading.Event()
    threads: list[threading.Thread] = []

    @app.task(timeout=0.1)
    def stuck(value: int) -> int:
        threads.append(threading.current_thread())
        release.wait(WAIT)
        return value

    @app.task
    async def quick(value: int) -> int:
        return value

    try:
        async with system() as sys_, sys_.serving(app, concurrency=1) as runtime:
            first = await sys_.pub.publish(stuck, 1)
            row = await sys_.wait(first.id, timeout=5)
            assert row.error is not None
            assert row.error.type == "TimeoutError"  # reported at the deadline
            assert runtime.stats.timed_out == 1
            assert runtime.stats.sync_timed_out_running == 1

            second = await sys_.pub.publish(quick, 2)
            await asyncio.sleep(0.5)
            waiting = await sys_.relay.store.get(second.id)
            assert waiting is not None
            assert not waiting.is_completed  # the only slot is still held by the stuck thread

            release.set()
            done = await sys_.wait(second.id)
            assert done.result(int) == 2
            await eventually(
                lambda: _value(runtime.stats.sync_timed_out_returned), until=lambda n: n == 1
            )
            assert runtime.stats.sync_timed_out_running == 0
            final = await sys_.relay.store.get(first.id)
            assert final == row  # the late result was discarded
    finally:
        release.set()

    assert threads[0].daemon  # cannot keep the process alive
    assert threads[0].name.startswith("tacoq-w")  # the worker's own pool
