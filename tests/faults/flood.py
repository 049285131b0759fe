"""The poison flood's messages (scenario 8) and what each must become.

Every message is a pika ``BasicProperties`` and a body, published raw into a queue, with a
marker header ``flood: <class>:<n>`` first (ignored by the decoder, kept in a dead letter's
headers, so each record is traced back to its message). Its expected end is computed by running
the consumer's own decoding on what the consumer will read of it
(:func:`tacoq_rabbit.testing.as_received`, then the wire decoder): nothing is hand-labelled.

- findings: the messages of issue 15's findings: updates with ``started_at``
  ``0001-01-01T00:00:00+01:00``, with ``completed_at`` ``9999-12-31T23:59:59-01:00``, with a
  text payload holding a lone surrogate (relay queue); an assignment with ``tacoq-created-at``
  ``0001-01-01T00:00:00+01:00`` (through the tasks exchange: a copy for the worker and one for
  the relay); the AMQP properties the client could not read (content type, message id and
  header name of invalid UTF-8, timestamp 2**63-1) on both queues;
- random: messages drawn from :mod:`tacoq.testing.poison` with a fixed seed, into the relay's
  or the worker's queue.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pika
from hypothesis import strategies as st

from tacoq.contracts.broker import DEFAULT_DELIVERY_LIMIT, RELAY_QUEUE, worker_queue
from tacoq.errors import WireFormatError
from tacoq.model.wire import UPDATES_CONTENT_TYPE, Envelope, decode_assignment
from tacoq.serialization import DEFAULT_MAX_PAYLOAD_BYTES
from tacoq.testing.consumer_probe import relay_outcome, with_fresh_task_id
from tacoq.testing.poison import amqp_header_tables, bodies, draw_examples, hostile_envelopes
from tacoq.testing.storable import Outcome, classify
from tacoq_rabbit.codec import envelope_from, previous_deliveries
from tacoq_rabbit.testing import amqp_properties, as_received

from .harness import KIND

MARKER = "flood"
#: The handlers of ``faultapp``'s worker.
TASK_KINDS = ("work",)
#: A content header frame must fit RabbitMQ's frame_max (128 KiB): bigger ones are not drawn.
MAX_PROPERTIES = 100_000
RELAY = "relay"
WORKER = "worker"
#: How a message ends: applied/ran, dead-lettered, or skipped as an unknown kind.
APPLIED, DEAD, UNKNOWN = "applied", "dead-lettered", "unknown"


@dataclass
class Message:
    """One message to publish, where, and how its consumer(s) must end it."""

    cls: str
    n: int
    target: str  # RELAY, WORKER, or "exchange" (an assignment routed to both)
    properties: Any
    body: bytes
    #: consumer (RELAY or WORKER) -> APPLIED, DEAD or UNKNOWN
    expected: dict[str, str] = field(default_factory=dict)
    #: task ids this message names (a valid assignment, valid updates)
    task_ids: list[str] = field(default_factory=list)

    @property
    def marker(self) -> str:
        """The value of its ``flood`` header."""
        return f"{self.cls}:{self.n}"


def origin_of(consumer: str) -> str:
    """The dead-letter origin of a consumer."""
    return RELAY_QUEUE if consumer == RELAY else worker_queue(KIND)


def _relay_end(envelope: Envelope) -> tuple[str, list[str]]:
    outcome = relay_outcome(envelope, DEFAULT_MAX_PAYLOAD_BYTES)
    if outcome is Outcome.APPLIED:
        _, events = classify(envelope)
        assert isinstance(events, list)
        return APPLIED, [str(event.id) for event in events]
    return (DEAD if outcome is Outcome.DEAD_LETTERED else UNKNOWN), []


def _worker_end(envelope: Envelope, raw_headers: Any) -> tuple[str, list[str]]:
    """The worker's decisions, in its order (``WorkerRuntime._handle``)."""
    outcome, _ = classify(envelope)
    if outcome is Outcome.UNKNOWN:
        return UNKNOWN, []
    try:
        assignment = decode_assignment(envelope)
    except WireFormatError:
        return DEAD, []
    deliveries = previous_deliveries(raw_headers) + 1
    if (
        len(envelope.body) > DEFAULT_MAX_PAYLOAD_BYTES
        or deliveries > DEFAULT_DELIVERY_LIMIT
        or assignment.task_kind not in TASK_KINDS
    ):
        return DEAD, [str(assignment.id)]  # completed as DeadLettered by the worker
    return APPLIED, [str(assignment.id)]


def expect(message: Message) -> Message:
    """Fill ``message.expected`` by decoding what its consumer(s) will read."""
    received = as_received(message.properties)
    envelope = envelope_from(received.headers, received.content_type, message.body)
    consumers = [RELAY, WORKER] if message.target == "exchange" else [message.target]
    for consumer in consumers:
        if consumer == RELAY:
            end, ids = _relay_end(envelope)
        else:
            end, ids = _worker_end(envelope, received.headers)
        message.expected[consumer] = end
        message.task_ids += ids
    return message


def _properties(headers: dict[Any, Any], marker: str, **fields: Any) -> Any:
    table = {MARKER: marker, **{k: v for k, v in headers.items() if k != MARKER}}
    return pika.BasicProperties(headers=table, delivery_mode=2, **fields)


