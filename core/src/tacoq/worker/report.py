"""What a worker tells the world about a task: its events, its lifecycle notifications, counters.

:class:`TaskReporter` turns an attempt's outcome into the events the relay folds (``RUNNING``,
``COMPLETED``, a retry's new assignment, a dead-letter's ``COMPLETED``) and into the lifecycle
notifications metrics and tracing plugins listen to. :class:`WorkerStats` counts what happened.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from dataclasses import asdict, dataclass, replace
from datetime import datetime

from tacoq.bus import EventBus
from tacoq.contracts.broker import Broker, Delivery
from tacoq.contracts.lifecycle import LifecycleEvent, LifecycleKind
from tacoq.errors import WireFormatError
from tacoq.logfields import task_fields
from tacoq.model.task import ErrorInfo, Payload, Phase, TaskEvent, utcnow
from tacoq.model.wire import H_REPLY_TO, encode_assignment, reply_address
from tacoq.worker.updates import UpdateBatcher

__all__ = [
    "RunningNotices",
    "TaskReporter",
    "WorkerStats",
    "lifecycle_event",
    "progress_event",
]

log = logging.getLogger("tacoq.worker")


@dataclass(slots=True)
class WorkerStats:
    """Counters of one worker runtime (``WorkerRuntime.stats``)."""

    #: Handlers started (every attempt counts).
    started: int = 0
    #: Attempts that completed the task successfully.
    succeeded: int = 0
    #: Attempts that completed the task with an error (timeouts and invalid input included).
    failed: int = 0
    #: Failed attempts that were retried (a new assignment was published).
    retried: int = 0
    #: Attempts cut off at their task's timeout (async cancelled, sync abandoned).
    timed_out: int = 0
    #: Timed-out handlers still running (each holds a slot): sync handlers' threads, and async
    #: handlers that ignored their cancellation.
    sync_timed_out_running: int = 0
    #: Timed-out handlers that have since returned (their result was discarded).
    sync_timed_out_returned: int = 0
    #: Assignments dead-lettered (unknown kind, too many deliveries, malformed).
    dead_lettered: int = 0
    #: Deliveries of unknown task kinds handed back to the queue (rolling deploys).
    unknown_kind_requeued: int = 0
    #: Held deliveries handed back, unstarted, when the worker stopped.
    requeued_on_shutdown: int = 0
    #: Running tasks left unacknowledged (redelivered later) when the grace period ran out.
    abandoned_on_shutdown: int = 0
    #: Messages of a kind this TacoQ does not know (a newer sender's), acked and skipped.
    unknown_messages: int = 0

    def as_dict(self) -> dict[str, int]:
        """The counters as a plain dict."""
        return asdict(self)


def progress_event(
    assignment: TaskEvent, phase: Phase, worker: str, started_at: datetime | None
) -> TaskEvent:
    """A ``RUNNING`` or ``COMPLETED`` event of ``assignment``'s attempt, run by ``worker``."""
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


def lifecycle_event(
    assignment: TaskEvent,
    kind: LifecycleKind,
    duration: float | None = None,
    error: ErrorInfo | None = None,
) -> LifecycleEvent:
    """The lifecycle event ``kind`` of ``assignment``'s attempt (``error``: how it failed)."""
    return LifecycleEvent(
        kind,
        assignment.id,
        assignment.task_kind,
        assignment.worker_kind,
        assignment.attempt,
        duration,
        None if error is None else error.type,
        error is not None,
    )


