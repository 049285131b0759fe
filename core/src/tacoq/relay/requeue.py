"""Requeueing a dead letter: back into the queue it came from, once, with a fresh count.

The store owns dead letters; the relay requeues one by publishing its message straight into its
origin queue (``relay`` or ``worker:<kind>``, no routing, so nothing else gets a copy) without
the broker's delivery count, so it is delivered as new. The message keeps its dead-letter id and
carries how many times it has been requeued (``tacoq-requeues``): dead-lettered again, it lands
on the same record with its count grown. The record is removed once the broker confirmed the
publish, and only while its count is unchanged, so a copy dead-lettered again meanwhile is kept.

A requeued *assignment* (one that decodes) runs its task again as its next attempt
(``tacoq-attempt`` + 1), as a retry would: a worker that already completed the old attempt (and
remembers it, to answer a redelivery) runs it instead of answering from memory. A task whose
record was completed as ``DeadLettered`` is set back to ``PENDING`` first (its row replaced by
the new attempt's assignment), since the merge rule keeps a first completion forever and the
new run's outcome would otherwise be counted and dropped.
"""

from __future__ import annotations

from dataclasses import replace
from uuid import UUID

from tacoq.contracts.broker import RELAY_QUEUE, Broker, worker_kind_of
from tacoq.contracts.store import DeadLetterRecord, Store
from tacoq.errors import DeadLetterNotFound, RequeueRefused, WireFormatError
from tacoq.model.wire import (
    EVENT_ASSIGN,
    H_ATTEMPT,
    H_DEAD_LETTER_ID,
    H_EVENT,
    H_PRIORITY,
    H_REQUEUES,
    MAX_ATTEMPT,
    Envelope,
    decode_assignment,
)
from tacoq.relay.dead_letters import DEAD_LETTERED

__all__ = ["requeue_dead_letter"]


async def requeue_dead_letter(
    store: Store, broker: Broker, letter_id: UUID, *, count: int | None = None
) -> DeadLetterRecord:
    """Requeue the dead letter ``letter_id`` (see the module doc); the record requeued.

    With ``count``, only while the record's count is that (the caller saw that record).
    Raises :class:`DeadLetterNotFound` and :class:`RequeueRefused`.
    """
    record = await store.get_dead_letter(letter_id)
    if record is None:
        raise DeadLetterNotFound(f"dead letter {letter_id} is not in the store")
    if count is not None and record.count != count:
        raise RequeueRefused(
            f"dead letter {letter_id} was dead-lettered again since (count {record.count}, "
            f"not {count}); read it again before requeueing"
        )
    if not record.body_complete:
        raise RequeueRefused(
            f"dead letter {letter_id} cannot be requeued: only {len(record.body):,} of its "
            f"{record.body_size:,} bytes were kept"
        )
    if record.origin != RELAY_QUEUE and worker_kind_of(record.origin) is None:
        raise RequeueRefused(
            f"dead letter {letter_id} cannot be requeued: it came from no known queue "
            f"(origin {record.origin!r})"
        )
    headers = {
        **record.headers,
        H_DEAD_LETTER_ID: str(record.id),
        H_REQUEUES: str(record.count),
    }
    envelope = Envelope(headers, record.content_type, record.body)
    if record.headers.get(H_EVENT) == EVENT_ASSIGN:
        envelope = await _next_attempt(store, envelope)
    await broker.republish(record.origin, envelope, priority=_priority(record))
    await store.remove_dead_letter(record.id, count=record.count)
    return record


async def _next_attempt(store: Store, envelope: Envelope) -> Envelope:
    """The assignment's next attempt, with its task reopened in the store (see the module doc);
    a malformed assignment is returned unchanged (it will be dead-lettered again)."""
    try:
        assignment = decode_assignment(envelope)
    except WireFormatError:
        return envelope
    if assignment.attempt >= MAX_ATTEMPT:
        raise RequeueRefused(f"task {assignment.id} is at its last attempt ({MAX_ATTEMPT})")
    assignment = replace(assignment, attempt=assignment.attempt + 1)
    row = await store.get(assignment.id)
    if row is not None and row.is_completed and row.error and row.error.type == DEAD_LETTERED:
        await store.delete(assignment.id)
    await store.apply_batch([assignment])
    headers = {**envelope.headers, H_ATTEMPT: str(assignment.attempt)}
    return Envelope(headers, envelope.content_type, envelope.body)


def _priority(record: DeadLetterRecord) -> int:
    text = record.headers.get(H_PRIORITY, "")
    return int(text) if text.isdigit() and len(text) <= 3 and int(text) <= 255 else 0
