"""RelayClient and SyncRelayClient against a real relay (uvicorn on a loopback port) and a real
worker, on the built-in memory broker and store."""

import asyncio
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import datetime
from typing import Any

import pytest
from pydantic import BaseModel

from tacoq.errors import ConfigError, RelayError, RelayUnavailable, TaskFailed
from tacoq.model.options import TaskOptions
from tacoq.model.task import Payload, TaskStatus
from tacoq.relay.client import RelayClient, SyncRelayClient
from tacoq.relay.service import RelayService
from tacoq.testing import fresh_namespace
from tacoq.worker import WorkerApp


class AreaIn(BaseModel):
    w: int
    h: int


class AreaOut(BaseModel):
    area: int


def build_app() -> WorkerApp:
    app = WorkerApp("shapes", name="shape-worker")

    @app.task
    async def area(req: AreaIn) -> AreaOut:
        if req.w < 0:
            raise ValueError(f"negative width {req.w}")
        return AreaOut(area=req.w * req.h)

    @app.task
    def shout(text: str) -> str:
        return text.upper()

    return app


APP = build_app()


@asynccontextmanager
async def system(
    *, worker: bool = True, token: str | None = None, port: int = 0, **options: Any
) -> AsyncIterator[RelayService]:
    """A relay (and a worker of APP) on a fresh memory broker and store; yields the relay."""
    ns = fresh_namespace("client")
    url = f"memory://{ns}"
    service = RelayService(url, url, namespace=ns, port=port, token=token, **options)
    stop = asyncio.Event()
    jobs = [asyncio.create_task(service.run(stop))]
    await asyncio.wait_for(service.ready.wait(), 10)
    if worker:
        jobs.append(asyncio.create_task(APP.serve(stop, broker_url=url, namespace=ns)))
    try:
        yield service
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*jobs), 15)


@contextmanager
def system_in_thread(**options: Any) -> Iterator[RelayService]:
    """:func:`system` on an event loop of its own thread, for plain synchronous tests."""
    started: list[RelayService] = []
    ready = threading.Event()
    release: list[asyncio.Event] = []
    loop = asyncio.new_event_loop()

    async def main() -> None:
        release.append(asyncio.Event())
        async with system(**options) as service:
            started.append(service)
            ready.set()
            await release[0].wait()

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    try:
        assert ready.wait(15), "the relay did not start"
        yield started[0]
    finally:
        loop.call_soon_threadsafe(release[0].set)
        thread.join(15)
        loop.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_publish_and_wait_return_a_typed_result() -> None:
    async with system() as relay, RelayClient(relay.url) as client:
        task_id = await client.publish("area", {"w": 3, "h": 4}, worker_kind="shapes")
        done = await client.wait(task_id, timeout=10)
        assert done.status is TaskStatus.COMPLETED
        assert done.result(AreaOut) == AreaOut(area=12)
        assert done.executed_by == "shape-worker"
        assert done.created_at is not None
        assert done.completed_at is not None
        typed = await client.publish(APP.tasks["area"], AreaIn(w=5, h=5), priority=9)
        assert (await client.wait(typed, timeout=10)).result(AreaOut).area == 25
        text = await client.publish("shout", "hi", worker_kind="shapes")
        assert (await client.wait(text, timeout=10)).result(str) == "HI"


async def test_a_failed_task_raises_task_failed_with_the_remote_error() -> None:
    async with system() as relay, RelayClient(relay.url) as client:
        task_id = await client.publish("area", {"w": -1, "h": 4}, worker_kind="shapes")
        done = await client.wait(task_id, timeout=10)
        assert done.is_error
        with pytest.raises(TaskFailed) as caught:
            done.result(AreaOut)
        assert caught.value.error_type == "ValueError"
        assert caught.value.message == "negative width -1"
        assert caught.value.traceback is not None
        assert "ValueError" in caught.value.traceback


async def test_get_unknown_is_none_and_wait_unknown_raises() -> None:
    async with system(worker=False, max_wait=0.2) as relay, RelayClient(relay.url) as client:
        missing = uuid.uuid4()
        assert await client.get(missing) is None
        with pytest.raises(RelayError) as caught:
            await client.wait(missing, timeout=0.3)
        assert caught.value.status == 404
        assert str(missing) in str(caught.value)


async def test_wait_returns_an_unfinished_task_when_the_timeout_passes() -> None:
    async with system(worker=False, max_wait=0.2) as relay, RelayClient(relay.url) as client:
        task_id = await client.publish("area", {"w": 1, "h": 1}, worker_kind="shapes")
        started = time.monotonic()
        task = await client.wait(task_id, timeout=0.7)
        assert task.status is TaskStatus.PENDING
        assert 0.6 < time.monotonic() - started < 5
        with pytest.raises(Exception, match="has not completed yet"):
            task.result()


async def test_bytes_and_text_inputs_keep_their_content_type() -> None:
    async with system(worker=False) as relay, RelayClient(relay.url) as client:
        raw = await client.publish("blob", b"\x00\xff", worker_kind="w", content_type="image/png")
        fetched = await client.get(raw)
        assert fetched is not None
        assert fetched.input == Payload("image/png", b"\x00\xff")
        csv = await client.publish("csv", "a,b", worker_kind="w", content_type="text/csv")
        fetched = await client.get(csv)
        assert fetched is not None
        assert fetched.input == Payload("text/csv", b"a,b")
        with pytest.raises(ConfigError, match="worker_kind"):
            await client.publish("blob", 1)
        with pytest.raises(ConfigError, match="content_type"):
            await client.publish("blob", 1, worker_kind="w", content_type="text/plain")


