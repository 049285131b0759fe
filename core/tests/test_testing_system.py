"""The in-process system of :mod:`tacoq.testing.system`: a real relay, publisher and workers on
the memory broker and store."""

from __future__ import annotations

import uuid

import pytest

from tacoq.model.task import TaskStatus
from tacoq.testing import eventually
from tacoq.testing.system import RUNTIME_DEFAULTS, in_process_system
from tacoq.worker import WorkerApp

APP = WorkerApp("sys")


@APP.task
async def double(value: int) -> int:
    return 2 * value


async def test_each_system_has_a_fresh_memory_server_of_its_own() -> None:
    async with in_process_system("one") as first, in_process_system("one") as second:
        assert first.ns.startswith("one-")
        assert first.ns != second.ns
        assert first.url == f"memory://{first.ns}"
        task = await first.pub.publish(double, 1)  # no worker: it stays pending
        await eventually(lambda: first.status(task.id), until=lambda s: s is TaskStatus.PENDING)
        assert await second.status(task.id) is None


async def test_a_served_app_completes_tasks_and_stops_when_the_system_closes() -> None:
    async with in_process_system("serve") as system:
        job = system.serve(APP, name="served")
        task = await system.pub.publish(double, 21)
        row = await system.wait(task.id)
        assert not job.done()
    assert job.done()
    assert job.exception() is None
    assert row.result(int) == 42
    assert row.executed_by == "served"


async def test_runtimes_start_from_the_system_defaults_and_options_override_them() -> None:
    async with in_process_system("rt", concurrency=3, name="base") as system:
        plain = system.runtime(APP)
        assert (plain.concurrency, plain.prefetch, plain.name) == (3, 3, "base")
        tuned = system.runtime(APP, name="tuned", prefetch=7, grace=1.5)
        assert (tuned.concurrency, tuned.prefetch, tuned.name, tuned.grace) == (3, 7, "tuned", 1.5)
        async with system.serving(APP, name="serving") as runtime:
            task = await system.pub.publish(double, 4)
            row = await system.wait(task.id)
        assert row.executed_by == "serving"
        assert runtime.stats.succeeded == 1
    async with in_process_system() as system:
        default = system.runtime(APP)
        assert default.concurrency == RUNTIME_DEFAULTS["concurrency"]
        assert default.name == RUNTIME_DEFAULTS["name"]


async def test_wait_fails_when_the_task_does_not_complete_in_time() -> None:
    async with in_process_system("idle") as system:
        task = await system.pub.publish(double, 1)  # no worker runs it
        await eventually(lambda: system.status(task.id), until=lambda s: s is TaskStatus.PENDING)
        with pytest.raises(AssertionError, match=f"task {task.id} did not complete within 0.3s"):
            await system.wait(task.id, timeout=0.3)
        with pytest.raises(AssertionError, match="never reached the store"):
            await system.wait(uuid.uuid4(), timeout=0.1)
