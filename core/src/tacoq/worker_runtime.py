"""The worker's engine: consume assignments, run handlers, report their outcome.

One feeder moves deliveries from the broker into a local priority queue (so the highest
priority among what the worker holds runs first); ``concurrency`` runner coroutines take from
it. Async handlers run on the loop, sync handlers in a dedicated thread pool. ``RUNNING`` is
only sent when a handler takes longer than :data:`RUNNING_THRESHOLD` (a short task's
``COMPLETED`` carries ``started_at``). Each assignment is acked only after the broker confirmed
the update that completes it.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
import random
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from tacoq.broker import DEFAULT_DELIVERY_LIMIT, Broker, Consumer, Delivery, worker_queue
from tacoq.context import TaskContext
from tacoq.errors import SerializationError, WireFormatError
from tacoq.events import HandlerMiddleware, LifecycleEvent, LifecycleKind, TaskListener
from tacoq.models import ErrorInfo, Payload, Phase, TaskEvent, utcnow
from tacoq.plugins import get_plugin_host
from tacoq.publisher import Publisher
from tacoq.updates import CompletedCache, UpdateBatcher
from tacoq.wire import decode_assignment, encode_assignment

if TYPE_CHECKING:
    from tacoq.worker import TaskDef, WorkerApp

__all__ = ["RUNNING_THRESHOLD", "WorkerRuntime"]

log = logging.getLogger("tacoq.worker")

#: A handler that finishes within this many seconds never sends RUNNING (DESIGN.md §4).
RUNNING_THRESHOLD = 0.05
#: An unknown task kind is requeued this many times (rolling deploys) before it fails.
UNKNOWN_KIND_REDELIVERIES = 3
#: Retry backoff: ``base * 2**(attempt-1)``, capped, with full jitter.
RETRY_BACKOFF_BASE = 1.0
RETRY_BACKOFF_CAP = 60.0

_Item = tuple[int, int, Delivery]


class _HandlerTimeout(TimeoutError):
    """The handler ran past its task's ``timeout`` (reported as ``TimeoutError``)."""


