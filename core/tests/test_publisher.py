"""Publishing: what the caller is told at once, what reaches the broker, and what runs later.

All on the real in-process broker (and store, where a task must run): no part of TacoQ is mocked.
"""

import asyncio
import contextlib
import threading
import time
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from pydantic import BaseModel

from tacoq.contracts.broker import RELAY_QUEUE, worker_queue
from tacoq.errors import ConfigError, PayloadTooLarge, SerializationError, TacoqError
from tacoq.model.task import Task, TaskStatus, utcnow
from tacoq.publishing.publisher import Publisher, SyncPublisher
from tacoq.relay.engine import RelayEngine
from tacoq.testing import eventually, fresh_namespace
from tacoq.worker import WorkerApp

WAIT = 15.0


class ResizeIn(BaseModel):
    width: int
    height: int


class ResizeOut(BaseModel):
    pixels: int


def make_app(kind: str = "images") -> WorkerApp:
    app = WorkerApp(kind)

    @app.task
    async def resize(req: ResizeIn) -> ResizeOut:
        return ResizeOut(pixels=req.width * req.height)

    @app.task
    async def echo(data: bytes) -> bytes:
        return data

    return app


APP = make_app()
RESIZE = APP.tasks["resize"]
ECHO = APP.tasks["echo"]


@pytest.fixture
def ns() -> str:
    return fresh_namespace("pub")


@pytest.fixture
def url(ns: str) -> str:
    return f"memory://{ns}"


@contextlib.asynccontextmanager
async def publisher(url: str, ns: str, **options: Any) -> AsyncIterator[Publisher]:
    async with Publisher(url, namespace=ns, **options) as pub:
        yield pub


def depths(pub: Publisher) -> dict[str, int]:
    """Ready messages per logical queue of the publisher's namespace (memory broker only)."""
    stats: dict[str, int] = pub.broker.stats()  # type: ignore[attr-defined]
    return stats


@contextlib.asynccontextmanager
async def serving(app: WorkerApp, url: str, ns: str) -> AsyncIterator[RelayEngine]:
    """A relay and a worker of ``app`` on ``url``; yields the relay (its store has the rows)."""
    relay = RelayEngine(url, url, namespace=ns, cleanup=False)
    stop = asyncio.Event()
    relay_job = asyncio.create_task(relay.run(stop))
    await asyncio.wait_for(relay.ready.wait(), 5)
    worker_job = asyncio.create_task(app.serve(stop, broker_url=url, namespace=ns))
    try:
        yield relay
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(relay_job, worker_job), 10)


async def completed(relay: RelayEngine, task_id: uuid.UUID, timeout: float = WAIT) -> Task:
    row = await relay.store.wait(task_id, timeout)
    assert row is not None
    assert row.is_completed, f"task {task_id} did not complete: {row}"
    return row


# -- refused in the caller ----------------------------------------------------------------------


async def test_typed_publish_validates_in_the_caller(url: str, ns: str) -> None:
    async with publisher(url, ns) as pub:
        with pytest.raises(SerializationError) as info:
            await pub.publish(RESIZE, {"width": "wide", "height": 3})
        message = str(info.value)
        assert "width" in message
        assert "'resize'" in message
        with pytest.raises(SerializationError, match="height"):
            await pub.publish(RESIZE, {"width": 3})
        assert depths(pub).get(RELAY_QUEUE, 0) == 0
        assert depths(pub).get(worker_queue("images"), 0) == 0


async def test_typed_publish_accepts_a_matching_dict(url: str, ns: str) -> None:
    async with publisher(url, ns) as pub:
        task = await pub.publish(RESIZE, {"width": 2, "height": 3})
        assert task.status is TaskStatus.PENDING
        assert (task.task_kind, task.worker_kind) == ("resize", "images")
        assert depths(pub)[worker_queue("images")] == 1
        assert depths(pub)[RELAY_QUEUE] == 1


