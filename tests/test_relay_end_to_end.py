"""The relay service end to end: REST publish -> worker -> relay -> long-poll, and two relays
sharing the load.

Every test runs on the built-ins in one process (``memory://`` broker, ``memory://`` and
``sqlite:///`` stores) and again across real services (RabbitMQ through ``tacoq-rabbit``,
PostgreSQL through ``tacoq-postgres``) when the ``amqp_url``/``postgres_url`` fixtures find them;
the last test runs ``tacoq relay`` and ``tacoq worker`` as separate processes over them.
"""

from __future__ import annotations

import asyncio
import importlib
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from importlib import metadata
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import BaseModel

from tacoq.contracts.broker import Broker
from tacoq.contracts.store import TaskPage
from tacoq.errors import TaskFailed
from tacoq.model.task import Payload, Phase, Task, TaskEvent
from tacoq.model.wire import encode_assignment, encode_updates
from tacoq.plugins import get_plugin_host
from tacoq.relay.client import RelayClient, SyncRelayClient
from tacoq.relay.service import RelayService
from tacoq.testing import fresh_namespace
from tacoq.worker import WorkerApp


class SumIn(BaseModel):
    numbers: list[int]


class SumOut(BaseModel):
    total: int


APP_SOURCE = """
from pydantic import BaseModel

import tacoq


class SumIn(BaseModel):
    numbers: list[int]


class SumOut(BaseModel):
    total: int


worker = tacoq.WorkerApp("e2e-sums", name="e2e-worker")


@worker.task
async def total(req: SumIn) -> SumOut:
    if not req.numbers:
        raise ValueError("nothing to add")
    return SumOut(total=sum(req.numbers))
"""


def build_app() -> WorkerApp:
    app = WorkerApp("e2e-sums", name="e2e-worker")

    @app.task
    async def total(req: SumIn) -> SumOut:
        if not req.numbers:
            raise ValueError("nothing to add")
        return SumOut(total=sum(req.numbers))

    return app


@pytest.fixture(params=["memory+memory", "memory+sqlite", "amqp+postgres"])
def urls(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str]:
    """(broker, store) URLs: the built-ins, and the real services when they are available."""
    if request.param == "amqp+postgres":
        return request.getfixturevalue("amqp_url"), request.getfixturevalue("postgres_url")
    ns = uuid.uuid4().hex
    store = f"memory://{ns}" if request.param == "memory+memory" else f"sqlite:///{tmp_path}/r.db"
    return f"memory://{ns}", store


@pytest.fixture
def fresh(urls: tuple[str, str], request: pytest.FixtureRequest) -> Iterator[Callable[[str], str]]:
    """``fresh(prefix)``: a fresh namespace; on the real services its queues, exchanges and
    schema are deleted after the test (``forget_namespace``)."""
    real = not urls[0].startswith("memory://")
    forget = request.getfixturevalue("forget_namespace") if real else None
    made: list[str] = []

    def make(prefix: str) -> str:
        made.append(fresh_namespace(prefix))
        return made[-1]

    yield make
    for namespace in made if forget else ():
        forget(namespace)


@asynccontextmanager
async def running_relay(
    broker: str, store: str, namespace: str, **options: Any
) -> AsyncIterator[RelayService]:
    service = RelayService(broker, store, namespace=namespace, port=0, **options)
    stop = asyncio.Event()
    job = asyncio.create_task(service.run(stop))
    ready = asyncio.ensure_future(service.ready.wait())
    await asyncio.wait([job, ready], timeout=30, return_when=asyncio.FIRST_COMPLETED)
    if job.done():
        await job
    try:
        yield service
    finally:
        stop.set()
        await asyncio.wait_for(job, 30)


@asynccontextmanager
async def running_worker(broker: str, namespace: str) -> AsyncIterator[None]:
    stop = asyncio.Event()
    job = asyncio.create_task(build_app().serve(stop, broker_url=broker, namespace=namespace))
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(job, 30)


# -- in process -----------------------------------------------------------------------------------


