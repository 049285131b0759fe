"""What a relay keeps of any message must be storable: checks for fuzz tests against real stores.

:func:`store_message` does with one envelope what the relay does: applies its events, or keeps
the dead-letter record of a malformed message (a well-formed message of an unknown kind leaves
nothing). Then it reads what was stored back and checks that every text field is UTF-8, so a
page, a JSON answer or another store can hold it. Any exception other than the wire decoder's
:class:`~tacoq.errors.WireFormatError` fails the caller's test.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from enum import StrEnum

from tacoq.contracts.broker import RELAY_QUEUE, DeadLetter
from tacoq.contracts.store import DeadLetterRecord, Store
from tacoq.errors import UnknownMessageKind, WireFormatError
from tacoq.model.task import Task, TaskEvent, utcnow
from tacoq.model.wire import Envelope, decode
from tacoq.relay.dead_letters import record_of
from tacoq.serialization import DEFAULT_MAX_PAYLOAD_BYTES

__all__ = ["Outcome", "assert_utf8", "classify", "store_message"]


class Outcome(StrEnum):
    """How a relay ends one message."""

    APPLIED = "applied"
    DEAD_LETTERED = "dead-lettered"
    UNKNOWN = "unknown"


def classify(envelope: Envelope) -> tuple[Outcome, list[TaskEvent] | WireFormatError]:
    """The wire decoder's verdict on ``envelope``: its events, or the error it raised.

    Raises whatever the decoder raises besides :class:`WireFormatError` (a decoder bug).
    """
    try:
        events = decode(envelope)
    except UnknownMessageKind as exc:
        return Outcome.UNKNOWN, exc
    except WireFormatError as exc:
        return Outcome.DEAD_LETTERED, exc
    if not isinstance(events, list) or not events:
        raise AssertionError(f"decode returned {events!r}, not a non-empty list of events")
    for event in events:
        if not isinstance(event, TaskEvent):
            raise AssertionError(f"decode returned {event!r}, not a TaskEvent")
    return Outcome.APPLIED, events


async def store_message(
    store: Store, envelope: Envelope, *, origin: str = RELAY_QUEUE, now: datetime | None = None
) -> Outcome:
    """Store what a relay keeps of ``envelope`` in ``store``, read it back and check its text.

    Events are applied in one batch and every row they touch is read back; a malformed
    message's dead-letter record (as :func:`~tacoq.relay.dead_letters.record_of` makes it) is
    recorded and read back.
    """
    outcome, result = classify(envelope)
    if outcome is Outcome.UNKNOWN:
        return outcome
    if outcome is Outcome.DEAD_LETTERED:
        letter = DeadLetter(origin, f"relay cannot decode: {result}", envelope)
        record = record_of(letter, now or utcnow(), body_limit=DEFAULT_MAX_PAYLOAD_BYTES)
        await store.record_dead_letters([record])
        back = await store.get_dead_letter(record.id)
        assert back is not None, f"dead letter {record.id} was not stored"
        assert back.reason, "a dead letter without a reason"
        assert back.body == envelope.body[:DEFAULT_MAX_PAYLOAD_BYTES]
        assert_utf8(_record_texts(back), what=f"dead letter {record.id}")
        return outcome
    assert isinstance(result, list)
    await store.apply_batch(result)
    for event in result:
        row = await store.get(event.id)
        assert row is not None, f"task {event.id} was not stored"
        assert_utf8(_task_texts(row), what=f"task {event.id}")
    return outcome


def assert_utf8(texts: Iterator[str | None], *, what: str) -> None:
    """Fail unless every text encodes as UTF-8 (no lone surrogate) and holds no NUL."""
    for text in texts:
        if text is None:
            continue
        assert isinstance(text, str), f"{what}: {text!r} is not text"
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise AssertionError(f"{what}: {text[:80]!r} is not UTF-8 ({exc})") from None
        assert "\x00" not in text, f"{what}: {text[:80]!r} holds NUL"


def _task_texts(row: Task) -> Iterator[str | None]:
    yield row.task_kind
    yield row.worker_kind
    yield row.executed_by
    if row.error is not None:
        yield from (row.error.type, row.error.message, row.error.traceback)
    for payload in (row.input, row.output):
        if payload is not None:
            yield payload.content_type


def _record_texts(record: DeadLetterRecord) -> Iterator[str | None]:
    yield from (record.origin, record.reason, record.content_type)
    for name, value in record.headers.items():
        yield name
        yield value
