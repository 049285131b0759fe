"""Real ``tacoq worker`` processes over RabbitMQ: graceful shutdown, a second signal, the grace
period running out, and the start-up line.

:func:`start` runs ``python -m tacoq_cli worker ...`` in a project directory (a
:class:`~tacoq.testing.processes.ChildProcess`: its output collected by a thread);
:func:`queue_depth` asks RabbitMQ how many messages wait in a worker queue; :func:`relay` runs a
relay (memory store) in the test's own loop to see results.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from uuid import UUID

import aio_pika
import pytest
import pytest_asyncio

from tacoq.model.task import Task, TaskStatus
from tacoq.publishing.publisher import Publisher
from tacoq.relay.engine import RelayEngine
from tacoq.testing import eventually, fresh_namespace
from tacoq.testing.processes import ChildProcess, clean_environ, tacoq_argv
from tacoq_rabbit.link import delete_namespace
from tacoq_rabbit.topology import Topology

KIND = "proc"
APP_SOURCE = """
import time

import tacoq

worker = tacoq.WorkerApp("proc")


@worker.task
def nap(seconds: float) -> str:
    time.sleep(seconds)
    return f"slept {seconds}"


@worker.task
async def quick(value: int) -> int:
    return value
"""


async def queue_depth(amqp_url: str, namespace: str, worker_kind: str) -> int:
    """Messages ready in the worker queue of ``worker_kind`` (not counting unacked ones)."""
    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel()
        queue = await channel.declare_queue(
            Topology(namespace).worker_queue(worker_kind), passive=True
        )
        count = queue.declaration_result.message_count
        return int(count or 0)
    finally:
        await connection.close()


@contextlib.asynccontextmanager
async def relay(amqp_url: str, namespace: str) -> AsyncIterator[RelayEngine]:
    """A relay with a memory store for ``namespace``, running in this loop."""
    engine = RelayEngine(amqp_url, f"memory://{namespace}", namespace=namespace, cleanup=False)
    stop = asyncio.Event()
    job = asyncio.create_task(engine.run(stop))
    try:
        await asyncio.wait_for(engine.ready.wait(), 30)
        yield engine
    finally:
        stop.set()
        await asyncio.wait_for(job, 30)


async def wait_status(
    engine: RelayEngine, task_id: UUID, status: TaskStatus, timeout: float = 30
) -> Task:
    """Wait until the relay's store shows ``task_id`` with ``status``."""

    async def row() -> Task | None:
        return await engine.store.get(task_id)

    found = await eventually(
        row,
        until=lambda r: r is not None and r.status is status,
        timeout=timeout,
        message=f"task {task_id} {status}",
    )
    assert found is not None
    return found


