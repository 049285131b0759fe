"""The one relay engine (docs/architecture.md, "4. Relay"): broker updates in, store batches out.

It takes the first waiting delivery, then everything else already received (up to
``batch_size``), and flushes at once: a batch is flushed when it is full or when nothing more is
waiting, so a lone update is never delayed, and under load batches grow by themselves while the
previous one commits. The one exception: a batch of nothing but assignment copies waits up to
``assignment_linger`` (5 ms) for more, so a fast task's completion usually shares its
assignment's transaction instead of queueing behind it (a waiter sees the completion sooner, a
PENDING row appears up to that much later); an update ends the wait at once. One store
transaction per batch, then one ack for the batch. When the
store is unavailable it stops acking, backs off and retries the same batch; nothing is lost and,
because applying a batch is idempotent, nothing is doubled. Messages it cannot decode are
dead-lettered with the reason; a message of a kind this TacoQ does not know (a newer sender's)
is acknowledged and counted; nothing one message does stops the relay (:mod:`tacoq.guard`).

It also consumes the namespace's dead-letter queue into the store, which owns dead letters
(:mod:`tacoq.relay.dead_letters`): each becomes a record, and the task it names, when nobody
reported its completion, is completed as ``DeadLettered``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from tacoq.config import resolve_broker_url, resolve_namespace, resolve_store_url
from tacoq.contracts.broker import (
    CONTROL_QUEUE,
    DEAD_LETTER_QUEUE,
    RELAY_QUEUE,
    Broker,
    Consumer,
    DeadLetter,
    Delivery,
)
from tacoq.contracts.lifecycle import LifecycleEvent, LifecycleKind
from tacoq.contracts.store import BatchResult, DeadLetterRecord, Store
from tacoq.errors import UnknownMessageKind, WireFormatError
from tacoq.guard import describe_failure, is_outage, note_unknown_kind, set_aside
from tacoq.logfields import task_fields
from tacoq.model.task import TaskEvent, utcnow
from tacoq.model.wire import EVENT_ASSIGN, decode
from tacoq.plugins import PluginHost, get_plugin_host
from tacoq.relay.cleanup import CleanupJob
from tacoq.relay.control import ControlIntake
from tacoq.relay.dead_letters import completion_of, record_of
from tacoq.serialization import DEFAULT_MAX_PAYLOAD_BYTES

__all__ = ["RelayEngine", "RelayStats"]

log = logging.getLogger("tacoq.relay")
T = TypeVar("T")

DEFAULT_BATCH_SIZE = 1000
#: Upper bound (seconds) on gathering one batch; a batch never waits to fill.
DEFAULT_MAX_BATCH_WAIT = 0.05
#: How long (seconds) a batch of nothing but assignment copies waits for more deliveries.
DEFAULT_ASSIGNMENT_LINGER = 0.005
#: Most dead letters taken into the store in one go (they are rare; a flood is bounded).
DEAD_LETTER_BATCH = 100


@dataclass(slots=True)
class RelayStats:
    """Counters since the engine started."""

    batches: int = 0
    deliveries: int = 0
    events: int = 0
    dead_lettered: int = 0
    duplicate_completions: int = 0
    conflicting_completions: int = 0
    store_errors: int = 0
    cleaned: int = 0
    #: Messages of a kind this TacoQ does not know (a newer sender's), acked and skipped.
    unknown_messages: int = 0
    #: Dead letters taken from the dead-letter queue into the store.
    dead_letters_recorded: int = 0
    #: Tasks this relay completed as ``DeadLettered`` because their message was dead-lettered.
    dead_letter_completions: int = 0


class RelayEngine:
    """Consumes the relay queue into the store, and runs the cleanup job.

    ``broker`` and ``store`` are URLs (resolved like everywhere: argument > environment >
    default) or already-made objects. ``run(stop)`` serves until ``stop`` is set. ``plugins``
    makes them from URLs and receives the lifecycle events (default: the process's plugin host).
    """

    def __init__(
        self,
        broker: str | Broker | None = None,
        store: str | Store | None = None,
        *,
        namespace: str | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        prefetch: int | None = None,
        max_batch_wait: float = DEFAULT_MAX_BATCH_WAIT,
        assignment_linger: float = DEFAULT_ASSIGNMENT_LINGER,
        max_backoff: float = 5.0,
        consume: bool = True,
        cleanup: bool = True,
        cleanup_interval: float = 60.0,
        cleanup_batch: int = 1000,
        clock: Callable[[], datetime] = utcnow,
        max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
        plugins: PluginHost | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        if not max_batch_wait >= 0:
            raise ValueError("max_batch_wait must be a number of seconds >= 0")
        if not assignment_linger >= 0:
            raise ValueError("assignment_linger must be a number of seconds >= 0")
        ns = resolve_namespace(namespace)
        host = plugins or get_plugin_host()
        self.broker = (
            broker
            if isinstance(broker, Broker)
            else host.create_broker(resolve_broker_url(broker), namespace=ns)
        )
        self.store = (
            store
            if isinstance(store, Store)
            else host.create_store(resolve_store_url(store), namespace=ns)
        )
        self.batch_size = batch_size
        self.prefetch = prefetch or 2 * batch_size
        # An upper bound only: the engine never waits for a batch to fill (it flushes as soon
        # as nothing more is waiting); this caps a gather that keeps finding deliveries.
        self.max_batch_wait = max_batch_wait
        self.assignment_linger = assignment_linger
        self.max_backoff = max_backoff
        #: Assignment copies with a larger input are dead-lettered (publishers refuse them).
        self.max_payload_bytes = max_payload_bytes
        self.consume_enabled = consume
        self.cleanup = (
            CleanupJob(self.store, interval=cleanup_interval, limit=cleanup_batch, clock=clock)
            if cleanup
            else None
        )
        self.stats = RelayStats()
        self.bus = host.bus
        self.ready = asyncio.Event()
        self.clock = clock
        self._unknown_kinds: set[str] = set()
        #: Workers' announcements, heartbeats and goodbyes into the store (docs/workers.md).
        self.control = ControlIntake(self.store, clock=clock, retrying=self._retrying)

    async def run(self, stop: asyncio.Event) -> None:
        """Connect, consume and clean up until ``stop`` is set; then close connections."""
        await self.store.connect()
        try:
            if self.consume_enabled:
                await self.broker.connect()
            jobs = []
            if self.cleanup is not None:
                jobs.append(asyncio.create_task(self.cleanup.run(stop), name="tacoq-cleanup"))
            try:
                if self.consume_enabled:
                    consumer = await self.broker.consume(RELAY_QUEUE, prefetch=self.prefetch)
                    dead = await self.broker.consume(
                        DEAD_LETTER_QUEUE, prefetch=2 * DEAD_LETTER_BATCH
                    )
                    jobs.append(
                        asyncio.create_task(self._take_dead_letters(dead, stop), name="tacoq-dlq")
                    )
                    control = None
                    if self.broker.supports_control:
                        control = await self.broker.consume(CONTROL_QUEUE, prefetch=100)
                        jobs.append(
                            asyncio.create_task(
                                self.control.run(control, stop), name="tacoq-control"
                            )
                        )
                    self.ready.set()
                    try:
                        await self._consume(consumer, stop)
                    finally:
                        await consumer.close()
                        await dead.close()
                        if control is not None:
                            await control.close()
                else:
                    self.ready.set()
                    await stop.wait()
            finally:
                for job in jobs:
                    job.cancel()
                await asyncio.gather(*jobs, return_exceptions=True)
        finally:
            if self.consume_enabled:
                await self.broker.close()
            await self.store.close()

    async def _consume(self, consumer: Consumer, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        stopping: asyncio.Future[Any] = asyncio.ensure_future(stop.wait())
        getting: asyncio.Future[Any] = asyncio.ensure_future(consumer.get())
        try:
            while True:
                await asyncio.wait({getting, stopping}, return_when=asyncio.FIRST_COMPLETED)
                if not getting.done():
                    return
                batch = [getting.result()]
                flush_by = loop.time() + self.max_batch_wait
                self._take_waiting(consumer, batch, flush_by)
                if self.assignment_linger > 0 and _only_assignments(batch):
                    await self._linger(consumer, batch, stop, flush_by)
                await self._process(consumer, batch, stop)
                if stop.is_set():
                    return
                getting = asyncio.ensure_future(consumer.get())
        finally:
            for future in (stopping, getting):
                future.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.gather(stopping, getting, return_exceptions=True)

    def _take_waiting(self, consumer: Consumer, batch: list[Delivery], flush_by: float) -> None:
        """Add the deliveries already received, until the batch is full or ``flush_by``."""
        loop = asyncio.get_running_loop()
        while len(batch) < self.batch_size and (more := consumer.get_nowait()) is not None:
            batch.append(more)
            if loop.time() >= flush_by:
                return

    async def _linger(
        self, consumer: Consumer, batch: list[Delivery], stop: asyncio.Event, flush_by: float
    ) -> None:
        """Add deliveries to an all-assignments batch until an update arrives, the batch is
        full, ``assignment_linger`` has passed, or the relay stops."""
        loop = asyncio.get_running_loop()
        until = loop.time() + self.assignment_linger
        while len(batch) < self.batch_size and not stop.is_set():
            more = consumer.get_nowait()
            if more is None:
                remaining = until - loop.time()
                if remaining <= 0:
                    return
                try:
                    more = await asyncio.wait_for(consumer.get(), remaining)
                except TimeoutError:
                    return
            batch.append(more)
            if more.envelope.event != EVENT_ASSIGN:
                self._take_waiting(consumer, batch, flush_by)
                return

    async def _process(
        self, consumer: Consumer, batch: Sequence[Delivery], stop: asyncio.Event
    ) -> None:
        decoded: list[tuple[Delivery, list[TaskEvent]]] = []
        for delivery in batch:
            try:
                decoded.append((delivery, self._decode(delivery)))
            except UnknownMessageKind as exc:
                await self._skip_unknown(delivery, exc.kind)
            except WireFormatError as exc:
                log.warning("dead-lettering an undecodable message: %s", exc)
                await self._set_aside(delivery, f"relay cannot decode: {exc}")
            except Exception as exc:  # the last-resort guard: no message may stop the relay
                log.exception("decoding a message failed unexpectedly; dead-lettering it")
                await self._set_aside(delivery, f"relay cannot decode: {describe_failure(exc)}")
        if not decoded:
            return
        try:
            await self._commit(consumer, decoded, stop)
        except Exception:
            # Not an outage (those are retried inside): the store refused something in this
            # batch. Apply message by message so only the culprit is set aside, instead of
            # redelivering the whole batch forever.
            log.exception("the store refused a batch of %d messages; isolating", len(decoded))
            for item in decoded:
                try:
                    await self._commit(consumer, [item], stop)
                except Exception as exc:
                    await self._set_aside(item[0], f"store refused: {describe_failure(exc)}")

    def _decode(self, delivery: Delivery) -> list[TaskEvent]:
        """The events of one delivery (raises for a message the relay must not apply)."""
        envelope = delivery.envelope
        if envelope.event == EVENT_ASSIGN and len(envelope.body) > self.max_payload_bytes:
            raise WireFormatError(
                f"assignment input of {len(envelope.body):,} bytes is over the limit of "
                f"{self.max_payload_bytes:,} bytes (max_payload_bytes)"
            )
        return decode(envelope)

    async def _set_aside(self, delivery: Delivery, reason: str) -> None:
        if await set_aside(delivery, reason, log) == "dead-lettered":
            self.stats.dead_lettered += 1

    async def _skip_unknown(self, delivery: Delivery, kind: str) -> None:
        """Ack a message of a kind this relay does not know; count it, log once per kind."""
        self.stats.unknown_messages += 1
        note_unknown_kind(kind, self._unknown_kinds, log)
        await delivery.ack()

    async def _commit(
        self,
        consumer: Consumer,
        decoded: Sequence[tuple[Delivery, list[TaskEvent]]],
        stop: asyncio.Event,
    ) -> None:
        """Apply the events of these deliveries in one batch, then ack them, then notify."""
        events = [event for _, events in decoded for event in events]
        result = await self._apply(events, stop)
        if result is None:  # stopping while the store is down: leave them unacked
            return
        self._count(result, len(decoded), len(events))
        await consumer.ack_many([delivery for delivery, _ in decoded])
        if self.bus.listeners:
            await self._notify(result)

    async def apply(self, events: Sequence[TaskEvent]) -> BatchResult:
        """Apply events to the store directly (the REST publish path uses this)."""
        return await self.store.apply_batch(events)

    async def _apply(self, events: Sequence[TaskEvent], stop: asyncio.Event) -> BatchResult | None:
        return await self._retrying(
            lambda: self.store.apply_batch(events), stop, f"holding {len(events)} events"
        )

    async def _retrying(
        self, call: Callable[[], Awaitable[T]], stop: asyncio.Event, holding: str
    ) -> T | None:
        """``call()``, retried with backoff while it fails with an outage (the store being
        unreachable, above all); ``None`` when the relay stops meanwhile."""
        backoff = 0.05
        while True:
            try:
                return await call()
            except Exception as exc:
                if not is_outage(exc):
                    raise
                self.stats.store_errors += 1
                log.warning("store unavailable (%s); %s, retrying in %.2fs", exc, holding, backoff)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), backoff)
                if stop.is_set():
                    return None
                backoff = min(backoff * 2, self.max_backoff)

    # -- dead letters ------------------------------------------------------------------------

    async def _take_dead_letters(self, consumer: Consumer, stop: asyncio.Event) -> None:
        """Consume the dead-letter queue into the store until ``stop`` is set."""
        stopping = asyncio.ensure_future(stop.wait())
        try:
            while True:
                getting = asyncio.ensure_future(consumer.get())
                await asyncio.wait({getting, stopping}, return_when=asyncio.FIRST_COMPLETED)
                if not getting.done():
                    getting.cancel()
                    await asyncio.gather(getting, return_exceptions=True)
                    return
                batch = [getting.result()]
                while len(batch) < DEAD_LETTER_BATCH and (more := consumer.get_nowait()):
                    batch.append(more)
                try:
                    await self._record_dead_letters(consumer, batch, stop)
                except Exception:  # the last resort: a dead letter must not stop the relay
                    log.exception("recording %d dead letters failed; they are dropped", len(batch))
                    await consumer.ack_many(batch)
                if stop.is_set():
                    return
        finally:
            stopping.cancel()
            await asyncio.gather(stopping, return_exceptions=True)

    async def _record_dead_letters(
        self, consumer: Consumer, batch: Sequence[Delivery], stop: asyncio.Event
    ) -> None:
        """Record a batch of dead letters, complete the tasks they name, then ack them."""
        now = self.clock()
        letters = [d.dead_lettered or DeadLetter("", "", d.envelope) for d in batch]
        records = [record_of(x, now, body_limit=self.max_payload_bytes) for x in letters]

        async def store_them() -> bool:
            await self.store.record_dead_letters(records)
            return True

        if not await self._retrying(store_them, stop, f"holding {len(records)} dead letters"):
            return  # stopping: they stay in the dead-letter queue
        self.stats.dead_letters_recorded += len(records)
        completed = 0
        done: set[Any] = set()
        for record, letter in zip(records, letters, strict=True):
            if record.task_id is None or letter.task_completed or record.task_id in done:
                continue
            done.add(record.task_id)
            try:
                completed += await self._complete_dead_lettered(record, letter, now, stop)
            except Exception:  # the store refused: the record is kept, the task left as it is
                log.exception(
                    "could not complete task %s as DeadLettered",
                    record.task_id,
                    extra=task_fields(record.task_id),
                )
            if stop.is_set():
                return
        await consumer.ack_many(batch)
        log.info(
            "recorded %d dead letter(s) in the store; %d task(s) completed as DeadLettered",
            len(records),
            completed,
        )

    async def _complete_dead_lettered(
        self, record: DeadLetterRecord, letter: DeadLetter, now: datetime, stop: asyncio.Event
    ) -> int:
        """Complete the task a dead letter names, unless it is done; how many were completed."""
        task_id = record.task_id
        assert task_id is not None
        row = await self._retrying(lambda: self.store.get(task_id), stop, "reading a task")
        event = completion_of(record, letter, row, now)
        if event is None or stop.is_set():
            return 0
        result = await self._apply([event], stop)
        if result is None:
            return 0
        self.stats.dead_letter_completions += len(result.completed)
        if self.bus.listeners:
            await self._notify(result)
        return len(result.completed)

    def _count(self, result: BatchResult, deliveries: int, events: int) -> None:
        stats = self.stats
        stats.batches += 1
        stats.deliveries += deliveries
        stats.events += events
        stats.duplicate_completions += result.counts.duplicate_completions
        stats.conflicting_completions += result.counts.conflicting_completions

    async def _notify(self, result: BatchResult) -> None:
        for task_id in result.completed:  # the bus logs a failing listener; acks go on
            pending = self.bus.emit(LifecycleEvent(LifecycleKind.STORED, task_id, "", ""))
            if pending is not None:
                await pending


def _only_assignments(batch: Sequence[Delivery]) -> bool:
    return all(delivery.envelope.event == EVENT_ASSIGN for delivery in batch)
