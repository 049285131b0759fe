"""The embedded default end to end: publisher, worker and relay in one process, on the in-process
broker with a real SQLite store on disk."""

import asyncio
import hashlib
import random
from pathlib import Path
from uuid import UUID

import pytest
from pydantic import BaseModel

from tacoq.errors import ConfigError
from tacoq.model.task import TaskStatus
from tacoq.plugins import get_plugin_host
from tacoq.publishing.publisher import Publisher
from tacoq.relay.engine import RelayEngine
from tacoq.testing import fresh_namespace
from tacoq.worker import WorkerApp

TASKS = 300


class AddIn(BaseModel):
    a: int
    b: int


class AddOut(BaseModel):
    total: int


def build_app() -> WorkerApp:
    app = WorkerApp("e2e", name="e2e-worker")

    @app.task
    async def add(req: AddIn) -> AddOut:
        if req.a < 0:
            raise ValueError(f"negative a: {req.a}")
        return AddOut(total=req.a + req.b)

    @app.task
    def digest(data: bytes) -> str:
        return hashlib.sha256(data).hexdigest()

    return app


async def test_hundreds_of_tasks_complete_through_memory_broker_and_sqlite(
    tmp_path: Path,
) -> None:
    ns = fresh_namespace("e2e")
    broker_url = f"memory://{ns}"
    store_url = f"sqlite:///{tmp_path / 'tacoq.db'}"
    app = build_app()
    add, digest = app.tasks["add"], app.tasks["digest"]
    relay = RelayEngine(broker_url, store_url, namespace=ns, cleanup=False)
    stop = asyncio.Event()
    relay_job = asyncio.create_task(relay.run(stop))
    await asyncio.wait_for(relay.ready.wait(), 10)
    worker_job = asyncio.create_task(
        app.serve(stop, broker_url=broker_url, namespace=ns, concurrency=16)
    )
    expected: dict[UUID, tuple[str, object]] = {}
    rng = random.Random(7)
    try:
        async with Publisher(broker_url, namespace=ns) as pub:
            for i in range(TASKS):
                priority = rng.choice((0, 50, 128, 255))
                if i % 7 == 0:
                    data = f"blob-{i}".encode()
                    task = await pub.publish(digest, data, priority=priority)
                    expected[task.id] = ("digest", hashlib.sha256(data).hexdigest())
                elif i % 31 == 0:
                    task = await pub.publish(add, AddIn(a=-i, b=1), priority=priority)
                    expected[task.id] = ("error", f"negative a: {-i}")
                else:
                    task = await pub.publish(add, AddIn(a=i, b=i * 2), priority=priority)
                    expected[task.id] = ("add", AddOut(total=i * 3))
        async with asyncio.timeout(60):
            rows = {task_id: await relay.store.wait(task_id, 30) for task_id in expected}
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(relay_job, worker_job), 15)

    problems = []
    for task_id, (kind, want) in expected.items():
        row = rows[task_id]
        if row is None or row.status is not TaskStatus.COMPLETED:
            problems.append(f"{task_id}: not completed ({row})")
        elif kind == "error":
            if not row.is_error or row.error is None or row.error.message != want:
                problems.append(f"{task_id}: expected failure {want!r}, got {row.error}")
        elif row.is_error:
            problems.append(f"{task_id}: failed unexpectedly: {row.error}")
        else:
            got = row.result(AddOut) if kind == "add" else row.result(str)
            if got != want:
                problems.append(f"{task_id}: got {got!r}, want {want!r}")
        if row is not None and row.executed_by != "e2e-worker":
            problems.append(f"{task_id}: executed_by {row.executed_by!r}")
    assert problems == []
    assert sum(1 for kind, _ in expected.values() if kind == "error") > 0
    assert relay.stats.dead_lettered == 0

    # The rows are durable: a fresh store on the same file still has every one of them.
    store = get_plugin_host().create_store(store_url, namespace=ns)
    await store.connect()
    try:
        for task_id in list(expected)[:: TASKS // 10]:
            row = await store.get(task_id)
            assert row is not None
            assert row.is_completed
    finally:
        await store.close()


async def test_serve_refuses_an_in_process_broker_when_asked() -> None:
    ns = fresh_namespace("refuse")
    app = build_app()
    stop = asyncio.Event()
    with pytest.raises(ConfigError) as info:
        await asyncio.wait_for(
            app.serve(stop, broker_url=f"memory://{ns}", namespace=ns, refuse_in_process=True),
            5,
        )
    message = str(info.value)
    assert "`tacoq worker`" in message
    assert "separate process" in message
    assert f"memory://{ns}" in message
    assert "tacoq demo" in message  # says what to do instead
    assert "\n" not in message  # one clear line


async def test_serve_runs_on_memory_when_not_refusing() -> None:
    """The same app serves memory:// when in-process brokers are allowed (the default)."""
    ns = fresh_namespace("allow")
    url = f"memory://{ns}"
    app = build_app()
    relay = RelayEngine(url, url, namespace=ns, cleanup=False)
    stop = asyncio.Event()
    relay_job = asyncio.create_task(relay.run(stop))
    await asyncio.wait_for(relay.ready.wait(), 5)
    worker_job = asyncio.create_task(app.serve(stop, broker_url=url, namespace=ns))
    try:
        async with Publisher(url, namespace=ns) as pub:
            task = await pub.publish(app.tasks["add"], AddIn(a=1, b=2))
        row = await relay.store.wait(task.id, 15)
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(relay_job, worker_job), 10)
    assert row is not None
    assert row.result(AddOut) == AddOut(total=3)