# -- fixtures -----------------------------------------------------------------------------------


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project directory holding the app module ``procapp``."""
    (tmp_path / "procapp.py").write_text(APP_SOURCE, encoding="utf-8")
    return tmp_path


@pytest_asyncio.fixture
async def namespace(amqp_url: str) -> AsyncIterator[str]:
    """A fresh namespace, deleted from RabbitMQ afterwards."""
    ns = fresh_namespace("proc")
    yield ns
    await delete_namespace(amqp_url, ns, [KIND])


@pytest.fixture
def workers() -> Iterator[list[ChildProcess]]:
    """Worker processes a test starts; any still running at the end are killed."""
    started: list[ChildProcess] = []
    yield started
    for worker in started:
        worker.kill()


def start(
    workers: list[ChildProcess], project: Path, amqp_url: str, ns: str, *options: str
) -> ChildProcess:
    """Start ``tacoq worker procapp:worker`` on RabbitMQ and wait until it serves."""
    argv = tacoq_argv("worker", "procapp:worker", "--broker", amqp_url, "--namespace", ns)
    worker = ChildProcess([*argv, *options], cwd=project, env=clean_environ(), name="worker")
    workers.append(worker)
    worker.wait_for(f"serving {KIND}")
    return worker


async def depth(amqp_url: str, ns: str) -> int:
    return await queue_depth(amqp_url, ns, KIND)


# -- tests --------------------------------------------------------------------------------------


async def test_sigterm_finishes_running_tasks_and_hands_back_held_ones(
    amqp_url: str, namespace: str, project: Path, workers: list[ChildProcess]
) -> None:
    """SIGTERM: the running task completes, held ones go back to the queue unstarted, exit 0,
    and a second worker runs what was handed back."""
    async with (
        relay(amqp_url, namespace) as engine,
        Publisher(amqp_url, namespace=namespace) as pub,
    ):
        first = start(
            workers, project, amqp_url, namespace,
            "--name", "first", "--concurrency", "1", "--prefetch", "3", "--grace", "20",
        )  # fmt: skip
        running = await pub.publish("nap", 1.5, worker_kind=KIND)
        await wait_status(engine, running.id, TaskStatus.RUNNING)
        held = [await pub.publish("quick", i, worker_kind=KIND) for i in range(2)]
        # both are delivered to (held by) the busy worker: nothing waits in the queue
        await eventually(lambda: depth(amqp_url, namespace), until=lambda n: n == 0)
        first.signal(signal.SIGTERM)
        assert first.wait(30) == 0, first.output

        row = await wait_status(engine, running.id, TaskStatus.COMPLETED)
        assert row.result(str) == "slept 1.5"
        assert row.executed_by == "first"
        assert "2 held task(s) handed back" in first.output
        assert "Traceback" not in first.output
        for task in held:
            kept = await engine.store.get(task.id)
            assert kept is not None
            assert kept.status is TaskStatus.PENDING
        assert await eventually(lambda: depth(amqp_url, namespace), until=lambda n: n == 2) == 2

        second = start(workers, project, amqp_url, namespace, "--name", "second")
        for i, task in enumerate(held):
            done = await wait_status(engine, task.id, TaskStatus.COMPLETED)
            assert done.result(int) == i
            assert done.executed_by == "second"
        second.signal(signal.SIGINT)
        assert second.wait(30) == 0, second.output


async def test_a_second_signal_exits_at_once_during_a_long_sync_task(
    amqp_url: str, namespace: str, project: Path, workers: list[ChildProcess]
) -> None:
    """A second SIGTERM does not wait for a sleeping sync handler (its thread cannot keep the
    process alive); the task stays unacknowledged and goes back to the queue."""
    async with (
        relay(amqp_url, namespace) as engine,
        Publisher(amqp_url, namespace=namespace) as pub,
    ):
        worker = start(workers, project, amqp_url, namespace, "--grace", "60")
        task = await pub.publish("nap", 120.0, worker_kind=KIND)
        await wait_status(engine, task.id, TaskStatus.RUNNING)
        worker.signal(signal.SIGTERM)
        worker.wait_for("stopping")
        sent = time.monotonic()
        worker.signal(signal.SIGTERM)
        code = worker.wait(15)
        elapsed = time.monotonic() - sent
        assert code == 128 + signal.SIGTERM, worker.output
        assert elapsed < 5, f"took {elapsed:.1f}s\n{worker.output}"
        assert "exiting now" in worker.output
        await eventually(lambda: depth(amqp_url, namespace), until=lambda n: n == 1, timeout=15)
        row = await engine.store.get(task.id)
        assert row is not None
        assert not row.is_completed


async def test_tasks_still_running_after_the_grace_are_redelivered_and_exit_is_zero(
    amqp_url: str, namespace: str, project: Path, workers: list[ChildProcess]
) -> None:
    async with (
        relay(amqp_url, namespace) as engine,
        Publisher(amqp_url, namespace=namespace) as pub,
    ):
        worker = start(workers, project, amqp_url, namespace, "--grace", "1")
        task = await pub.publish("nap", 120.0, worker_kind=KIND)
        await wait_status(engine, task.id, TaskStatus.RUNNING)
        sent = time.monotonic()
        worker.signal(signal.SIGINT)
        assert worker.wait(20) == 0, worker.output
        assert time.monotonic() - sent < 10
        assert "grace ran out" in worker.output
        await eventually(lambda: depth(amqp_url, namespace), until=lambda n: n == 1, timeout=15)


async def test_the_start_up_line_names_kind_tasks_options_and_a_redacted_broker(
    amqp_url: str, namespace: str, project: Path, workers: list[ChildProcess]
) -> None:
    worker = start(
        workers, project, amqp_url, namespace,
        "--name", "w-7", "--concurrency", "4", "--prefetch", "9",
    )  # fmt: skip
    worker.signal(signal.SIGTERM)
    assert worker.wait(30) == 0
    line = next(line for line in worker.lines if "serving proc" in line)
    assert "w-7" in line
    assert "tasks nap, quick" in line
    assert "concurrency 4" in line
    assert "prefetch 9" in line
    assert "grace 30s" in line
    if "@" in amqp_url and ":" in amqp_url.split("://", 1)[1].split("@", 1)[0]:
        password = amqp_url.split("://", 1)[1].split("@", 1)[0].split(":", 1)[1]
        assert f":{password}@" not in worker.output
        assert ":***@" in line