async def test_rest_publish_reaches_a_worker_and_the_long_poll_sees_it(
    urls: tuple[str, str], fresh: Callable[[str], str]
) -> None:
    broker, store = urls
    ns = fresh("e2e-relay")
    async with (
        running_relay(broker, store, ns) as relay,
        running_worker(broker, ns),
        httpx.AsyncClient(base_url=relay.url, timeout=30) as http,
    ):
        body = {"task_kind": "total", "worker_kind": "e2e-sums", "input": {"numbers": [1, 2, 3]}}
        created = await http.post("/tasks", json=body)
        assert created.status_code == 201, created.text
        task_id = created.json()["id"]
        started = time.monotonic()
        done = (await http.get(f"/tasks/{task_id}", params={"wait": 20})).json()
        assert time.monotonic() - started < 10
        assert done["status"] == "COMPLETED"
        assert done["is_error"] is False
        assert done["output"] == {"content_type": "application/json", "encoding": "json",
                                  "data": {"total": 6}}  # fmt: skip
        assert done["executed_by"] == "e2e-worker"
        assert done["completed_at"].endswith("Z")

        async with RelayClient(relay.url) as client:
            ids = [
                await client.publish("total", SumIn(numbers=[i, i]), worker_kind="e2e-sums")
                for i in range(20)
            ]
            results = await asyncio.gather(*(client.wait(i, timeout=20) for i in ids))
            assert [r.result(SumOut).total for r in results] == [2 * i for i in range(20)]
            failing = await client.publish("total", {"numbers": []}, worker_kind="e2e-sums")
            with pytest.raises(TaskFailed, match="nothing to add") as caught:
                (await client.wait(failing, timeout=20)).result(SumOut)
            assert caught.value.error_type == "ValueError"
            health = await client.health()
            assert health["status"] == "ok"
            assert health["stats"]["batches"] > 0


def scripted_events(count: int) -> list[tuple[Any, int]]:
    """Deterministic messages for ``count`` tasks: an assignment, then RUNNING and COMPLETED
    updates (every fifth task completes twice, identically: a duplicate to be counted)."""
    base = datetime(2030, 1, 1, tzinfo=UTC)
    messages: list[tuple[Any, int]] = []
    for n in range(count):
        task_id = uuid.UUID(int=n + 1)
        common: dict[str, Any] = {"id": task_id, "attempt": 1, "task_kind": "total",
                                  "worker_kind": "e2e-sums"}  # fmt: skip
        created = base + timedelta(milliseconds=n)
        assign = TaskEvent(
            **common, phase=Phase.ASSIGNED, priority=n % 256, created_at=created,
            input=Payload("application/json", b'{"numbers":[%d]}' % n),
        )  # fmt: skip
        running = TaskEvent(**common, phase=Phase.RUNNING, executed_by="w", started_at=created)
        done = TaskEvent(
            **common, phase=Phase.COMPLETED, executed_by="w", started_at=created,
            completed_at=created + timedelta(seconds=1),
            output=Payload("application/json", b'{"total":%d}' % n),
        )  # fmt: skip
        messages.append((encode_assignment(assign), assign.priority))
        messages.append((encode_updates([running]), 0))
        messages.append((encode_updates([done, done] if n % 5 == 0 else [done]), 0))
    return messages


async def all_rows(service: RelayService) -> list[Task]:
    rows: list[Task] = []
    page = TaskPage([], None)
    while True:
        page = await service.store.list(cursor=page.next_cursor, limit=500)
        rows += page.tasks
        if page.next_cursor is None:
            return sorted(rows, key=lambda t: t.id)


