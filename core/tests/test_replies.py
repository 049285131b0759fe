"""Direct replies (``Publisher.call``, ``publish(reply=True)`` + ``wait``) on the in-process
broker: what the caller gets, what the relay still stores, and every way a wait can end."""

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Sequence

import pytest

import tacoq
from tacoq.builtin.memory_broker import MemoryBroker
from tacoq.errors import (
    ConfigError,
    PublishError,
    TacoqError,
    TaskFailed,
    UnknownTaskError,
    WireFormatError,
)
from tacoq.model.task import Phase, TaskEvent, TaskStatus, utcnow
from tacoq.model.wire import H_REPLY_TO, Envelope, encode_assignment, reply_address
from tacoq.publishing.publisher import Publisher, SyncPublisher
from tacoq.relay.engine import RelayEngine
from tacoq.testing import fresh_namespace
from tacoq.worker import WorkerApp

WAIT = 15.0
KIND = "replies"


def make_app() -> WorkerApp:
    app = WorkerApp(KIND, name="reply-worker")

    @app.task
    async def double(value: int) -> int:
        return value * 2

    @app.task
    async def fail(value: int) -> int:
        raise ValueError(f"no {value}")

    @app.task(retries=1, retry_backoff=0.05, retry_on=(ConnectionError,))
    async def flaky(value: int, ctx: tacoq.TaskContext) -> int:
        if ctx.attempt == 1:
            raise ConnectionError("first attempt")
        return value

    return app


@pytest.fixture
def ns() -> str:
    return fresh_namespace("replies")


@pytest.fixture
def url(ns: str) -> str:
    return f"memory://{ns}"


@contextlib.asynccontextmanager
async def serving(url: str, ns: str) -> AsyncIterator[RelayEngine]:
    relay = RelayEngine(url, url, namespace=ns, cleanup=False)
    stop = asyncio.Event()
    jobs = [asyncio.create_task(relay.run(stop))]
    await asyncio.wait_for(relay.ready.wait(), 5)
    jobs.append(asyncio.create_task(make_app().serve(stop, broker_url=url, namespace=ns)))
    try:
        yield relay
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*jobs), 10)


async def test_call_returns_the_completed_task_and_the_relay_stores_the_same(
    url: str, ns: str
) -> None:
    async with serving(url, ns) as relay, Publisher(url, namespace=ns) as pub:
        done = await pub.call("double", 21, worker_kind=KIND, priority=9, timeout=WAIT)
        stored = await relay.store.wait(done.id, WAIT)
    assert done.status is TaskStatus.COMPLETED
    assert done.result(int) == 42
    assert (done.priority, done.executed_by) == (9, "reply-worker")
    assert stored is not None
    assert stored.result(int) == 42
    assert stored.completed_at == done.completed_at


async def test_publish_with_reply_then_wait(url: str, ns: str) -> None:
    async with serving(url, ns), Publisher(url, namespace=ns) as pub:
        tasks = [await pub.publish("double", i, worker_kind=KIND, reply=True) for i in range(5)]
        done = [await pub.wait(task.id, timeout=WAIT) for task in reversed(tasks)]
    assert [task.result(int) for task in done] == [8, 6, 4, 2, 0]


async def test_a_failed_task_comes_back_completed_with_its_error(url: str, ns: str) -> None:
    async with serving(url, ns), Publisher(url, namespace=ns) as pub:
        done = await pub.call("fail", 3, worker_kind=KIND, timeout=WAIT)
    assert done.is_error
    with pytest.raises(TaskFailed, match="no 3"):
        done.result(int)


async def test_a_retried_task_replies_with_its_last_attempt(url: str, ns: str) -> None:
    async with serving(url, ns), Publisher(url, namespace=ns) as pub:
        done = await pub.call("flaky", 8, worker_kind=KIND, timeout=WAIT)
    assert (done.result(int), done.attempt) == (8, 2)


