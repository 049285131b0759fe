"""Fuzzing the wire decoders with hostile messages (:mod:`tacoq.testing.poison`).

Any envelope decodes to events or raises :class:`WireFormatError` (its subclass
:class:`UnknownMessageKind` for a well-formed unknown kind), nothing else; and whatever the
relay keeps of it (the events, or the dead-letter record of a malformed message) is storable in
a real SQLite store and reads back as UTF-8 text. The Postgres plugin runs the same check
against Postgres (``plugins/tacoq-postgres/tests/test_fuzz_storable.py``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tacoq.builtin.sqlite_store import SqliteStore
from tacoq.errors import UnknownMessageKind, WireFormatError
from tacoq.model.task import TaskEvent
from tacoq.model.wire import Envelope, decode_assignment, decode_updates
from tacoq.testing import fresh_namespace
from tacoq.testing.poison import (
    EDGE_TIMESTAMPS,
    assignment_envelopes,
    draw_examples,
    hostile_envelopes,
    updates_envelopes,
)
from tacoq.testing.storable import Outcome, classify, store_message

EXAMPLES = 400
STORE_EXAMPLES = 150
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
#: The store fixture is reused across examples on purpose: one store, many messages.
STORE_FUZZ = settings(
    max_examples=STORE_EXAMPLES,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)


def _events_or_wire_error(decoder: object, envelope: Envelope) -> None:
    assert callable(decoder)
    try:
        result = decoder(envelope)
    except WireFormatError:
        return
    events = result if isinstance(result, list) else [result]
    assert events, f"{decoder.__name__} returned no event"
    assert all(isinstance(event, TaskEvent) for event in events), events


@FUZZ
@given(hostile_envelopes())
def test_any_envelope_decodes_to_events_or_a_wire_format_error(envelope: Envelope) -> None:
    outcome, _ = classify(envelope)  # raises anything else
    assert outcome in Outcome
    for decoder in (decode_assignment, decode_updates):
        _events_or_wire_error(decoder, envelope)


@FUZZ
@given(assignment_envelopes())
def test_any_near_valid_assignment_decodes_to_one_assignment_or_an_error(
    envelope: Envelope,
) -> None:
    try:
        event = decode_assignment(envelope)
    except WireFormatError:
        return
    assert event.input is not None
    assert event.input.data == envelope.body
    assert event.created_at is not None
    assert event.created_at.utcoffset() is not None


@FUZZ
@given(updates_envelopes())
def test_any_updates_message_decodes_to_events_or_an_error(envelope: Envelope) -> None:
    _events_or_wire_error(decode_updates, envelope)


def test_the_strategies_reach_every_outcome_and_every_finding() -> None:
    """The fuzz is only as good as what it draws: valid, unknown and malformed messages, and
    the values of issue 15's findings, all occur in a few hundred examples."""
    drawn = draw_examples(hostile_envelopes(), 300, seed_value=15)
    outcomes = Counter(classify(envelope)[0] for envelope in drawn)
    assert all(outcomes[outcome] >= 10 for outcome in Outcome), outcomes
    created = {e.headers.get("tacoq-created-at") for e in drawn}
    assert created & set(EDGE_TIMESTAMPS), "no edge timestamp drawn"
    bodies = b"".join(e.body for e in drawn if len(e.body) < 10_000)
    assert b"\\ud800" in bodies or b"\xed\xa0\x80" in bodies, "no lone surrogate drawn"
    assert b"1e999" in bodies or b"NaN" in bodies, "no non-finite literal drawn"
    assert drawn == draw_examples(hostile_envelopes(), 300, seed_value=15), "not deterministic"


@pytest.fixture
async def sqlite_store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    store = SqliteStore(f"sqlite:///{tmp_path}/fuzz.db", namespace=fresh_namespace("fuzz"))
    await store.connect()
    try:
        yield store
    finally:
        await store.close()


@STORE_FUZZ
@given(st.one_of(hostile_envelopes(), assignment_envelopes(), updates_envelopes()))
async def test_what_the_relay_keeps_of_any_message_is_storable_in_sqlite(
    sqlite_store: SqliteStore, envelope: Envelope
) -> None:
    await store_message(sqlite_store, envelope)


def test_an_unknown_kind_is_a_wire_format_error_too() -> None:
    """The fuzz properties lean on this: every decoder error is a WireFormatError."""
    assert issubclass(UnknownMessageKind, WireFormatError)
