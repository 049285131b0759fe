"""Stopping a worker runtime: running tasks finish within the grace, held ones go back at once,
what outlives the grace is left unacknowledged (and redelivered), and an abort cuts it short."""

from __future__ import annotations

import asyncio
import contextlib
import time

from tacoq.model.task import TaskStatus
from tacoq.testing import eventually
from tacoq.testing.system import InProcessSystem, in_process_system
from tacoq.worker import WorkerApp


def system() -> contextlib.AbstractAsyncContextManager[InProcessSystem]:
    """A relay and a publisher on a fresh memory:// server; runtimes of 1 slot named "first"."""
    return in_process_system("stop", concurrency=1, name="first")


def build_app(first_sleep: float) -> WorkerApp:
    """``nap`` sleeps ``first_sleep`` seconds the first time it runs, then returns at once."""
    app = WorkerApp("stop")
    runs: list[int] = []

    @app.task
    async def nap(value: int) -> int:
        runs.append(value)
        if len(runs) == 1:
            await asyncio.sleep(first_sleep)
        return value

    return app


async def test_running_tasks_finish_and_held_ones_are_handed_back_unstarted() -> None:
    app = build_app(first_sleep=0.5)
    async with system() as sys_:
        runtime = sys_.runtime(app, prefetch=3, grace=10)
        stop = asyncio.Event()
        job = asyncio.create_task(runtime.run(stop))
        running = await sys_.pub.publish(app.tasks["nap"], 1)
        await eventually(lambda: sys_.status(running.id), until=lambda s: s is TaskStatus.RUNNING)
        held = [await sys_.pub.publish(app.tasks["nap"], n) for n in (2, 3)]
        await asyncio.sleep(0.05)  # delivered into the worker's hands
        stop.set()
        await asyncio.wait_for(job, 10)

        row = await sys_.relay.store.wait(running.id, 5)
        assert row is not None
        assert row.result(int) == 1
        assert runtime.stats.requeued_on_shutdown == 2
        assert runtime.stats.abandoned_on_shutdown == 0
        for task in held:
            assert await sys_.status(task.id) is TaskStatus.PENDING

        second = sys_.runtime(app, name="second")
        stop2 = asyncio.Event()
        job2 = asyncio.create_task(second.run(stop2))
        try:
            for n, task in zip((2, 3), held, strict=True):
                done = await sys_.relay.store.wait(task.id, 10)
                assert done is not None
                assert done.result(int) == n
                assert done.executed_by == "second"
        finally:
            stop2.set()
            await asyncio.wait_for(job2, 10)


async def test_a_task_outliving_the_grace_is_left_unacked_and_redelivered() -> None:
    app = build_app(first_sleep=30)
    async with system() as sys_:
        runtime = sys_.runtime(app, grace=0.2)
        stop = asyncio.Event()
        job = asyncio.create_task(runtime.run(stop))
        task = await sys_.pub.publish(app.tasks["nap"], 7)
        await eventually(lambda: sys_.status(task.id), until=lambda s: s is TaskStatus.RUNNING)
        began = time.monotonic()
        stop.set()
        await asyncio.wait_for(job, 10)
        assert time.monotonic() - began < 3
        assert runtime.stats.abandoned_on_shutdown == 1
        assert await sys_.status(task.id) is TaskStatus.RUNNING

        second = sys_.runtime(app, name="second")
        stop2 = asyncio.Event()
        job2 = asyncio.create_task(second.run(stop2))
        try:
            row = await sys_.relay.store.wait(task.id, 10)
            assert row is not None
            assert row.result(int) == 7
            assert row.executed_by == "second"
        finally:
            stop2.set()
            await asyncio.wait_for(job2, 10)


async def test_abort_cuts_the_grace_short() -> None:
    app = build_app(first_sleep=30)
    async with system() as sys_:
        runtime = sys_.runtime(app, grace=30)
        stop, abort = asyncio.Event(), asyncio.Event()
        job = asyncio.create_task(runtime.run(stop, abort))
        task = await sys_.pub.publish(app.tasks["nap"], 7)
        await eventually(lambda: sys_.status(task.id), until=lambda s: s is TaskStatus.RUNNING)
        stop.set()
        await asyncio.sleep(0.2)
        assert not job.done()  # waiting within the grace
        began = time.monotonic()
        abort.set()
        await asyncio.wait_for(job, 5)
        assert time.monotonic() - began < 2.5
        assert runtime.stats.abandoned_on_shutdown == 1