async def test_waiting_for_a_task_published_without_reply_is_refused(url: str, ns: str) -> None:
    async with Publisher(url, namespace=ns) as pub:
        plain = await pub.publish("double", 1, worker_kind=KIND)
        with pytest.raises(UnknownTaskError, match="reply=True"):
            await pub.wait(plain.id, timeout=1)
        await pub.publish("double", 2, worker_kind=KIND, reply=True)
        with pytest.raises(UnknownTaskError, match=str(plain.id)):
            await pub.wait(plain.id, timeout=1)


async def test_no_reply_in_time_is_a_timeout_naming_the_relay(url: str, ns: str) -> None:
    async with Publisher(url, namespace=ns) as pub:  # no worker runs
        with pytest.raises(TimeoutError, match=r"RelayClient\.wait"):
            await pub.call("double", 1, worker_kind=KIND, timeout=0.2)
        assert pub.broker.stats()["worker:replies"] == 1  # type: ignore[attr-defined]


async def test_a_publisher_keeps_at_most_max_pending_replies(url: str, ns: str) -> None:
    async with Publisher(url, namespace=ns, max_pending_replies=2) as pub:
        first, *_ = [await pub.publish("double", i, worker_kind=KIND, reply=True) for i in range(3)]
        with pytest.raises(TacoqError, match="max_pending"):
            await pub.wait(first.id, timeout=1)


async def test_closing_the_publisher_ends_a_pending_wait(url: str, ns: str) -> None:
    pub = Publisher(url, namespace=ns)
    await pub.connect()
    task = await pub.publish("double", 1, worker_kind=KIND, reply=True)
    waiting = asyncio.create_task(pub.wait(task.id, timeout=WAIT))
    await asyncio.sleep(0)
    await pub.close()
    with pytest.raises(TacoqError, match="closed"):
        await asyncio.wait_for(waiting, 5)


async def test_a_late_reply_after_a_timeout_is_still_returned_by_a_second_wait(
    url: str, ns: str
) -> None:
    async with Publisher(url, namespace=ns) as pub:
        task = await pub.publish("double", 4, worker_kind=KIND, reply=True)
        with pytest.raises(TimeoutError):
            await pub.wait(task.id, timeout=0.05)
        async with serving(url, ns):
            done = await pub.wait(task.id, timeout=WAIT)
    assert done.result(int) == 8


def test_sync_publisher_publish_with_reply_and_wait() -> None:
    ns = fresh_namespace("syncreply")
    url = f"memory://{ns}"
    ready = asyncio.Event()
    results: list[int] = []

    async def main() -> None:
        async with serving(url, ns):
            ready.set()

            def caller() -> None:
                with SyncPublisher(url, namespace=ns, timeout=10) as pub:
                    task = pub.publish("double", 5, worker_kind=KIND, reply=True)
                    results.append(pub.wait(task.id, timeout=WAIT).result(int))

            await asyncio.to_thread(caller)

    asyncio.run(main())
    assert results == [10]


def assignment(value: bytes) -> TaskEvent:
    """A hand-made first attempt of ``double`` with JSON input ``value``."""
    return TaskEvent(
        id=uuid.uuid4(),
        attempt=1,
        phase=Phase.ASSIGNED,
        task_kind="double",
        worker_kind=KIND,
        created_at=utcnow(),
        input=tacoq.model.task.Payload("application/json", value),
    )


def test_reply_addresses_are_checked_on_both_sides() -> None:
    event = assignment(b"1")
    envelope = encode_assignment(event, reply_to="abc_DEF-123")
    assert envelope.headers[H_REPLY_TO] == "abc_DEF-123"
    assert reply_address(envelope) == "abc_DEF-123"
    assert reply_address(encode_assignment(event)) is None
    for bad in ("", "a" * 65, "with space", "dots.are.not.allowed"):
        with pytest.raises(WireFormatError, match="reply address"):
            encode_assignment(event, reply_to=bad)


