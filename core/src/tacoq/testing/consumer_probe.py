"""Feeding a running relay or worker hostile messages, one at a time, and seeing how each ended.

A probe puts one envelope straight into the consumer's queue (``Broker.republish``), predicts
its end from the wire decoder alone, waits until the consumer's counters show that end, and
fails unless the message ended exactly one way, the predicted one:

- a relay (:class:`RelayProbe`) applies it (``deliveries``), dead-letters it
  (``dead_lettered``; its record then appears in the store with a reason) or skips it as an
  unknown kind (``unknown_messages``);
- a worker (:class:`WorkerProbe`) runs it (``started``), dead-letters it (``dead_lettered``:
  malformed, over the payload limit, or of a task kind it has no handler for after its
  redeliveries) or skips it as an unknown kind (``unknown_messages``).

One engine or worker serves many examples, so fuzz tests stay fast; the caller checks between
examples that normal tasks still complete.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import astuple, dataclass, replace
from enum import StrEnum

from tacoq.contracts.broker import RELAY_QUEUE, Broker, worker_queue
from tacoq.contracts.store import DeadLetterRecord, Store
from tacoq.errors import WireFormatError
from tacoq.model.wire import EVENT_ASSIGN, H_ID, Envelope, decode_assignment
from tacoq.relay.engine import RelayEngine
from tacoq.testing.eventually import eventually
from tacoq.testing.records import all_dead_letters
from tacoq.testing.storable import Outcome, classify
from tacoq.worker.runtime import WorkerRuntime

__all__ = [
    "RelayProbe",
    "WorkerOutcome",
    "WorkerProbe",
    "relay_outcome",
    "with_fresh_task_id",
    "worker_outcome",
]

_CANONICAL = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def with_fresh_task_id(envelope: Envelope) -> Envelope:
    """``envelope`` with a valid ``tacoq-id`` replaced by a new one (drawn ids repeat across
    examples; a repeated id would find the row of an earlier example). Nothing else changes,
    so the decoder's verdict is the same."""
    task_id = envelope.headers.get(H_ID)
    if task_id is None or not _CANONICAL.fullmatch(task_id):
        return envelope
    return replace(envelope, headers={**envelope.headers, H_ID: str(uuid.uuid4())})


def relay_outcome(envelope: Envelope, max_payload_bytes: int) -> Outcome:
    """How a relay must end ``envelope``: the decoder's verdict, and an assignment copy over
    the payload limit is dead-lettered."""
    outcome, _ = classify(envelope)
    if envelope.event == EVENT_ASSIGN and len(envelope.body) > max_payload_bytes:
        return Outcome.DEAD_LETTERED
    return outcome


@dataclass(frozen=True)
class _RelayCounts:
    applied: int
    dead_lettered: int
    unknown: int
    recorded: int


class RelayProbe:
    """Feeds a running :class:`RelayEngine` one message at a time through ``broker``."""

    def __init__(self, relay: RelayEngine, broker: Broker, *, timeout: float = 10.0) -> None:
        self.relay = relay
        self.broker = broker
        self.timeout = timeout
        self.seen: dict[Outcome, int] = dict.fromkeys(Outcome, 0)

    def _counts(self) -> _RelayCounts:
        s = self.relay.stats
        return _RelayCounts(
            s.deliveries, s.dead_lettered, s.unknown_messages, s.dead_letters_recorded
        )

    async def feed(self, envelope: Envelope) -> Outcome:
        """Publish ``envelope`` into the relay's queue; return how it ended (as predicted)."""
        envelope = with_fresh_task_id(envelope)
        expected = relay_outcome(envelope, self.relay.max_payload_bytes)
        before = self._counts()
        await self.broker.republish(RELAY_QUEUE, envelope)
        after = await eventually(
            self._settled(before),
            until=lambda counts: counts is not None,
            timeout=self.timeout,
            message=f"the relay ended a message it predicts as {expected}",
        )
        assert after is not None
        moved = [a - b for a, b in zip(astuple(after)[:3], astuple(before)[:3], strict=True)]
        ended = {
            Outcome.APPLIED: moved[0],
            Outcome.DEAD_LETTERED: moved[1],
            Outcome.UNKNOWN: moved[2],
        }
        assert sorted(moved) == [0, 0, 1], f"not ended exactly one way: {ended}; {envelope!r}"
        actual = next(outcome for outcome, step in ended.items() if step)
        assert actual is expected, f"expected {expected}, the relay made it {actual}: {envelope!r}"
        if actual is Outcome.DEAD_LETTERED:
            await self._check_record(envelope)
        self.seen[actual] += 1
        return actual

    def _settled(self, before: _RelayCounts) -> Callable[[], Awaitable[_RelayCounts | None]]:
        async def probe() -> _RelayCounts | None:
            now = self._counts()
            ended = (now.applied, now.dead_lettered, now.unknown) != astuple(before)[:3]
            if not ended or (
                now.dead_lettered > before.dead_lettered and now.recorded == before.recorded
            ):
                return None  # a dead letter counts once it is in the store too
            return now

        return probe

    async def wait_applied(self, since: int, count: int) -> None:
        """Wait until the relay applied ``count`` deliveries more than ``since`` (a
        ``stats.deliveries`` value): traffic the caller caused, such as a normal task's
        assignment copy and completion, so that the next :meth:`feed` counts only its own
        message (a store's waiter may wake before the relay counts what it committed)."""

        async def applied() -> int:
            return self.relay.stats.deliveries

        await eventually(
            applied,
            until=lambda now: now >= since + count,
            timeout=self.timeout,
            message=f"{count} more deliveries applied",
        )

    async def _check_record(self, envelope: Envelope) -> None:
        page = await self.relay.store.list_dead_letters(limit=1)
        assert page.dead_letters, "no dead letter in the store"
        newest = page.dead_letters[0]
        assert newest.origin == RELAY_QUEUE, newest
        assert newest.reason.startswith("relay cannot decode: "), newest.reason
        assert newest.body == envelope.body[: self.relay.max_payload_bytes]


