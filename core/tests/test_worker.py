"""Workers: how handlers are declared, and what happens to tasks once a worker runs them.

Everything runs on the real in-process broker and store: a publisher publishes, a worker serves,
a relay engine folds the updates into the store, and the test waits on the store.
"""

import asyncio
import contextlib
import threading
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from pydantic import BaseModel

import tacoq
from tacoq.contracts.hookspecs import hookimpl
from tacoq.contracts.lifecycle import LifecycleEvent, LifecycleKind
from tacoq.errors import HandlerSignatureError, TaskFailed
from tacoq.model.task import TaskStatus
from tacoq.plugins import get_plugin_host
from tacoq.testing import eventually
from tacoq.testing.system import InProcessSystem, in_process_system
from tacoq.worker import TaskDef, WorkerApp

WAIT = 15.0  # generous bound for any single task to complete


class ResizeIn(BaseModel):
    width: int
    height: int


class ResizeOut(BaseModel):
    width: int
    height: int


class NotSerializable:
    """A plain class: no built-in serializer handles it."""


# -- harness ------------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def running(
    app: WorkerApp, *, start_worker: bool = True, **options: Any
) -> AsyncIterator[InProcessSystem]:
    """A relay, a publisher and (unless told not to) a worker of ``app`` with ``options``, all
    on one fresh memory:// server; start a worker later with ``system.serve(app, ...)``."""
    async with in_process_system("worker") as system:
        if start_worker:
            system.serve(app, **options)
        yield system


@contextlib.contextmanager
def plugin(obj: object) -> Any:
    """Register a throw-away plugin on the process-wide host, and remove it afterwards."""
    host = get_plugin_host()
    name = f"test-plugin-{uuid.uuid4().hex[:8]}"
    host.register(obj, name=name)
    try:
        yield obj
    finally:
        host.unregister(name)


# -- declaring handlers -------------------------------------------------------------------------


def test_task_kind_defaults_to_the_function_name() -> None:
    app = WorkerApp("images")

    @app.task
    async def resize(req: ResizeIn) -> ResizeOut:
        return ResizeOut(width=req.width, height=req.height)

    assert isinstance(resize, TaskDef)
    assert resize.task_kind == "resize"
    assert resize.worker_kind == "images"
    assert app.tasks == {"resize": resize}
    assert resize.is_async
    assert resize.context_param is None


def test_kind_overrides_the_function_name_and_options_are_kept() -> None:
    app = WorkerApp("images")

    @app.task(kind="thumb", retries=3, timeout=30)
    def make_thumbnail(data: bytes) -> bytes:
        return data[:1]

    assert make_thumbnail.task_kind == "thumb"
    assert set(app.tasks) == {"thumb"}
    assert make_thumbnail.retries == 3
    assert make_thumbnail.timeout == 30
    assert not make_thumbnail.is_async