async def test_a_malformed_reply_address_only_loses_the_reply(
    url: str, ns: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A hand-made assignment with a bad ``tacoq-reply-to`` still runs and is stored."""
    event = assignment(b"6")
    envelope = encode_assignment(event)
    envelope.headers[H_REPLY_TO] = "not/valid"
    caplog.set_level(logging.WARNING, logger="tacoq.worker")
    async with serving(url, ns) as relay, Publisher(url, namespace=ns) as pub:
        await pub.broker.declare_worker_queue(KIND)
        await pub.broker.publish(envelope)
        stored = await relay.store.wait(event.id, WAIT)
    assert stored is not None
    assert stored.result(int) == 12
    assert "malformed reply address" in caplog.text


class InjectedBroker(MemoryBroker):
    """An in-process broker whose publishes go wrong on purpose: it routes the message unless
    ``route`` is False, then confirms ``lag`` seconds later, or raises ``outcome`` then."""

    def __init__(
        self,
        url: str,
        *,
        namespace: str,
        route: bool = True,
        lag: float = 0.0,
        outcome: Exception | None = None,
    ) -> None:
        super().__init__(url, namespace=namespace)
        self.route = route
        self.lag = lag
        self.outcome = outcome
        self.confirmed = 0

    async def publish(
        self,
        envelope: Envelope,
        *,
        priority: int = 0,
        delay: float | None = None,
        reply_to: Sequence[str] = (),
    ) -> None:
        if self.route:
            await super().publish(envelope, priority=priority, delay=delay, reply_to=reply_to)
        if self.lag:
            await asyncio.sleep(self.lag)
        if self.outcome is not None:
            raise self.outcome
        self.confirmed += 1


async def test_call_raises_the_publish_error_when_no_reply_came(url: str, ns: str) -> None:
    refused = PublishError("injected: the broker did not confirm")  # as a broker that is down
    broker = InjectedBroker(url, namespace=ns, route=False, outcome=refused)
    await broker.connect()
    async with Publisher(broker_instance=broker) as pub:
        with pytest.raises(PublishError, match="did not confirm"):
            await pub.call("double", 1, worker_kind=KIND, timeout=WAIT)
        with pytest.raises(UnknownTaskError):  # nothing is left expecting a reply
            await pub.wait(uuid.uuid4(), timeout=0.1)
    await broker.close()


async def test_closing_after_call_collects_the_confirm_the_reply_beat(
    url: str, ns: str, caplog: pytest.LogCaptureFixture
) -> None:
    broker = InjectedBroker(url, namespace=ns, lag=0.3)
    await broker.connect()
    async with serving(url, ns):
        async with Publisher(broker_instance=broker) as pub:
            done = await pub.call("double", 4, worker_kind=KIND, timeout=WAIT)
            assert done.result(int) == 8
            assert broker.confirmed == 0  # the reply came first
        assert broker.confirmed == 1  # close waited for the confirm
    await broker.close()
    assert "publish then failed" not in caplog.text


async def test_a_confirm_refused_after_the_reply_is_logged_by_close(
    url: str, ns: str, caplog: pytest.LogCaptureFixture
) -> None:
    refused = PublishError("injected: refused after routing")
    broker = InjectedBroker(url, namespace=ns, lag=0.1, outcome=refused)
    await broker.connect()
    async with serving(url, ns):
        async with Publisher(broker_instance=broker) as pub:
            done = await pub.call("double", 5, worker_kind=KIND, timeout=WAIT)
            assert done.result(int) == 10
        assert "a task was answered, but its publish then failed: injected" in caplog.text
    await broker.close()


class UndeclarableBroker(MemoryBroker):
    """An in-process broker that refuses to declare worker queues."""

    async def declare_worker_queue(self, worker_kind: str) -> None:
        raise ConfigError(f"injected: cannot declare the queue of {worker_kind!r}")


async def test_call_raises_an_error_before_the_publish_at_once(url: str, ns: str) -> None:
    broker = UndeclarableBroker(url, namespace=ns)
    await broker.connect()
    async with Publisher(broker_instance=broker) as pub:
        async with asyncio.timeout(5):  # not the call's 30 s: the error ends the wait
            with pytest.raises(ConfigError, match="cannot declare"):
                await pub.call("double", 1, worker_kind=KIND, timeout=30)
    await broker.close()