class WorkerRuntime:
    """Runs one :class:`~tacoq.worker.WorkerApp` against one broker until stopped."""

    def __init__(
        self,
        app: WorkerApp,
        broker: Broker,
        *,
        concurrency: int,
        prefetch: int | None,
        name: str,
        delivery_limit: int = DEFAULT_DELIVERY_LIMIT,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.app = app
        self.broker = broker
        self.concurrency = concurrency
        self.prefetch = prefetch or concurrency
        self.name = name
        self.delivery_limit = delivery_limit
        host = get_plugin_host()
        self.registry = host.serializers
        self.listeners: list[TaskListener] = host.task_listeners()
        self.middlewares: list[HandlerMiddleware] = host.middlewares()
        self.cache = CompletedCache()
        self.publisher = Publisher(broker_instance=broker)
        self._queue: asyncio.PriorityQueue[_Item] = asyncio.PriorityQueue()
        self._seq = itertools.count()
        self._pool: ThreadPoolExecutor | None = None
        self._consumer: Consumer | None = None
        self._batcher: UpdateBatcher | None = None
        self._notes: set[asyncio.Future[None]] = set()

    # -- lifecycle ---------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Serve until ``stop`` is set; then finish in-flight tasks and flush their updates."""
        await self.broker.connect()
        try:
            await self.broker.declare_worker_queue(self.app.worker_kind)
            consumer = await self.broker.consume(
                worker_queue(self.app.worker_kind), prefetch=self.prefetch
            )
            self._consumer = consumer
            self._batcher = UpdateBatcher(self.broker, consumer, self.cache)
            if any(not t.is_async for t in self.app.tasks.values()):
                self._pool = ThreadPoolExecutor(
                    max_workers=self.concurrency, thread_name_prefix=f"tacoq-{self.app.worker_kind}"
                )
            log.info(
                "worker %s serving %s (%d task kinds, concurrency %d, prefetch %d)",
                self.name,
                self.app.worker_kind,
                len(self.app.tasks),
                self.concurrency,
                self.prefetch,
            )
            flusher = asyncio.create_task(self._batcher.run(), name="tacoq-updates")
            feeder = asyncio.create_task(self._feed(consumer), name="tacoq-feeder")
            runners = [
                asyncio.create_task(self._run_tasks(), name=f"tacoq-runner-{i}")
                for i in range(self.concurrency)
            ]
            await stop.wait()
            feeder.cancel()
            await asyncio.gather(feeder, return_exceptions=True)
            await self._queue.join()  # in-flight and already-held tasks finish
            for runner in runners:
                runner.cancel()
            await asyncio.gather(*runners, return_exceptions=True)
            await self._batcher.close()
            await flusher
            await consumer.close()
        finally:
            if self._pool is not None:
                self._pool.shutdown(wait=False, cancel_futures=True)
            await self.broker.close()

    async def _feed(self, consumer: Consumer) -> None:
        while True:
            delivery = await consumer.get()
            self._put(delivery)
            while (more := consumer.get_nowait()) is not None:
                self._put(more)

    def _put(self, delivery: Delivery) -> None:
        try:
            priority = int(delivery.envelope.headers.get("tacoq-priority", "0"))
        except ValueError:
            priority = 0
        self._queue.put_nowait((-priority, next(self._seq), delivery))

    async def _run_tasks(self) -> None:
        while True:
            _, _, delivery = await self._queue.get()
            try:
                await self._handle(delivery)
            except Exception:
                log.exception("unexpected error handling a delivery; it will be redelivered")
                await _settle(delivery.requeue())
            finally:
                self._queue.task_done()

    # -- one delivery ------------------------------------------------------------------------

    async def _handle(self, delivery: Delivery) -> None:
        assert self._batcher is not None
        try:
            assignment = decode_assignment(delivery.envelope)
        except WireFormatError as exc:
            log.warning("dead-lettering a malformed assignment: %s", exc)
            await delivery.dead_letter(f"malformed assignment: {exc}")
            return
        if delivery.redelivered:
            done = self.cache.get(assignment.id, assignment.attempt)
            if done is not None:  # completed before a reconnect lost the ack
                self._batcher.add(done, delivery)
                return
        if delivery.delivery_count > self.delivery_limit:
            await self._dead_letter(
                assignment,
                delivery,
                f"delivered {delivery.delivery_count} times (limit {self.delivery_limit})",
            )
            return
        taskdef = self.app.tasks.get(assignment.task_kind)
        if taskdef is None:
            if delivery.delivery_count <= UNKNOWN_KIND_REDELIVERIES:
                await delivery.requeue()
                return
            known = ", ".join(sorted(self.app.tasks)) or "none"
            await self._dead_letter(
                assignment,
                delivery,
                f"unknown task kind {assignment.task_kind!r}: worker {self.app.worker_kind!r} "
                f"has no handler for it after {delivery.delivery_count} deliveries "
                f"(known: {known})",
            )
            return
        await self._execute(taskdef, assignment, delivery)

    async def _execute(
        self, taskdef: TaskDef[..., Any], assignment: TaskEvent, delivery: Delivery
    ) -> None:
        assert self._batcher is not None
        assert assignment.input is not None
        started_at = utcnow()
        try:
            value = self.registry.decode(
                assignment.input,
                taskdef.input_type,
                what=f"input of task {assignment.task_kind!r} ({assignment.id})",
            )
        except SerializationError as exc:
            self._complete(
                assignment, delivery, started_at, error=ErrorInfo("InvalidInput", str(exc))
            )
            return
        running = _progress(assignment, Phase.RUNNING, self.name, started_at)
        timer = asyncio.get_running_loop().call_later(RUNNING_THRESHOLD, self._batcher.add, running)
        if self.listeners:
            await self._notify(assignment, LifecycleKind.STARTED)
        clock = time.perf_counter()
        try:
            result = await self._call(taskdef, assignment, value, started_at)
            output = Payload(taskdef.output_codec.content_type, taskdef.output_codec.dump(result))
        except Exception as exc:
            timer.cancel()
            duration = time.perf_counter() - clock
            if isinstance(exc, taskdef.retry_on) and assignment.attempt <= taskdef.retries:
                await self._retry(assignment, delivery, exc)
                return
            error = ErrorInfo.from_exception(exc)
            if isinstance(exc, _HandlerTimeout):  # not a TimeoutError the handler raised
                error = ErrorInfo("TimeoutError", str(exc), error.traceback)
            self._complete(assignment, delivery, started_at, error=error, duration=duration)
            return
        timer.cancel()
        self._complete(
            assignment, delivery, started_at, output=output, duration=time.perf_counter() - clock
        )

    async def _call(
        self, taskdef: TaskDef[..., Any], assignment: TaskEvent, value: Any, started_at: Any
    ) -> Any:
        kwargs: dict[str, Any] = {taskdef.input_param: value}
        ctx = None
        if taskdef.context_param is not None or self.middlewares:
            ctx = TaskContext(
                id=assignment.id,
                task_kind=assignment.task_kind,
                worker_kind=assignment.worker_kind,
                attempt=assignment.attempt,
                priority=assignment.priority,
                worker_name=self.name,
                deadline=started_at + timedelta(seconds=taskdef.timeout)
                if taskdef.timeout
                else None,
                logger=logging.getLogger(f"tacoq.task.{assignment.task_kind}"),
                publisher=self.publisher,
            )
            if taskdef.context_param is not None:
                kwargs[taskdef.context_param] = ctx

        async def call() -> Any:
            if taskdef.is_async:
                return await taskdef.fn(**kwargs)
            assert self._pool is not None
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._pool, functools.partial(taskdef.fn, **kwargs))

        handler: Callable[[], Awaitable[Any]] = call
        for middleware in reversed(self.middlewares):
            assert ctx is not None
            handler = functools.partial(middleware, ctx, handler)
        if taskdef.timeout is None:
            return await handler()
        scope = asyncio.timeout(taskdef.timeout)
        try:
            async with scope:
                return await handler()
        except TimeoutError as exc:
            if scope.expired():
                raise _HandlerTimeout(f"task exceeded its timeout of {taskdef.timeout}s") from exc
            raise

    # -- outcomes ----------------------------------------------------------------------------

    def _complete(
        self,
        assignment: TaskEvent,
        delivery: Delivery,
        started_at: Any,
        *,
        output: Payload | None = None,
        error: ErrorInfo | None = None,
        duration: float | None = None,
    ) -> None:
        assert self._batcher is not None
        event = replace(
            _progress(assignment, Phase.COMPLETED, self.name, started_at),
            completed_at=utcnow(),
            is_error=error is not None,
            output=output,
            error=error,
        )
        self._batcher.add(event, delivery)
        if self.listeners:
            kind = LifecycleKind.FAILED if error is not None else LifecycleKind.SUCCEEDED
            pending = self._emit(assignment, kind, duration=duration, error=error)
            if pending:
                note = asyncio.ensure_future(_await_all(pending))
                self._notes.add(note)
                note.add_done_callback(self._notes.discard)

    async def _retry(self, assignment: TaskEvent, delivery: Delivery, exc: Exception) -> None:
        delay = random.uniform(
            0, min(RETRY_BACKOFF_CAP, RETRY_BACKOFF_BASE * 2 ** (assignment.attempt - 1))
        )
        log.info(
            "task %s (%s) attempt %d failed with %s; retrying in %.1fs",
            assignment.id,
            assignment.task_kind,
            assignment.attempt,
            type(exc).__name__,
            delay,
        )
        retry = replace(assignment, attempt=assignment.attempt + 1)
        await self.broker.publish(encode_assignment(retry), priority=retry.priority, delay=delay)
        await delivery.ack()
        await self._notify(assignment, LifecycleKind.RETRYING, error=ErrorInfo.from_exception(exc))

    async def _dead_letter(self, assignment: TaskEvent, delivery: Delivery, reason: str) -> None:
        assert self._batcher is not None
        error = ErrorInfo("DeadLettered", reason)
        event = replace(
            _progress(assignment, Phase.COMPLETED, self.name, utcnow()),
            completed_at=utcnow(),
            is_error=True,
            error=error,
        )
        self._batcher.add(event)
        await self._batcher.drain()
        await delivery.dead_letter(reason)
        await self._notify(assignment, LifecycleKind.DEAD_LETTERED, error=error)

    def _emit(
        self,
        assignment: TaskEvent,
        kind: LifecycleKind,
        *,
        duration: float | None = None,
        error: ErrorInfo | None = None,
    ) -> list[Awaitable[None]]:
        """Call every listener; return the awaitables that async listeners gave back."""
        event = LifecycleEvent(
            kind=kind,
            task_id=assignment.id,
            task_kind=assignment.task_kind,
            worker_kind=assignment.worker_kind,
            attempt=assignment.attempt,
            duration=duration,
            error_type=error.type if error is not None else None,
            is_error=error is not None,
        )
        pending = []
        for listener in self.listeners:
            try:  # a listener observes; its failure never changes what happens to the task
                result = listener.on_task_event(event)
            except Exception:
                log.exception("task listener %r failed on %s; ignored", listener, kind)
                continue
            if result is not None:
                pending.append(result)
        return pending

    async def _notify(
        self,
        assignment: TaskEvent,
        kind: LifecycleKind,
        *,
        duration: float | None = None,
        error: ErrorInfo | None = None,
    ) -> None:
        if self.listeners:
            await _await_all(self._emit(assignment, kind, duration=duration, error=error))


async def _await_all(pending: list[Awaitable[None]]) -> None:
    for awaitable in pending:
        try:
            await awaitable
        except Exception:
            log.exception("a task listener failed; ignored")


def _progress(assignment: TaskEvent, phase: Phase, worker: str, started_at: Any) -> TaskEvent:
    return TaskEvent(
        id=assignment.id,
        attempt=assignment.attempt,
        phase=phase,
        task_kind=assignment.task_kind,
        worker_kind=assignment.worker_kind,
        ttl=assignment.ttl,
        priority=assignment.priority,
        executed_by=worker,
        started_at=started_at,
    )


async def _settle(action: Awaitable[None]) -> None:
    try:
        await action
    except Exception as exc:
        log.info("settling a delivery failed (%s); the broker will redeliver it", exc)