async def test_a_taskdef_is_callable_directly() -> None:
    app = WorkerApp("images")

    @app.task
    async def resize(req: ResizeIn) -> ResizeOut:
        return ResizeOut(width=req.width // 2, height=req.height // 2)

    @app.task
    def shout(text: str) -> str:
        return text.upper()

    assert await resize(ResizeIn(width=10, height=4)) == ResizeOut(width=5, height=2)
    assert shout("hi") == "HI"


def test_handler_without_input_annotation_is_refused() -> None:
    app = WorkerApp("w")

    def no_input_type(req) -> str:  # type: ignore[no-untyped-def]
        return "x"

    with pytest.raises(HandlerSignatureError, match=r"parameter 'req' has no type annotation"):
        app.task(no_input_type)
    assert app.tasks == {}


def test_handler_without_return_annotation_is_refused() -> None:
    app = WorkerApp("w")

    def no_output_type(req: str):  # type: ignore[no-untyped-def]
        return req

    with pytest.raises(HandlerSignatureError, match="no return annotation") as info:
        app.task(no_output_type)
    assert "no_output_type" in str(info.value)
    assert "-> None" in str(info.value)


def test_handler_with_two_input_parameters_is_refused() -> None:
    app = WorkerApp("w")

    def two_inputs(a: str, b: str) -> str:
        return a + b

    with pytest.raises(HandlerSignatureError, match="exactly one input parameter") as info:
        app.task(two_inputs)
    assert "it has 2 (a, b); gather them in one pydantic model" in str(info.value)
    assert "async def two_inputs(data: MyInput, ctx: TaskContext) -> MyOutput" in str(info.value)


def test_handler_with_no_input_parameter_is_refused() -> None:
    app = WorkerApp("w")

    def nothing() -> str:
        return ""

    with pytest.raises(HandlerSignatureError, match="it has none; for example: async def nothing"):
        app.task(nothing)


def test_handler_with_star_args_is_refused() -> None:
    app = WorkerApp("w")

    def star(*args: str) -> str:
        return ""

    def star_star(req: str, **kwargs: str) -> str:
        return ""

    with pytest.raises(HandlerSignatureError, match=r"\*args and \*\*kwargs are not supported"):
        app.task(star)
    with pytest.raises(HandlerSignatureError, match=r"\*args and \*\*kwargs are not supported"):
        app.task(star_star)


def test_handler_with_an_unserializable_type_is_refused() -> None:
    app = WorkerApp("w")

    def takes_plain(req: NotSerializable) -> str:
        return ""

    def returns_plain(req: str) -> NotSerializable:
        return NotSerializable()

    with pytest.raises(HandlerSignatureError, match="no serializer for type NotSerializable") as e:
        app.task(takes_plain)
    assert "input of task 'takes_plain'" in str(e.value)
    with pytest.raises(HandlerSignatureError, match="no serializer for type NotSerializable") as e:
        app.task(returns_plain)
    assert "output of task 'returns_plain'" in str(e.value)
    assert app.tasks == {}


def test_a_duplicate_task_kind_is_refused() -> None:
    app = WorkerApp("images")

    @app.task
    def resize(req: str) -> str:
        return req

    def other(req: str) -> str:
        return req

    with pytest.raises(HandlerSignatureError, match="'resize' is already registered") as info:
        app.task(kind="resize")(other)
    assert "'images'" in str(info.value)
    assert app.tasks["resize"] is resize


def test_the_context_parameter_may_be_in_any_position() -> None:
    app = WorkerApp("w")

    @app.task
    async def ctx_first(ctx: tacoq.TaskContext, req: int) -> int:
        return req

    @app.task
    def ctx_last(req: int, context: tacoq.TaskContext) -> int:
        return req

    assert (ctx_first.input_param, ctx_first.context_param) == ("req", "ctx")
    assert (ctx_last.input_param, ctx_last.context_param) == ("req", "context")
    assert ctx_first.input_type is int


# -- running tasks ------------------------------------------------------------------------------


async def test_async_and_sync_handlers_run_and_return_typed_outputs() -> None:
    app = WorkerApp("images")
    threads: dict[str, threading.Thread] = {}

    @app.task
    async def resize(req: ResizeIn) -> ResizeOut:
        threads["async"] = threading.current_thread()
        return ResizeOut(width=req.width // 2, height=req.height // 2)

    @app.task
    def shout(text: str) -> str:
        threads["sync"] = threading.current_thread()
        return text.upper()

    async with running(app) as system:
        a = await system.pub.publish(resize, ResizeIn(width=640, height=480))
        b = await system.pub.publish(shout, "hello")
        row_a, row_b = await system.wait(a.id), await system.wait(b.id)

    assert row_a.status is TaskStatus.COMPLETED
    assert not row_a.is_error
    assert row_a.result(ResizeOut) == ResizeOut(width=320, height=240)
    assert row_b.result(str) == "HELLO"
    assert row_b.result() == "HELLO"
    assert threads["async"] is threading.main_thread()
    assert threads["sync"] is not threading.main_thread()


async def test_a_blocked_sync_handler_does_not_stall_async_ones() -> None:
    app = WorkerApp("mixed")
    release = threading.Event()
    sync_started = threading.Event()

    @app.task
    def slow(req: str) -> str:
        sync_started.set()
        # Blocks its thread until the test has seen the async tasks complete (bounded).
        assert release.wait(WAIT), "the test never released the sync handler"
        return req

    @app.task
    async def fast(req: int) -> int:
        return req * 2

    async with running(app, concurrency=4) as system:
        blocked = await system.pub.publish(slow, "zzz")
        await asyncio.wait_for(asyncio.to_thread(sync_started.wait, WAIT), WAIT)
        quick = [await system.pub.publish(fast, i) for i in range(3)]
        try:
            rows = [await system.wait(t.id) for t in quick]
            assert [r.result(int) for r in rows] == [0, 2, 4]
            still = await system.relay.store.get(blocked.id)
            assert still is not None
            assert not still.is_completed
        finally:
            release.set()
        assert (await system.wait(blocked.id)).result(str) == "zzz"


async def test_a_failing_handler_completes_with_its_error() -> None:
    app = WorkerApp("w")

    @app.task
    async def explode(req: int) -> int:
        raise ValueError(f"cannot handle {req}")

    async with running(app) as system:
        task = await system.pub.publish(explode, 7)
        row = await system.wait(task.id)

    assert row.is_error
    assert row.error is not None
    assert row.error.type == "ValueError"
    assert row.error.message == "cannot handle 7"
    assert row.error.traceback is not None
    assert "explode" in row.error.traceback
    assert "ValueError: cannot handle 7" in row.error.traceback
    with pytest.raises(TaskFailed, match="ValueError: cannot handle 7") as info:
        row.result(int)
    assert info.value.error_type == "ValueError"
    assert info.value.task_id == task.id


async def test_invalid_input_published_by_name_completes_as_invalid_input() -> None:
    app = WorkerApp("images")
    calls = []

    @app.task
    async def resize(req: ResizeIn) -> ResizeOut:
        calls.append(req)
        return ResizeOut(width=req.width, height=req.height)

    async with running(app) as system:
        task = await system.pub.publish(
            "resize", {"width": "wide", "height": 10}, worker_kind="images"
        )
        row = await system.wait(task.id)

    assert row.is_error
    assert row.error is not None
    assert row.error.type == "InvalidInput"
    assert "width" in row.error.message
    assert "'resize'" in row.error.message
    assert calls == []


async def test_valid_input_published_by_name_is_validated_into_the_model() -> None:
    app = WorkerApp("images")

    @app.task
    async def resize(req: ResizeIn) -> ResizeOut:
        return ResizeOut(width=req.width + 1, height=req.height + 1)

    async with running(app) as system:
        task = await system.pub.publish("resize", {"width": 1, "height": 2}, worker_kind="images")
        row = await system.wait(task.id)

    assert row.result(ResizeOut) == ResizeOut(width=2, height=3)


async def test_an_unknown_task_kind_completes_after_bounded_requeues() -> None:
    app = WorkerApp("images")

    @app.task
    async def resize(req: ResizeIn) -> ResizeOut:
        return ResizeOut(width=req.width, height=req.height)

    async with running(app) as system:
        task = await system.pub.publish("rotate", {"degrees": 90}, worker_kind="images")
        row = await system.wait(task.id)
        assert row.is_error
        assert row.error is not None
        assert row.error.type == "DeadLettered"
        assert "unknown task kind" in row.error.message
        assert "'rotate'" in row.error.message
        assert "resize" in row.error.message  # names what the worker does know
        # It does not loop: the assignment left the worker's queue for good.
        stats: Callable[[], dict[str, int]] = system.pub.broker.stats  # type: ignore[attr-defined]
        await eventually(
            lambda: _value(stats()),
            until=lambda s: s.get("worker:images", 0) == 0,
            timeout=5,
            message="worker queue drained",
        )
        await asyncio.sleep(0.1)
        assert stats().get("worker:images", 0) == 0
        assert await system.relay.store.get(task.id) == row


async def _value(value: Any) -> Any:
    return value


async def test_retries_a_failing_handler_until_it_succeeds() -> None:
    app = WorkerApp("w")
    attempts: list[int] = []

    @app.task(retries=2)
    async def flaky(req: int, ctx: tacoq.TaskContext) -> int:
        attempts.append(ctx.attempt)
        if ctx.attempt < 3:
            raise ConnectionError(f"attempt {ctx.attempt} failed")
        return req + 1

    async with running(app) as system:
        task = await system.pub.publish(flaky, 41)
        row = await system.wait(task.id, timeout=30)  # two jittered delays of up to 1s and 2s

    assert not row.is_error
    assert row.result(int) == 42
    assert row.attempt == 3
    assert attempts == [1, 2, 3]


async def test_retries_run_out_and_the_last_error_is_kept() -> None:
    app = WorkerApp("w")
    attempts: list[int] = []

    @app.task(retries=1)
    async def always_fails(req: int, ctx: tacoq.TaskContext) -> int:
        attempts.append(ctx.attempt)
        raise RuntimeError(f"boom {ctx.attempt}")

    async with running(app) as system:
        task = await system.pub.publish(always_fails, 1)
        row = await system.wait(task.id, timeout=30)

    assert row.is_error
    assert row.error is not None
    assert (row.error.type, row.error.message) == ("RuntimeError", "boom 2")
    assert row.attempt == 2
    assert attempts == [1, 2]


async def test_exceptions_outside_retry_on_are_not_retried() -> None:
    app = WorkerApp("w")
    attempts: list[int] = []

    @app.task(retries=3, retry_on=(ConnectionError,))
    async def picky(req: int, ctx: tacoq.TaskContext) -> int:
        attempts.append(ctx.attempt)
        raise KeyError("missing")

    async with running(app) as system:
        task = await system.pub.publish(picky, 1)
        row = await system.wait(task.id)

    assert row.is_error
    assert row.error is not None
    assert row.error.type == "KeyError"
    assert attempts == [1]


async def test_a_handler_over_its_timeout_completes_with_timeout_error() -> None:
    app = WorkerApp("w")

    @app.task(timeout=0.1)
    async def sleepy(req: int) -> int:
        await asyncio.sleep(5)
        return req

    async with running(app) as system:
        task = await system.pub.publish(sleepy, 1)
        row = await system.wait(task.id, timeout=4)  # well before the handler's 5s sleep

    assert row.is_error
    assert row.error is not None
    assert row.error.type == "TimeoutError"
    assert "0.1" in row.error.message


async def test_higher_priorities_run_first() -> None:
    app = WorkerApp("prio")
    order: list[int] = []

    @app.task
    async def record(req: int) -> int:
        order.append(req)
        return req

    priorities = [0, 255, 32, 128, 200, 64]
    async with running(app, start_worker=False) as system:
        tasks = [await system.pub.publish(record, p, priority=p) for p in priorities]
        system.serve(app, concurrency=1)
        for task in tasks:
            await system.wait(task.id)

    assert order == sorted(priorities, reverse=True)


async def test_a_long_task_shows_running_before_it_completes() -> None:
    app = WorkerApp("w", name="long-worker")
    release = asyncio.Event()

    @app.task
    async def long(req: int) -> int:
        await asyncio.wait_for(release.wait(), WAIT)
        return req

    async with running(app) as system:
        task = await system.pub.publish(long, 5)
        store = system.relay.store
        try:
            row = await eventually(
                lambda: store.get(task.id),
                until=lambda r: r is not None and r.status is TaskStatus.RUNNING,
                timeout=WAIT,
                message="the task shows RUNNING",
            )
        finally:
            release.set()
        assert row.executed_by == "long-worker"
        assert row.started_at is not None
        assert row.completed_at is None
        done = await system.wait(task.id)

    assert done.result(int) == 5
    assert done.started_at == row.started_at


async def test_a_short_task_never_writes_running() -> None:
    app = WorkerApp("w", name="quick-worker")

    @app.task
    async def quick(req: int) -> int:
        return req

    async with running(app) as system:
        task = await system.pub.publish(quick, 3)
        row = await system.wait(task.id)
        stats = system.relay.stats

    # The relay saw exactly the assignment and the completion: no RUNNING event in between.
    assert stats.events == 2
    assert row.status is TaskStatus.COMPLETED
    assert row.started_at is not None
    assert row.created_at is not None
    assert row.created_at <= row.started_at
    assert row.completed_at is not None
    assert row.started_at <= row.completed_at
    assert row.executed_by == "quick-worker"


async def test_the_context_is_injected_with_the_task_details() -> None:
    app = WorkerApp("ctxw", name="ctx-worker")
    seen: list[tacoq.TaskContext] = []

    @app.task
    async def first(ctx: tacoq.TaskContext, req: int) -> int:
        seen.append(ctx)
        return req

    @app.task(timeout=10)
    def last(req: int, ctx: tacoq.TaskContext) -> int:
        seen.append(ctx)
        return req

    async with running(app) as system:
        a = await system.pub.publish(first, 1, priority=7)
        await system.wait(a.id)
        b = await system.pub.publish(last, 2)
        await system.wait(b.id)

    ctx_a, ctx_b = seen
    assert (ctx_a.id, ctx_a.task_kind, ctx_a.worker_kind) == (a.id, "first", "ctxw")
    assert (ctx_a.attempt, ctx_a.priority, ctx_a.worker_name) == (1, 7, "ctx-worker")
    assert ctx_a.deadline is None
    assert (ctx_b.id, ctx_b.task_kind, ctx_b.attempt, ctx_b.worker_name) == (
        b.id,
        "last",
        1,
        "ctx-worker",
    )
    assert ctx_b.deadline is not None


async def test_a_handler_can_publish_a_follow_up_task() -> None:
    app = WorkerApp("chain")
    follow_ups: list[uuid.UUID] = []

    @app.task
    async def second(req: int) -> int:
        return req * 10

    @app.task
    async def first(req: int, ctx: tacoq.TaskContext) -> int:
        task = await ctx.publisher.publish(second, req + 1)
        follow_ups.append(task.id)
        return req

    async with running(app) as system:
        task = await system.pub.publish(first, 4)
        await system.wait(task.id)
        assert len(follow_ups) == 1
        row = await system.wait(follow_ups[0])

    assert row.result(int) == 50


class Recorder:
    """A throw-away plugin: a task listener and a handler middleware that record what they see."""

    def __init__(self) -> None:
        self.events: list[LifecycleEvent] = []
        self.wrapped: list[tuple[uuid.UUID, str]] = []

    @hookimpl
    def tacoq_task_listener(self) -> "Recorder":
        return self

    @hookimpl
    def tacoq_handler_middleware(self) -> Callable[..., Awaitable[Any]]:
        return self.middleware

    def on_task_event(self, event: LifecycleEvent) -> None:
        self.events.append(event)

    async def middleware(
        self, ctx: tacoq.TaskContext, call_next: Callable[[], Awaitable[Any]]
    ) -> Any:
        self.wrapped.append((ctx.id, ctx.task_kind))
        return await call_next()


async def test_middleware_and_listeners_see_every_task() -> None:
    app = WorkerApp("hooks")

    @app.task
    async def ok(req: int) -> int:
        return req

    @app.task
    def bad(req: int) -> int:
        raise ValueError("no")

    with plugin(Recorder()) as recorder:
        async with running(app) as system:
            published = [await system.pub.publish(ok, i) for i in range(3)]
            published.append(await system.pub.publish(bad, 9))
            for task in published:
                await system.wait(task.id)
            ids = {t.id for t in published}
            await eventually(
                lambda: _value({e.task_id for e in recorder.events if e.kind == "stored"}),
                until=lambda stored: stored == ids,
                timeout=5,
                message="every completion was reported as stored",
            )

    assert sorted(recorder.wrapped, key=str) == sorted(
        [(t.id, t.task_kind) for t in published], key=str
    )
    by_kind: dict[LifecycleKind, set[uuid.UUID]] = {}
    for event in recorder.events:
        by_kind.setdefault(event.kind, set()).add(event.task_id)
    assert by_kind[LifecycleKind.PUBLISHED] == ids
    assert by_kind[LifecycleKind.STARTED] == ids
    assert by_kind[LifecycleKind.SUCCEEDED] == {t.id for t in published[:3]}
    assert by_kind[LifecycleKind.FAILED] == {published[3].id}
    failed = next(e for e in recorder.events if e.kind is LifecycleKind.FAILED)
    assert failed.error_type == "ValueError"
    assert failed.is_error
    assert recorder not in get_plugin_host().task_listeners()


class BrokenListener:
    """A throw-away plugin whose listener fails on every event (raising, or failing later)."""

    def __init__(self, asynchronous: bool) -> None:
        self.asynchronous = asynchronous
        self.calls = 0

    @hookimpl
    def tacoq_task_listener(self) -> "BrokenListener":
        return self

    def on_task_event(self, event: LifecycleEvent) -> Awaitable[None] | None:
        self.calls += 1
        if self.asynchronous:
            return self._fail(event)
        raise RuntimeError(f"listener broke on {event.kind}")

    async def _fail(self, event: LifecycleEvent) -> None:
        raise RuntimeError(f"listener broke on {event.kind}")


@pytest.mark.parametrize("asynchronous", [False, True], ids=["raises", "awaitable-fails"])
async def test_a_failing_listener_never_changes_what_happens_to_a_task(asynchronous: bool) -> None:
    app = WorkerApp("w")
    runs: list[int] = []

    @app.task
    async def once(req: int) -> int:
        runs.append(req)
        return req + 1

    with plugin(BrokenListener(asynchronous)) as listener:
        async with running(app) as system:
            first = await system.pub.publish(once, 1)  # the publish itself succeeds
            row = await system.wait(first.id)
            second = await system.pub.publish(once, 2)  # the relay is still consuming
            again = await system.wait(second.id)
            await asyncio.sleep(0.1)  # a redelivery, if any, would run the handler again
            assert listener.calls > 0

    assert row.result(int) == 2
    assert again.result(int) == 3
    assert runs == [1, 2]
    assert system.relay.stats.duplicate_completions == 0


async def test_a_handler_raising_its_own_timeout_error_keeps_its_message() -> None:
    """Only the worker's own timeout is reported as "exceeded its timeout"."""
    app = WorkerApp("w")

    @app.task(timeout=30)
    async def upstream(req: int) -> int:
        raise TimeoutError("the upstream service timed out")

    async with running(app) as system:
        task = await system.pub.publish(upstream, 1)
        row = await system.wait(task.id)

    assert row.error is not None
    assert row.error.type == "TimeoutError"
    assert row.error.message == "the upstream service timed out"


async def test_a_sync_handler_over_its_timeout_completes_with_timeout_error() -> None:
    app = WorkerApp("w")
    release = threading.Event()

    @app.task(timeout=0.1)
    def stuck(req: int) -> int:
        release.wait(WAIT)
        return req

    try:
        async with running(app) as system:
            task = await system.pub.publish(stuck, 1)
            row = await system.wait(task.id, timeout=5)
    finally:
        release.set()  # let the abandoned thread finish

    assert row.error is not None
    assert row.error.type == "TimeoutError"
    assert row.error.message == "task exceeded its timeout of 0.1s"


async def test_an_output_over_the_limit_completes_as_output_too_large_and_the_worker_goes_on() -> (
    None
):
    app = WorkerApp("w")

    @app.task
    async def huge(size: int) -> bytes:
        return b"x" * size

    async with running(app) as system:
        too_big = await system.pub.publish(huge, 2 * 1024 * 1024)
        fine = await system.pub.publish(huge, 10)
        row = await system.wait(too_big.id)
        assert (await system.wait(fine.id)).result(bytes) == b"x" * 10

    assert row.is_error
    assert row.error is not None
    assert row.error.type == "OutputTooLarge"
    assert "2,097,152 bytes" in row.error.message
    assert "1,048,576 bytes" in row.error.message  # the limit


async def test_a_final_failure_is_logged_once_with_kind_id_attempt_and_error_type(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = WorkerApp("w")

    @app.task(retries=1, retry_backoff=0.01)
    async def explode(req: int) -> int:
        raise ValueError(f"cannot handle {req}")

    caplog.set_level("INFO", logger="tacoq.worker")
    async with running(app) as system:
        task = await system.pub.publish(explode, 7)
        row = await system.wait(task.id)
    assert row.attempt == 2

    mentions = [r for r in caplog.records if str(task.id) in r.getMessage()]
    final = [r for r in mentions if "attempt 2 failed" in r.getMessage()]
    assert len(final) == 1, [r.getMessage() for r in caplog.records]
    message = final[0].getMessage()
    assert final[0].levelname == "WARNING"
    assert "explode" in message
    assert "ValueError" in message
    assert "no retries left" in message


async def test_an_error_text_no_store_could_hold_is_stored_escaped_and_cut() -> None:
    app = WorkerApp("w")

    @app.task
    async def odd(req: int) -> int:
        raise ValueError("nul \x00 surrogate \udc80 " + "x" * 100_000)

    async with running(app) as system:
        task = await system.pub.publish(odd, 1)
        row = await system.wait(task.id)

    assert row.error is not None
    assert row.error.type == "ValueError"
    assert row.error.message.startswith("nul \\x00 surrogate \\udc80 xxx")
    assert row.error.message.endswith("more characters cut]")
    assert len(row.error.message) < 65_536 + 100
    assert row.error.traceback is not None
    row.error.message.encode("utf-8")  # storable: no lone surrogate left
    row.error.traceback.encode("utf-8")