async def run_relays(
    broker: str, store: str, ns: str, relays: int, count: int
) -> tuple[list[Task], list[RelayService]]:
    """Publish the scripted messages to ``relays`` relays sharing namespace ``ns``; the rows."""
    async with relays_running(broker, store, ns, relays) as services:
        publisher: Broker = get_plugin_host().create_broker(broker, namespace=ns)
        await publisher.connect()
        try:
            await publisher.declare_worker_queue("e2e-sums")
            await publisher.publish_many(scripted_events(count))
        finally:
            await publisher.close()
        deadline = time.monotonic() + 60
        while sum(s.engine.stats.deliveries for s in services) < 3 * count:
            assert time.monotonic() < deadline, [s.stats() for s in services]
            await asyncio.sleep(0.05)
        return await all_rows(services[0]), services


@asynccontextmanager
async def relays_running(
    broker: str, store: str, ns: str, relays: int
) -> AsyncIterator[list[RelayService]]:
    from contextlib import AsyncExitStack

    async with AsyncExitStack() as stack:
        services = [
            await stack.enter_async_context(
                running_relay(broker, store, ns, batch_size=8, cleanup=False)
            )
            for _ in range(relays)
        ]
        yield services


async def test_two_relays_share_the_load_and_store_what_one_relay_stores(
    urls: tuple[str, str], fresh: Callable[[str], str]
) -> None:
    broker, store = urls
    count = 300
    single, _ = await run_relays(broker, store, fresh("scale"), 1, count)
    shared, services = await run_relays(broker, store, fresh("scale"), 2, count)
    assert len(single) == count
    assert shared == single, "two relays must store exactly what one relay stores"
    assert all(s.engine.stats.batches > 0 for s in services), [s.stats() for s in services]
    duplicates = sum(s.engine.stats.duplicate_completions for s in services)
    assert duplicates == count // 5


# -- the plugins ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("distribution", "module", "kind", "scheme"),
    [
        ("tacoq-rabbit", "tacoq_rabbit", "broker", "amqp"),
        ("tacoq-postgres", "tacoq_postgres", "store", "postgresql"),
    ],
)
def test_network_plugins_import_and_provide_their_scheme(
    distribution: str, module: str, kind: str, scheme: str
) -> None:
    try:
        metadata.distribution(distribution)
    except metadata.PackageNotFoundError:
        pytest.skip(f"{distribution} is not installed (pip install ./plugins/{distribution})")
    importlib.import_module(module)
    host = get_plugin_host()
    schemes = host.broker_schemes() if kind == "broker" else host.store_schemes()
    assert scheme in schemes, f"{distribution} loaded but offers no {scheme}:// {kind}: {schemes}"


# -- separate processes over the real services ----------------------------------------------------


def test_relay_and_worker_processes_over_rabbitmq_and_postgres(
    amqp_url: str, postgres_url: str, tmp_path: Path, forget_namespace: Callable[[str], None]
) -> None:
    import socket

    (tmp_path / "sums_app.py").write_text(APP_SOURCE)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    ns = fresh_namespace("procs")
    common = ["--broker", amqp_url, "--namespace", ns]
    relay = subprocess.Popen(
        [sys.executable, "-m", "tacoq_cli", "relay", *common, "--store", postgres_url,
         "--port", str(port)],
        cwd=tmp_path, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    worker = subprocess.Popen(
        [sys.executable, "-m", "tacoq_cli", "worker", "sums_app:worker", *common],
        cwd=tmp_path, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        with SyncRelayClient(url, retries=40, backoff=0.25, max_backoff=0.5) as client:
            assert client.health()["status"] == "ok"
            task_id = client.publish("total", {"numbers": [4, 5]}, worker_kind="e2e-sums")
            assert client.wait(task_id, timeout=30).result(SumOut) == SumOut(total=9)
            failing = client.publish("total", {"numbers": []}, worker_kind="e2e-sums")
            with pytest.raises(TaskFailed, match="nothing to add"):
                client.wait(failing, timeout=30).result()
    finally:
        for proc in (worker, relay):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        try:
            outputs = [proc.communicate(timeout=30)[1] for proc in (worker, relay)]
        finally:
            forget_namespace(ns)
    assert worker.returncode == 0, outputs[0]
    assert relay.returncode == 0, outputs[1]
    assert "Traceback" not in outputs[1]