async def test_a_payload_over_the_limit_is_refused_before_anything_is_sent(
    url: str, ns: str
) -> None:
    async with publisher(url, ns, max_payload_bytes=100) as pub:
        with pytest.raises(PayloadTooLarge, match="max_payload_bytes") as info:
            await pub.publish(ECHO, b"x" * 101)
        assert "'echo'" in str(info.value)
        with pytest.raises(PayloadTooLarge):
            await pub.publish("echo", "y" * 500, worker_kind="images")
        assert depths(pub).get(RELAY_QUEUE, 0) == 0
        assert depths(pub).get(worker_queue("images"), 0) == 0
        # At the limit is fine.
        await pub.publish(ECHO, b"x" * 100)
        assert depths(pub)[RELAY_QUEUE] == 1


@pytest.mark.parametrize("priority", [-1, 256, 1000, True, 1.5, "9"])
async def test_a_priority_outside_0_to_255_is_a_config_error(
    url: str, ns: str, priority: Any
) -> None:
    async with publisher(url, ns) as pub:
        with pytest.raises(ConfigError, match="priority must be an integer from 0 to 255"):
            await pub.publish(RESIZE, ResizeIn(width=1, height=1), priority=priority)
        assert depths(pub).get(RELAY_QUEUE, 0) == 0


@pytest.mark.parametrize("ttl", [-1, 1.5, "60"])
async def test_a_bad_ttl_is_a_config_error(url: str, ns: str, ttl: Any) -> None:
    async with publisher(url, ns) as pub:
        with pytest.raises(ConfigError, match="ttl must be a whole number of seconds"):
            await pub.publish(RESIZE, ResizeIn(width=1, height=1), ttl=ttl)
        assert depths(pub).get(RELAY_QUEUE, 0) == 0


async def test_the_bounds_of_priority_and_ttl_are_accepted(url: str, ns: str) -> None:
    async with publisher(url, ns) as pub:
        low = await pub.publish(RESIZE, ResizeIn(width=1, height=1), priority=0, ttl=0)
        high = await pub.publish(RESIZE, ResizeIn(width=1, height=1), priority=255)
    assert (low.priority, low.ttl) == (0, 0)
    assert high.priority == 255


async def test_publish_by_name_needs_a_worker_kind(url: str, ns: str) -> None:
    async with publisher(url, ns) as pub:
        with pytest.raises(
            ConfigError, match=r"publishing task 'resize' by name needs worker_kind"
        ):
            await pub.publish("resize", {"width": 1, "height": 1})


async def test_publish_refuses_something_that_is_not_a_task(url: str, ns: str) -> None:
    async with publisher(url, ns) as pub:
        with pytest.raises(TypeError, match="TaskDef or a task kind name"):
            await pub.publish(42, 1)  # type: ignore[arg-type]


async def test_countdown_and_eta_together_are_refused(url: str, ns: str) -> None:
    async with publisher(url, ns) as pub:
        with pytest.raises(ConfigError, match="countdown or eta"):
            await pub.publish(ECHO, b"x", countdown=1, eta=utcnow())
        with pytest.raises(ConfigError, match="timezone-aware"):
            await pub.publish(ECHO, b"x", eta=utcnow().replace(tzinfo=None))


async def test_an_unconnected_publisher_says_how_to_use_it() -> None:
    pub = Publisher("memory://")
    with pytest.raises(TacoqError, match="async with Publisher"):
        _ = pub.broker


# -- what is sent -------------------------------------------------------------------------------


async def test_a_caller_chosen_id_is_kept(url: str, ns: str) -> None:
    chosen = uuid.uuid4()
    async with serving(APP, url, ns) as relay, publisher(url, ns) as pub:
        task = await pub.publish(RESIZE, ResizeIn(width=3, height=4), id=chosen, ttl=60)
        assert task.id == chosen
        row = await completed(relay, chosen)
    assert row.id == chosen
    assert row.ttl == 60
    assert row.result(ResizeOut) == ResizeOut(pixels=12)