class TaskReporter:
    """Sends one worker's task events and emits its lifecycle events on the event bus."""

    def __init__(
        self,
        broker: Broker,
        batcher: UpdateBatcher,
        bus: EventBus,
        worker_name: str,
        stats: WorkerStats,
    ) -> None:
        self.broker = broker
        self.batcher = batcher
        self.bus = bus
        self.worker_name = worker_name
        self.stats = stats
        self._notes: set[asyncio.Future[None]] = set()

    def complete(
        self,
        assignment: TaskEvent,
        delivery: Delivery,
        started_at: datetime,
        *,
        output: Payload | None = None,
        error: ErrorInfo | None = None,
        duration: float | None = None,
    ) -> None:
        """Queue the attempt's ``COMPLETED``; ``delivery`` is acked once it is confirmed."""
        event = TaskEvent(  # built directly, not with replace(): once per task
            id=assignment.id,
            attempt=assignment.attempt,
            phase=Phase.COMPLETED,
            task_kind=assignment.task_kind,
            worker_kind=assignment.worker_kind,
            ttl=assignment.ttl,
            priority=assignment.priority,
            executed_by=self.worker_name,
            started_at=started_at,
            completed_at=utcnow(),
            is_error=error is not None,
            output=output,
            error=error,
        )
        self.batcher.add(event, delivery, reply_to=self.reply_to(delivery))
        if error is None:
            self.stats.succeeded += 1
        else:
            self.stats.failed += 1
        if self.bus.listeners:
            kind = LifecycleKind.FAILED if error is not None else LifecycleKind.SUCCEEDED
            pending = self.bus.emit(lifecycle_event(assignment, kind, duration, error))
            if pending is not None:
                note = asyncio.ensure_future(pending)
                self._notes.add(note)
                note.add_done_callback(self._notes.discard)

    def fail(
        self,
        assignment: TaskEvent,
        delivery: Delivery,
        started_at: datetime,
        error: ErrorInfo,
        *,
        why: str,
        duration: float | None = None,
    ) -> None:
        """The attempt's final failure (``why``: no retries left, not retryable, ...): logged
        once with kind, id, attempt and error type, then completed like :meth:`complete`."""
        log.warning(
            "task %s (%s) attempt %d failed for good with %s: %s; %s",
            assignment.id,
            assignment.task_kind,
            assignment.attempt,
            error.type,
            error.message[:200],
            why,
            extra=self.log_fields(assignment),
        )
        self.complete(assignment, delivery, started_at, error=error, duration=duration)

    async def retry(
        self, assignment: TaskEvent, delivery: Delivery, error: ErrorInfo, delay: float
    ) -> None:
        """Publish attempt ``n + 1`` after ``delay`` seconds, then ack attempt ``n``.

        Attempt ``n``'s error reaches the row through a retry notice (an ASSIGNED event with the
        error, in the updates stream); the merge rule shows it while the retry waits.
        """
        log.info(
            "task %s (%s) attempt %d failed with %s: %s; attempt %d in %.2fs",
            assignment.id,
            assignment.task_kind,
            assignment.attempt,
            error.type,
            error.message[:200],
            assignment.attempt + 1,
            delay,
            extra=self.log_fields(assignment),
        )
        retry = replace(assignment, attempt=assignment.attempt + 1, error=error)
        message = encode_assignment(retry, reply_to=self.reply_to(delivery))
        await self.broker.publish(message, priority=retry.priority, delay=delay)
        # The assign message carries the input, not the error: a retry notice in the updates
        # stream shows attempt n's error on the row while attempt n+1 waits.
        self.batcher.add(replace(retry, input=None, created_at=None))
        await delivery.ack()
        self.stats.retried += 1
        await self.notify(assignment, LifecycleKind.RETRYING, error=error)

    async def dead_letter(self, assignment: TaskEvent, delivery: Delivery, reason: str) -> None:
        """Complete the task with a ``DeadLettered`` error (confirmed), then dead-letter it."""
        error = ErrorInfo("DeadLettered", reason)
        now = utcnow()
        event = replace(
            progress_event(assignment, Phase.COMPLETED, self.worker_name, now),
            completed_at=now,
            is_error=True,
            error=error,
        )
        self.batcher.add(event, reply_to=self.reply_to(delivery))
        await self.batcher.drain()
        await delivery.dead_letter(reason, task_completed=True)
        self.stats.dead_lettered += 1
        log.warning(
            "dead-lettered task %s: %s", assignment.id, reason, extra=self.log_fields(assignment)
        )
        await self.notify(assignment, LifecycleKind.DEAD_LETTERED, error=error)

    def log_fields(self, assignment: TaskEvent) -> dict[str, str | int]:
        """The ``extra`` of a log record about ``assignment``'s attempt on this worker."""
        return task_fields(
            assignment.id, assignment.task_kind, assignment.attempt, self.worker_name
        )

    def report_running(self, assignment: TaskEvent, started_at: datetime) -> None:
        """Queue the attempt's ``RUNNING`` (:class:`RunningNotices` calls this once a task ran
        long enough)."""
        self.batcher.add(progress_event(assignment, Phase.RUNNING, self.worker_name, started_at))

    def reply_to(self, delivery: Delivery) -> str | None:
        """The reply address an assignment carries, if the broker can reply to it.

        A malformed address is logged and ignored: the task still runs, only unanswered.
        """
        if H_REPLY_TO not in delivery.envelope.headers or not self.broker.supports_replies:
            return None
        try:
            return reply_address(delivery.envelope)
        except WireFormatError as exc:
            log.warning("not replying to a malformed reply address: %s", exc)
            return None

    async def notify(
        self,
        assignment: TaskEvent,
        kind: LifecycleKind,
        *,
        duration: float | None = None,
        error: ErrorInfo | None = None,
    ) -> None:
        """Emit ``kind`` for ``assignment`` on the bus and wait for the async listeners."""
        if self.bus.listeners:
            pending = self.bus.emit(lifecycle_event(assignment, kind, duration, error))
            if pending is not None:
                await pending


