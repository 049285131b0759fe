"""The worker's engine: consume assignments, run handlers, report their outcome, stop gracefully.

One feeder moves deliveries from the broker into a local priority queue (so the highest
priority among what the worker holds runs first); ``concurrency`` runner coroutines take from
it. Handlers are called by :class:`~tacoq.worker.handler_call.HandlerCall` (async on the loop, sync
in the worker's own daemon thread pool). ``RUNNING`` is only sent when a handler takes longer than
:data:`RUNNING_THRESHOLD` (a short task's ``COMPLETED`` carries ``started_at``; one timer
watches every running attempt, :class:`~tacoq.worker.report.RunningNotices`). Each assignment
is acked only after the broker confirmed the update that completes it.

Stopping (``stop`` set, e.g. by SIGTERM): stop taking deliveries, hand the held-but-unstarted
ones back to the queue at once, let running handlers finish within ``grace`` seconds, flush
their updates, and leave whatever still runs unacknowledged (the broker redelivers it). Setting
``abort`` (a second signal) cuts the grace short.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from typing import TYPE_CHECKING, Any
from uuid import UUID

from tacoq.config import redact_url
from tacoq.contracts.broker import DEFAULT_DELIVERY_LIMIT, Broker, Consumer, Delivery, worker_queue
from tacoq.contracts.lifecycle import HandlerMiddleware, LifecycleKind
from tacoq.errors import OutputTooLarge, SerializationError, UnknownMessageKind, WireFormatError
from tacoq.guard import describe_failure, is_outage, note_unknown_kind, set_aside
from tacoq.model.task import ErrorInfo, Payload, TaskEvent, utcnow
from tacoq.model.wire import (
    EVENT_ASSIGN,
    EVENT_UPDATES,
    H_PRIORITY,
    H_VERSION,
    WIRE_VERSION,
    decode_assignment,
    raise_unknown_kind,
)
from tacoq.model.workers import DEFAULT_HEARTBEAT_INTERVAL
from tacoq.plugins import PluginHost, get_plugin_host
from tacoq.publishing.publisher import Publisher
from tacoq.serialization import DEFAULT_MAX_PAYLOAD_BYTES
from tacoq.worker.contracts import task_contract
from tacoq.worker.handler_call import HandlerCall, HandlerTimeout
from tacoq.worker.handler_pool import DaemonThreadPool
from tacoq.worker.presence import Presence, check_heartbeat_interval
from tacoq.worker.report import RunningNotices, TaskReporter, WorkerStats
from tacoq.worker.shutdown import first_of, settle, stop_receiving, wait_until
from tacoq.worker.updates import CompletedCache, UpdateBatcher

if TYPE_CHECKING:
    from tacoq.worker.app import TaskDef, WorkerApp

__all__ = [
    "DEFAULT_GRACE",
    "RUNNING_THRESHOLD",
    "UNKNOWN_KIND_REDELIVERIES",
    "WorkerRuntime",
    "WorkerStats",
]

log = logging.getLogger("tacoq.worker")

#: A handler that finishes within this many seconds never sends RUNNING (docs/architecture.md,
#: "2. Run", step 5).
RUNNING_THRESHOLD = 0.05
#: How often, at most, the worker looks for attempts that passed the threshold (RUNNING goes
#: out between 50 and 60 ms after the start).
RUNNING_TICK = 0.01
#: An unknown task kind is requeued while delivered at most this many times (rolling deploys),
#: then dead-lettered with a ``DeadLettered`` completion.
UNKNOWN_KIND_REDELIVERIES = 3
#: Seconds running tasks get to finish after a stop signal.
DEFAULT_GRACE = 30.0
#: Extra seconds, after the grace, to get the last updates confirmed (an abort allows one).
FLUSH_MARGIN = 5.0
ABORT_FLUSH = 1.0

_Item = tuple[int, int, Delivery]


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
        grace: float = DEFAULT_GRACE,
        delivery_limit: int = DEFAULT_DELIVERY_LIMIT,
        max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
        heartbeat_interval: float = DEFAULT_HEARTBEAT_INTERVAL,
        plugins: PluginHost | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if grace < 0:
            raise ValueError("grace must be >= 0 seconds")
        self.app = app
        self.broker = broker
        self.concurrency = concurrency
        self.prefetch = prefetch or concurrency
        self.name = name
        self.grace = grace
        self.delivery_limit = delivery_limit
        #: Larger assignments are dead-lettered unrun (publishers refuse them; see publisher).
        self.max_payload_bytes = max_payload_bytes
        self.stats = WorkerStats()
        #: Seconds between two heartbeats (docs/workers.md).
        self.heartbeat_interval = check_heartbeat_interval(heartbeat_interval)
        #: This worker on the control channel; made when :meth:`run` starts.
        self.presence: Presence | None = None
        host = plugins or get_plugin_host()
        self.registry = host.serializers
        self.bus = host.bus
        self.middlewares: list[HandlerMiddleware] = host.middlewares()
        self.cache = CompletedCache()
        self.publisher = Publisher(broker_instance=broker, plugins=host)
        self.pool: DaemonThreadPool | None = None
        self._queue: asyncio.PriorityQueue[_Item] = asyncio.PriorityQueue()
        self._seq = itertools.count()
        self._reporter: TaskReporter | None = None
        self._notices: RunningNotices | None = None
        self._active = 0  # deliveries being handled right now
        # (id, attempt) of handlers running now -> redeliveries of them received meanwhile
        self._running: dict[tuple[UUID, int], list[Delivery]] = {}
        self._idle = asyncio.Event()
        self._idle.set()
        self._unknown_kinds: set[str] = set()

    # -- lifecycle ---------------------------------------------------------------------------

    def _running_ids(self) -> list[UUID]:
        """The ids of the tasks whose handlers run now (for the heartbeat)."""
        return [task_id for task_id, _ in self._running]

    async def run(self, stop: asyncio.Event, abort: asyncio.Event | None = None) -> None:
        """Serve until ``stop`` (or ``abort``) is set, then shut down as the module describes."""
        abort = abort or asyncio.Event()
        await self.broker.connect()
        try:
            await self.broker.declare_worker_queue(self.app.worker_kind)
            consumer = await self.broker.consume(
                worker_queue(self.app.worker_kind), prefetch=self.prefetch
            )
            batcher = UpdateBatcher(self.broker, consumer, self.cache)
            self._reporter = TaskReporter(self.broker, batcher, self.bus, self.name, self.stats)
            self._notices = RunningNotices(self._reporter, RUNNING_THRESHOLD, RUNNING_TICK)
            if any(not t.is_async for t in self.app.tasks.values()):
                self.pool = DaemonThreadPool(self.concurrency, name=f"tacoq-{self.app.worker_kind}")
            log.info(
                "worker %s serving %s on %s: tasks %s; concurrency %d, prefetch %d, grace %gs",
                self.name,
                self.app.worker_kind,
                redact_url(self.broker.url),
                ", ".join(sorted(self.app.tasks)) or "(none)",
                self.concurrency,
                self.prefetch,
                self.grace,
            )
            self.presence = presence = Presence(
                self.broker,
                name=self.name,
                worker_kind=self.app.worker_kind,
                contracts={kind: task_contract(t) for kind, t in self.app.tasks.items()},
                concurrency=self.concurrency,
                prefetch=self.prefetch,
                interval=self.heartbeat_interval,
                stats=self.stats,
                running=self._running_ids,
            )
            leaving = asyncio.Event()
            beating = asyncio.create_task(presence.run(leaving), name="tacoq-presence")
            flusher = asyncio.create_task(batcher.run(), name="tacoq-updates")
            feeder = asyncio.create_task(self._feed(consumer), name="tacoq-feeder")
            runners = [
                asyncio.create_task(self._run_tasks(), name=f"tacoq-runner-{i}")
                for i in range(self.concurrency)
            ]
            await first_of(stop, abort)
            # Goodbye first: the worker leaves the workers online as it stops taking tasks.
            leaving.set()
            await beating
            await presence.goodbye()
            await self._shutdown(consumer, batcher, flusher, feeder, runners, abort)
        finally:
            if self._notices is not None:
                self._notices.close()
            if self.pool is not None:
                self.pool.shutdown()
            await self.broker.close()

    async def _shutdown(
        self,
        consumer: Consumer,
        batcher: UpdateBatcher,
        flusher: asyncio.Task[None],
        feeder: asyncio.Task[None],
        runners: list[asyncio.Task[None]],
        abort: asyncio.Event,
    ) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.grace
        await stop_receiving(consumer)
        feeder.cancel()
        await asyncio.gather(feeder, return_exceptions=True)
        held = await self._hand_back(consumer)
        log.info(
            "worker %s stopping: %d running task(s) get up to %gs to finish; "
            "%d held task(s) handed back to the queue",
            self.name,
            self._active,
            self.grace,
            held,
        )
        if not await wait_until(self._idle, abort, deadline - loop.time()):
            self.stats.abandoned_on_shutdown += self._active
            why = "a second signal" if abort.is_set() else f"the {self.grace:g}s grace ran out"
            log.warning(
                "%s: %d running task(s) left unacknowledged; the broker will redeliver them",
                why,
                self._active,
            )
        for runner in runners:
            runner.cancel()
        await asyncio.gather(*runners, return_exceptions=True)
        await batcher.close()
        margin = ABORT_FLUSH if abort.is_set() else max(deadline - loop.time(), 0) + FLUSH_MARGIN
        done, _ = await asyncio.wait({flusher}, timeout=margin)
        if not done:
            log.warning("could not confirm the last updates within %.1fs; giving up", margin)
            flusher.cancel()
            await asyncio.gather(flusher, return_exceptions=True)
        await settle(consumer.close())
        log.info("worker %s stopped (%s)", self.name, _summary(self.stats))

    async def _hand_back(self, consumer: Consumer) -> int:
        """Requeue every delivery held but not started, at once (other workers may run them)."""
        held: list[Delivery] = []
        while not self._queue.empty():
            held.append(self._queue.get_nowait()[2])
            self._queue.task_done()
        while (more := consumer.get_nowait()) is not None:
            held.append(more)
        if held:
            jobs = [asyncio.ensure_future(settle(d.requeue())) for d in held]
            # unsettled ones return to the queue anyway when the consumer closes
            await asyncio.wait(jobs, timeout=10)
            self.stats.requeued_on_shutdown += len(held)
        return len(held)

    async def _feed(self, consumer: Consumer) -> None:
        while True:
            delivery = await consumer.get()
            self._put(delivery)
            while (more := consumer.get_nowait()) is not None:
                self._put(more)

    def _put(self, delivery: Delivery) -> None:
        try:
            priority = int(delivery.envelope.headers.get(H_PRIORITY, "0"))
        except (TypeError, ValueError):  # a malformed one is dead-lettered when its turn comes
            priority = 0
        self._queue.put_nowait((-priority, next(self._seq), delivery))

    async def _run_tasks(self) -> None:
        while True:
            _, _, delivery = await self._queue.get()
            self._active += 1
            self._idle.clear()
            abandoned: asyncio.Future[Any] | None = None
            try:
                abandoned = await self._handle(delivery)
            except Exception as exc:  # the last-resort guard: no message may wedge the worker
                await self._guard(delivery, exc)
            finally:
                self._active -= 1
                if self._active == 0:
                    self._idle.set()
                self._queue.task_done()
            if abandoned is not None:
                await self._hold_slot(abandoned)

    async def _guard(self, delivery: Delivery, exc: Exception) -> None:
        """Settle a delivery whose handling failed unexpectedly: back to the queue after an
        outage (the broker is unreachable), else dead-lettered with the failure as reason."""
        if is_outage(exc):
            log.warning("handling a delivery failed (%s); it goes back to the queue", exc)
            await settle(delivery.requeue())
            return
        log.exception("handling a delivery failed unexpectedly; dead-lettering it")
        reason = f"worker {self.name} failed on this message: {describe_failure(exc)}"
        if await set_aside(delivery, reason, log) == "dead-lettered":
            self.stats.dead_lettered += 1

    async def _set_aside(self, delivery: Delivery, reason: str) -> None:
        log.warning("dead-lettering a malformed assignment: %s", reason)
        if await set_aside(delivery, f"malformed assignment: {reason}", log) == "dead-lettered":
            self.stats.dead_lettered += 1

    def _skip_unknown(self, kind: str) -> None:
        self.stats.unknown_messages += 1
        note_unknown_kind(kind, self._unknown_kinds, log)

    async def _hold_slot(self, thread: asyncio.Future[Any]) -> None:
        """Keep this runner busy until a timed-out handler really ends (a sync handler's
        thread, or an async handler that ignored its cancellation)."""
        self.stats.sync_timed_out_running += 1
        began = time.perf_counter()
        try:
            await asyncio.shield(thread)
        except asyncio.CancelledError:
            raise
        except BaseException:  # its exception is discarded like its result
            pass
        finally:
            self.stats.sync_timed_out_running -= 1
        self.stats.sync_timed_out_returned += 1
        log.warning(
            "a timed-out handler returned %.1fs after its timeout; result discarded",
            time.perf_counter() - began,
        )

    # -- one delivery ------------------------------------------------------------------------

    async def _handle(self, delivery: Delivery) -> asyncio.Future[Any] | None:
        reporter = self._reporter
        assert reporter is not None
        envelope = delivery.envelope
        try:
            event = envelope.event
            if (
                event not in (EVENT_ASSIGN, EVENT_UPDATES)
                and envelope.headers.get(H_VERSION) == WIRE_VERSION
            ):
                raise_unknown_kind(event)  # a newer TacoQ's message kind, or malformed
            assignment = decode_assignment(envelope)
        except UnknownMessageKind as exc:
            self._skip_unknown(exc.kind)
            await delivery.ack()
            return None
        except WireFormatError as exc:
            await self._set_aside(delivery, str(exc))
            return None
        size = len(envelope.body)
        if size > self.max_payload_bytes:  # no publisher sends this; never run it
            await reporter.dead_letter(
                assignment,
                delivery,
                f"input of {size:,} bytes is over the limit of {self.max_payload_bytes:,} bytes "
                f"(max_payload_bytes)",
            )
            return None
        key = (assignment.id, assignment.attempt)
        if delivery.redelivered:
            done = reporter.batcher.completion(*key)
            if done is not None:  # completed here before a reconnect lost the ack
                reporter.batcher.add(done, delivery, reply_to=reporter.reply_to(delivery))
                return None
            if key in self._running:  # still running here: answer it with that run's outcome
                self._running[key].append(delivery)
                return None
        if delivery.delivery_count > self.delivery_limit:
            await reporter.dead_letter(
                assignment,
                delivery,
                f"delivered {delivery.delivery_count} times (limit {self.delivery_limit})",
            )
            return None
        taskdef = self.app.tasks.get(assignment.task_kind)
        if taskdef is None:
            if delivery.delivery_count <= UNKNOWN_KIND_REDELIVERIES:
                self.stats.unknown_kind_requeued += 1
                await delivery.requeue()
                return None
            known = ", ".join(sorted(self.app.tasks)) or "none"
            await reporter.dead_letter(
                assignment,
                delivery,
                f"unknown task kind {assignment.task_kind!r}: worker {self.app.worker_kind!r} "
                f"has no handler for it after {delivery.delivery_count} deliveries "
                f"(known: {known})",
            )
            return None
        self._running[key] = []
        try:
            return await self._execute(taskdef, assignment, delivery)
        finally:
            await self._answer_twins(key, self._running.pop(key))

    async def _answer_twins(self, key: tuple[UUID, int], twins: list[Delivery]) -> None:
        """Settle redeliveries of a task that arrived while it ran here: with its completion
        (acked once confirmed), or back to the queue when it did not complete (a retry)."""
        reporter = self._reporter
        assert reporter is not None
        for twin in twins:
            done = reporter.batcher.completion(*key)
            if done is not None:
                reporter.batcher.add(done, twin, reply_to=reporter.reply_to(twin))
            else:
                await settle(twin.requeue())

    async def _execute(
        self, taskdef: TaskDef[..., Any], assignment: TaskEvent, delivery: Delivery
    ) -> asyncio.Future[Any] | None:
        reporter, notices = self._reporter, self._notices
        assert reporter is not None
        assert notices is not None
        assert assignment.input is not None
        started_at = utcnow()
        self.stats.started += 1
        try:
            value = self.registry.decode(
                assignment.input,
                taskdef.input_type,
                what=f"input of task {assignment.task_kind!r} ({assignment.id})",
            )
        except SerializationError as exc:
            error = ErrorInfo("InvalidInput", str(exc))
            reporter.fail(assignment, delivery, started_at, error, why="its input is invalid")
            return None
        call = HandlerCall(
            taskdef,
            assignment,
            worker_name=self.name,
            publisher=self.publisher,
            middlewares=self.middlewares,
            pool=self.pool,
        )
        # RUNNING is built only if the task still runs at the threshold
        start = notices.started(assignment, started_at)
        try:
            if self.bus.listeners:
                await reporter.notify(assignment, LifecycleKind.STARTED)
            clock = time.perf_counter()
            try:
                result = await call(value, started_at)
                output = Payload(
                    taskdef.output_codec.content_type, taskdef.output_codec.dump(result)
                )
                check_output_size(output, self.max_payload_bytes, taskdef.task_kind)
            except Exception as exc:
                start.finished()  # before any await below (a retry publishes)
                duration = time.perf_counter() - clock
                error = ErrorInfo.from_exception(exc)
                if isinstance(exc, HandlerTimeout):  # not a TimeoutError the handler raised
                    self.stats.timed_out += 1
                    error = ErrorInfo("TimeoutError", str(exc), error.traceback)
                    if call.abandoned is not None:
                        log.warning(
                            "the handler of task %s (%s) keeps running past its %gs timeout "
                            "(a sync handler's thread, or an async handler that ignored its "
                            "cancellation); it keeps a slot until it returns",
                            assignment.id,
                            assignment.task_kind,
                            taskdef.timeout,
                            extra=reporter.log_fields(assignment),
                        )
                # An output too large would be as large again: never retried.
                if not isinstance(exc, OutputTooLarge) and taskdef.retry.should_retry(
                    exc, assignment.attempt
                ):
                    delay = taskdef.retry.delay(assignment.attempt)
                    await reporter.retry(assignment, delivery, error, delay)
                else:
                    why = (
                        "no retries left"
                        if isinstance(exc, taskdef.retry.retry_on)
                        and taskdef.retry.retries
                        and not isinstance(exc, OutputTooLarge)
                        else "not retryable"
                    )
                    reporter.fail(
                        assignment, delivery, started_at, error, why=why, duration=duration
                    )
                return call.abandoned
            duration = time.perf_counter() - clock
            reporter.complete(assignment, delivery, started_at, output=output, duration=duration)
            return None
        finally:
            start.finished()


def check_output_size(output: Payload, limit: int, task_kind: str) -> None:
    """Refuse an output over ``limit`` bytes (:class:`OutputTooLarge`): it could not travel
    (the broker's message limit) and no store row should hold it."""
    size = len(output.data)
    if size > limit:
        raise OutputTooLarge(
            f"the output of task {task_kind!r} is {size:,} bytes, over the limit of "
            f"{limit:,} bytes (max_payload_bytes)"
        )


def _summary(stats: WorkerStats) -> str:
    return ", ".join(f"{name} {value}" for name, value in stats.as_dict().items() if value)