async def test_countdown_delays_delivery(url: str, ns: str) -> None:
    countdown = 0.5
    async with publisher(url, ns) as pub:
        started = time.monotonic()
        await pub.publish(ECHO, b"later", countdown=countdown)
        assert depths(pub).get(RELAY_QUEUE, 0) == 0
        assert depths(pub).get(worker_queue("images"), 0) == 0
        await eventually(
            lambda: _value(depths(pub)),
            until=lambda d: d.get(worker_queue("images"), 0) == 1 and d.get(RELAY_QUEUE, 0) == 1,
            timeout=10,
            message="the delayed task arrived",
        )
        assert time.monotonic() - started >= countdown * 0.9


async def test_a_delayed_task_runs_after_its_eta(url: str, ns: str) -> None:
    async with serving(APP, url, ns) as relay, publisher(url, ns) as pub:
        eta = utcnow() + timedelta(seconds=0.3)
        task = await pub.publish(RESIZE, ResizeIn(width=2, height=2), eta=eta)
        row = await completed(relay, task.id)
    assert row.result(ResizeOut) == ResizeOut(pixels=4)
    assert row.started_at is not None
    assert row.started_at >= eta - timedelta(seconds=0.05)


async def _value(value: Any) -> Any:
    return value


# -- SyncPublisher ------------------------------------------------------------------------------


def test_sync_publisher_works_from_plain_sync_code_and_an_async_worker_runs_it() -> None:
    ns = fresh_namespace("syncpub")
    url = f"memory://{ns}"
    with pytest.raises(RuntimeError):
        asyncio.get_running_loop()  # truly no event loop here

    with SyncPublisher(url, namespace=ns, timeout=10) as pub:
        a = pub.publish(RESIZE, ResizeIn(width=5, height=6))
        b = pub.publish("resize", {"width": 7, "height": 1}, worker_kind="images", priority=9)
        with pytest.raises(SerializationError, match="width"):
            pub.publish(RESIZE, {"width": "no", "height": 1})

    async def drain() -> list[Task]:
        async with serving(APP, url, ns) as relay:
            return [await completed(relay, t.id) for t in (a, b)]

    rows = asyncio.run(drain())
    assert [r.result(ResizeOut).pixels for r in rows] == [30, 7]
    assert rows[1].priority == 9


async def test_sync_publisher_from_a_thread_while_the_worker_is_running(url: str, ns: str) -> None:
    def publish_from_thread() -> list[Task]:
        with pytest.raises(RuntimeError):
            asyncio.get_running_loop()
        assert threading.current_thread() is not threading.main_thread()
        with SyncPublisher(url, namespace=ns, timeout=10) as pub:
            return [pub.publish(ECHO, f"n{i}".encode()) for i in range(5)]

    async with serving(APP, url, ns) as relay:
        tasks = await asyncio.wait_for(asyncio.to_thread(publish_from_thread), WAIT)
        rows = [await completed(relay, t.id) for t in tasks]
    assert [r.result(bytes) for r in rows] == [f"n{i}".encode() for i in range(5)]


def test_sync_publisher_that_cannot_connect_raises_and_leaves_no_thread() -> None:
    before = {t.ident for t in threading.enumerate()}
    with pytest.raises(ConfigError, match="nosuchscheme"):
        SyncPublisher("nosuchscheme://x", namespace=fresh_namespace())
    leftover = [
        t
        for t in threading.enumerate()
        if t.ident not in before and t.name == "tacoq-sync-publisher"
    ]
    assert leftover == []


async def test_a_delayed_task_from_a_closed_sync_publisher_still_runs(url: str, ns: str) -> None:
    """The publisher (and its loop) may be gone when a delayed task is due: a worker and a relay
    that were already waiting must still receive it."""

    def publish_and_close() -> Task:
        with SyncPublisher(url, namespace=ns, timeout=10) as pub:
            return pub.publish(RESIZE, ResizeIn(width=3, height=3), countdown=0.3)

    async with serving(APP, url, ns) as relay:
        await asyncio.sleep(0.05)  # let the worker and relay start waiting for messages
        task = await asyncio.wait_for(asyncio.to_thread(publish_and_close), WAIT)
        row = await completed(relay, task.id, timeout=10)
    assert row.result(ResizeOut) == ResizeOut(pixels=9)