class _Start:
    """One attempt a :class:`RunningNotices` watches; ``running`` is cleared when it ends."""

    __slots__ = ("assignment", "deadline", "running", "started_at")

    def __init__(self, deadline: float, assignment: TaskEvent, started_at: datetime) -> None:
        self.deadline = deadline
        self.assignment = assignment
        self.started_at = started_at
        self.running = True

    def finished(self) -> None:
        """The handler returned (or failed): no ``RUNNING`` for this attempt from now on."""
        self.running = False


class RunningNotices:
    """Sends ``RUNNING`` for the attempts still running ``threshold`` seconds after they
    started, with one timer for all of them.

    Starts arrive in time order, so a queue of them is sorted by deadline. The timer wakes at
    the head's deadline (at most once per ``tick``), reports the attempts that are still
    running and drops the finished ones. A busy worker finishes almost every task within the
    threshold; a timer per task would cost it a heap push and a cancel for each of them.
    ``RUNNING`` goes out between ``threshold`` and ``threshold + tick`` after the start.
    """

    def __init__(self, reporter: TaskReporter, threshold: float, tick: float) -> None:
        self.reporter = reporter
        self.threshold = threshold
        self.tick = tick
        self._starts: deque[_Start] = deque()
        self._timer: asyncio.TimerHandle | None = None

    def started(self, assignment: TaskEvent, started_at: datetime) -> _Start:
        """Watch an attempt that starts now; call ``finished()`` on the result when it ends."""
        loop = asyncio.get_running_loop()
        start = _Start(loop.time() + self.threshold, assignment, started_at)
        self._starts.append(start)
        if self._timer is None:
            self._timer = loop.call_at(start.deadline, self._due, loop)
        return start

    def _due(self, loop: asyncio.AbstractEventLoop) -> None:
        self._timer = None
        starts = self._starts
        now = loop.time()
        while starts and (starts[0].deadline <= now or not starts[0].running):
            start = starts.popleft()
            if start.running:
                start.finished()
                self.reporter.report_running(start.assignment, start.started_at)
        if starts:
            self._timer = loop.call_at(max(starts[0].deadline, now + self.tick), self._due, loop)

    def close(self) -> None:
        """Stop watching: nothing more is reported."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._starts.clear()