async def test_the_task_options_reach_the_relay_as_keywords_or_an_object() -> None:
    async with system(worker=False) as relay, RelayClient(relay.url) as client:
        options = TaskOptions(worker_kind="shapes", priority=8, ttl=90)
        first = await client.publish("area", {"w": 1, "h": 1}, options=options)
        second = await client.publish("area", {"w": 1, "h": 1}, options=options, priority=2)
        held = await client.publish("area", {"w": 1, "h": 1}, worker_kind="shapes", countdown=30)
        rows = [await client.get(task_id) for task_id in (first, second, held)]
        assert [(r.priority, r.ttl) for r in rows if r is not None] == [
            (8, 90),
            (2, 90),
            (0, 7 * 86400),
        ]
        with pytest.raises(TypeError, match="unknown task option 'colour'"):
            await client.publish("area", 1, worker_kind="shapes", colour="red")  # type: ignore[call-arg]
        with pytest.raises(RelayError, match="eta") as caught:
            await client.publish("area", 1, worker_kind="shapes", eta=datetime(2026, 1, 1))
        assert caught.value.status == 422


async def test_publish_is_idempotent_by_id_and_validation_errors_are_clear() -> None:
    async with system(worker=False) as relay, RelayClient(relay.url) as client:
        chosen = uuid.uuid4()
        first = await client.publish("area", {"w": 1, "h": 1}, worker_kind="shapes", id=chosen)
        second = await client.publish("area", {"w": 1, "h": 1}, worker_kind="shapes", id=chosen)
        assert first == second == chosen
        assert relay.published == 1
        with pytest.raises(RelayError) as caught:
            await client.publish("area", {}, worker_kind="shapes", priority=300)
        assert caught.value.status == 422
        assert "priority" in str(caught.value)


async def test_list_pages_through_tasks() -> None:
    async with system(worker=False) as relay, RelayClient(relay.url) as client:
        ids = {await client.publish("area", {"i": i}, worker_kind="shapes") for i in range(5)}
        seen, cursor = [], None
        while True:
            page = await client.list(limit=2, cursor=cursor, status="PENDING")
            seen += [t.id for t in page.tasks]
            cursor = page.next_cursor
            if cursor is None:
                break
        assert sorted(seen) == sorted(ids)
        assert (await client.list(task_kind="nothing")).tasks == []


async def test_token_is_sent_and_required() -> None:
    async with system(worker=False, token="t0k") as relay:
        async with RelayClient(relay.url, token="t0k") as client:
            assert await client.get(uuid.uuid4()) is None
            assert (await client.health())["status"] == "ok"
        async with RelayClient(relay.url) as anonymous:
            with pytest.raises(RelayError) as caught:
                await anonymous.get(uuid.uuid4())
            assert caught.value.status == 401
            assert caught.value.error_type == "unauthorized"


async def test_relay_url_and_token_come_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with system(worker=False, token="envtok") as relay:
        monkeypatch.setenv("TACOQ_RELAY_URL", relay.url)
        monkeypatch.setenv("TACOQ_RELAY_TOKEN", "envtok")
        async with RelayClient() as client:
            assert client.base_url == relay.url
            assert await client.get(uuid.uuid4()) is None


async def test_unreachable_relay_is_retried_then_named_without_credentials() -> None:
    port = free_port()
    url = f"http://user:hunter2@127.0.0.1:{port}"
    async with RelayClient(url, retries=3, backoff=0.05) as client:
        started = time.monotonic()
        with pytest.raises(RelayUnavailable) as caught:
            await client.get(uuid.uuid4())
        assert time.monotonic() - started >= 0.05 + 0.1 + 0.2  # three backoffs
    message = str(caught.value)
    assert f"127.0.0.1:{port}" in message
    assert "4 attempts" in message
    assert "hunter2" not in message


async def test_connection_errors_are_retried_until_the_relay_answers() -> None:
    port = free_port()
    async with RelayClient(f"http://127.0.0.1:{port}", retries=20, backoff=0.1) as client:
        getting = asyncio.create_task(client.get(uuid.uuid4()))
        await asyncio.sleep(0.4)
        assert not getting.done()  # still retrying: nothing listens yet
        async with system(worker=False, port=port):
            assert await asyncio.wait_for(getting, 10) is None


def test_sync_client_from_plain_code() -> None:
    with system_in_thread() as relay, SyncRelayClient(relay.url) as client:
        task_id = client.publish("area", {"w": 6, "h": 7}, worker_kind="shapes")
        assert client.wait(task_id, timeout=10).result(AreaOut) == AreaOut(area=42)
        failed = client.wait(client.publish("area", {"w": -2, "h": 1}, worker_kind="shapes"), 10)
        with pytest.raises(TaskFailed, match="negative width -2"):
            failed.result()
        assert client.get(uuid.uuid4()) is None
        assert {t.id for t in client.list().tasks} >= {task_id, failed.id}
        assert client.health()["status"] == "ok"


def test_sync_client_reports_an_unreachable_relay() -> None:
    port = free_port()
    with (
        SyncRelayClient(f"http://127.0.0.1:{port}", retries=1, backoff=0.01) as client,
        pytest.raises(RelayUnavailable, match=f"127.0.0.1:{port}"),
    ):
        client.publish("area", {}, worker_kind="shapes")


def test_client_refuses_a_non_http_url() -> None:
    with pytest.raises(ConfigError, match="http://"):
        SyncRelayClient("amqp://guest:secret@localhost/")