class WorkerOutcome(StrEnum):
    """How a worker ends one message."""

    RAN = "ran"
    DEAD_LETTERED = "dead-lettered"
    UNKNOWN = "unknown"


def worker_outcome(envelope: Envelope, runtime: WorkerRuntime) -> WorkerOutcome:
    """How ``runtime``'s worker must end ``envelope`` delivered once into its queue."""
    outcome, _ = classify(envelope)
    if outcome is Outcome.UNKNOWN:
        return WorkerOutcome.UNKNOWN
    try:
        assignment = decode_assignment(envelope)
    except WireFormatError:
        return WorkerOutcome.DEAD_LETTERED
    if len(envelope.body) > runtime.max_payload_bytes:
        return WorkerOutcome.DEAD_LETTERED
    if assignment.task_kind not in runtime.app.tasks:
        return WorkerOutcome.DEAD_LETTERED  # after its redeliveries (rolling deploys)
    return WorkerOutcome.RAN


class WorkerProbe:
    """Feeds a running :class:`WorkerRuntime` one message at a time through ``broker``;
    ``store`` is a relay's, where the worker's dead letters end up."""

    def __init__(
        self, runtime: WorkerRuntime, broker: Broker, store: Store, *, timeout: float = 10.0
    ) -> None:
        self.runtime = runtime
        self.broker = broker
        self.store = store
        self.timeout = timeout
        self.seen: dict[WorkerOutcome, int] = dict.fromkeys(WorkerOutcome, 0)
        self._records = 0

    def _counts(self) -> tuple[int, int, int]:
        s = self.runtime.stats
        return (s.started, s.dead_lettered, s.unknown_messages)

    async def feed(self, envelope: Envelope) -> WorkerOutcome:
        """Publish ``envelope`` into the worker's queue; return how it ended (as predicted)."""
        envelope = with_fresh_task_id(envelope)
        expected = worker_outcome(envelope, self.runtime)
        before = self._counts()
        queue = worker_queue(self.runtime.app.worker_kind)
        await self.broker.republish(queue, envelope)

        async def counts() -> tuple[int, int, int]:
            return self._counts()

        after = await eventually(
            counts,
            until=lambda now: now != before,
            timeout=self.timeout,
            message=f"the worker ended a message it predicts as {expected}",
        )
        moved = [a - b for a, b in zip(after, before, strict=True)]
        ended = dict(zip(WorkerOutcome, moved, strict=True))
        assert sorted(moved) == [0, 0, 1], f"not ended exactly one way: {ended}; {envelope!r}"
        actual = next(outcome for outcome, step in ended.items() if step)
        assert actual is expected, f"expected {expected}, the worker made it {actual}: {envelope!r}"
        if actual is WorkerOutcome.DEAD_LETTERED:
            self._records += 1
            await self._check_records()
        self.seen[actual] += 1
        return actual

    async def _check_records(self) -> None:
        """Every dead letter of the worker is in the store, each with a reason."""
        origin = worker_queue(self.runtime.app.worker_kind)

        async def mine() -> list[DeadLetterRecord]:
            return [r for r in await all_dead_letters(self.store) if r.origin == origin]

        found = await eventually(
            mine,
            until=lambda records: len(records) >= self._records,
            timeout=self.timeout,
            message=f"{self._records} dead letters of the worker in the store",
        )
        assert len(found) == self._records, found
        assert all(record.reason for record in found)