def _update(**changes: Any) -> dict[str, Any]:
    item: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "attempt": 1,
        "phase": "completed",
        "task_kind": "work",
        "worker_kind": KIND,
        "ttl": 60,
        "executed_by": "w",
        "started_at": "2026-01-01T00:00:00.000000Z",
        "completed_at": "2026-01-01T00:00:01.000000Z",
        "is_error": False,
        "output": {"content_type": "application/json", "encoding": "text", "data": "1"},
        "error": None,
    }
    item.update(changes)
    return item


def finding_messages() -> list[Message]:
    """The messages of issue 15's findings (see the module)."""
    updates = {"tacoq-version": "1", "tacoq-event": "updates", "tacoq-count": "1"}
    bad_updates = [
        _update(started_at="0001-01-01T00:00:00+01:00"),
        _update(completed_at="9999-12-31T23:59:59-01:00"),
        _update(output={"content_type": "text/plain", "encoding": "text", "data": "\ud800"}),
    ]
    found: list[Message] = []
    for n, item in enumerate(bad_updates):
        marker = f"finding-update:{n}"
        props = _properties(updates, marker, content_type=UPDATES_CONTENT_TYPE)
        found.append(Message("finding-update", n, RELAY, props, json.dumps([item]).encode()))
    assignment = {
        "tacoq-version": "1",
        "tacoq-event": "assign",
        "tacoq-id": str(uuid.uuid4()),
        "tacoq-task-kind": "work",
        "tacoq-worker-kind": KIND,
        "tacoq-attempt": "1",
        "tacoq-priority": "0",
        "tacoq-ttl": "3600",
        "tacoq-created-at": "0001-01-01T00:00:00+01:00",
    }
    props = _properties(assignment, "finding-assign:0", content_type="application/json")
    found.append(Message("finding-assign", 0, "exchange", props, b'{"n": 1}'))
    unreadable = [
        {"content_type": b"\xff\xfe"},
        {"message_id": b"\xff"},
        {"headers_extra": {b"\xff\xfe": "x"}},
        {"timestamp": 2**63 - 1},
    ]
    n = 0
    for target in (RELAY, WORKER):
        for fields in unreadable:
            fields = dict(fields)
            extra = fields.pop("headers_extra", {})
            props = _properties(extra, f"finding-amqp:{n}", **fields)
            found.append(Message("finding-amqp", n, target, props, b"poison"))
            n += 1
    return [expect(message) for message in found]


def _random_strategy() -> st.SearchStrategy[tuple[str, str, Any, Any]]:
    envelopes = st.tuples(
        st.sampled_from([RELAY, WORKER]),
        st.just("envelope"),
        hostile_envelopes(task_kinds=TASK_KINDS),
        st.none(),
    )
    tables = st.tuples(
        st.sampled_from([RELAY, WORKER]),
        st.just("amqp"),
        amqp_header_tables(floats=False),
        bodies(),
    )
    return st.one_of(envelopes, tables)


def _fresh_table_id(table: dict[str, Any]) -> dict[str, Any]:
    envelope = Envelope({k: v for k, v in table.items() if isinstance(v, str)}, "", b"")
    fresh = with_fresh_task_id(envelope)
    return {**table, **fresh.headers} if fresh is not envelope else table


def random_messages(count: int, seed: int) -> list[Message]:
    """``count`` messages drawn with ``seed`` (task ids made fresh: drawn ones repeat)."""
    found: list[Message] = []
    for target, kind, drawn, extra in draw_examples(
        _random_strategy(), count + count // 5, seed_value=seed
    ):
        marker = f"random:{len(found)}"
        if kind == "envelope":
            envelope = with_fresh_task_id(drawn)
            props, body = amqp_properties(envelope, first={MARKER: marker}), envelope.body
        else:
            table = _fresh_table_id(drawn)
            props, body = _properties(table, marker, content_type="application/json"), extra
        if len(b"".join(props.encode())) > MAX_PROPERTIES:
            continue
        found.append(expect(Message("random", len(found), target, props, body)))
        if len(found) == count:
            return found
    raise AssertionError(f"only {len(found)} of {count} drawn messages fit a header frame")


def expected_dead_letters(messages: list[Message]) -> Counter[tuple[str, str]]:
    """``(class, origin)`` -> how many dead-letter records ``messages`` must leave."""
    counts: Counter[tuple[str, str]] = Counter()
    for message in messages:
        for consumer, end in message.expected.items():
            if end == DEAD:
                counts[(message.cls, origin_of(consumer))] += 1
    return counts


def expected_ends(messages: list[Message], consumer: str) -> Counter[str]:
    """How many of ``messages`` ``consumer`` must apply, dead-letter or skip."""
    return Counter(m.expected[consumer] for m in messages if consumer in m.expected)


def found_dead_letters(records: list[dict[str, Any]]) -> Counter[tuple[str, str]]:
    """``(class, origin)`` -> records in the store, by the marker header of each."""
    counts: Counter[tuple[str, str]] = Counter()
    for record in records:
        marker = str(record["headers"].get(MARKER, "unmarked:-1"))
        counts[(marker.rsplit(":", 1)[0], record["origin"])] += 1
    return counts


def markers_per_record(records: list[dict[str, Any]]) -> Counter[tuple[str, str]]:
    """``(marker, origin)`` -> records: more than one means a message dead-lettered twice."""
    return Counter((str(r["headers"].get(MARKER)), r["origin"]) for r in records)
