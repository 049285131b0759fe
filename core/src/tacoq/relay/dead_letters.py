"""Dead letters into the store: what the relay keeps of each, and the task it completes.

The relay consumes the namespace's dead-letter queue
(:data:`~tacoq.contracts.broker.DEAD_LETTER_QUEUE`) into the store, which owns dead letters
(``docs/architecture.md``, "Dead letters"). For each dead letter it keeps a
:class:`~tacoq.contracts.store.DeadLetterRecord` (:func:`record_of`) and, when the message names a
task that is not completed yet and nobody reported its completion, completes that task as
``DeadLettered`` with the reason (:func:`completion_of`), so nobody waits for it forever. Both are
pure functions of the dead letter; the engine does the I/O.
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime
from uuid import UUID

from tacoq.contracts.broker import DeadLetter, worker_kind_of
from tacoq.contracts.store import DeadLetterRecord
from tacoq.model.task import (
    DEFAULT_TTL_SECONDS,
    MAX_NAME_TEXT,
    ErrorInfo,
    Phase,
    Task,
    TaskEvent,
    readable_text,
)
from tacoq.model.wire import (
    H_ATTEMPT,
    H_DEAD_LETTER_ID,
    H_ID,
    H_REQUEUES,
    H_TASK_KIND,
    H_TTL,
    H_WORKER_KIND,
    MAX_ATTEMPT,
    MAX_TTL,
    kind_problem,
)

__all__ = [
    "DEAD_LETTERED",
    "MAX_HEADERS_KEPT",
    "MAX_HEADER_TEXT",
    "MAX_REASON_TEXT",
    "completion_of",
    "record_of",
]

#: The error type of a task completed because its message was dead-lettered.
DEAD_LETTERED = "DeadLettered"
#: The most headers a record keeps, and the most characters of each header value.
MAX_HEADERS_KEPT = 100
MAX_HEADER_TEXT = 4096
#: The most characters of a reason a record keeps.
MAX_REASON_TEXT = 1000

_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.ASCII)
_DIGITS = re.compile(r"[0-9]{1,10}", re.ASCII)
#: Headers a record keeps as columns of its own, not among its headers.
_OWN_HEADERS = frozenset({H_DEAD_LETTER_ID, H_REQUEUES})


def _uuid(value: object) -> UUID | None:
    return UUID(value) if isinstance(value, str) and _UUID.fullmatch(value) else None


def _number(value: object, high: int) -> int | None:
    if isinstance(value, str) and _DIGITS.fullmatch(value) and int(value) <= high:
        return int(value)
    return None


def _name(value: object) -> str | None:
    return value if isinstance(value, str) and kind_problem(value) is None else None


def record_of(letter: DeadLetter, now: datetime, *, body_limit: int) -> DeadLetterRecord:
    """The record the store keeps of ``letter``, seen at ``now``.

    Its id is the message's ``tacoq-dead-letter-id``; a message without one (published into
    the dead-letter queue by something other than a TacoQ broker) gets an id derived from its
    content, so the intake stays idempotent when the message is delivered again. ``count`` is
    ``tacoq-requeues + 1``. Text is made storable (:func:`~tacoq.model.task.readable_text`) and
    bounded; the body is kept up to ``body_limit`` bytes.
    """
    envelope = letter.envelope
    kept: dict[str, str] = {}
    for name, value in envelope.headers.items():
        if len(kept) >= MAX_HEADERS_KEPT:
            break
        if name not in _OWN_HEADERS:
            kept[readable_text(str(name), MAX_NAME_TEXT)] = readable_text(
                str(value), MAX_HEADER_TEXT
            )
    origin = readable_text(letter.queue, MAX_NAME_TEXT)
    letter_id = _uuid(envelope.headers.get(H_DEAD_LETTER_ID))
    if letter_id is None:
        digest = hashlib.sha256()
        for part in (origin, repr(sorted(kept.items())), envelope.content_type):
            digest.update(part.encode("utf-8", "surrogatepass") + b"\0")
        digest.update(envelope.body)
        letter_id = UUID(bytes=digest.digest()[:16], version=4)
    requeues = _number(envelope.headers.get(H_REQUEUES), MAX_ATTEMPT) or 0
    return DeadLetterRecord(
        id=letter_id,
        origin=origin,
        reason=readable_text(letter.reason, MAX_REASON_TEXT),
        headers=kept,
        content_type=readable_text(envelope.content_type, MAX_NAME_TEXT),
        body=envelope.body[:body_limit],
        body_size=len(envelope.body),
        task_id=_uuid(envelope.headers.get(H_ID)),
        first_seen=now,
        last_seen=now,
        count=requeues + 1,
    )


def completion_of(
    record: DeadLetterRecord, letter: DeadLetter, row: Task | None, now: datetime
) -> TaskEvent | None:
    """The ``DeadLettered`` completion of the task ``record`` names, or ``None``.

    ``None`` when the message names no task, its completion was already reported
    (:attr:`~tacoq.contracts.broker.DeadLetter.task_completed`), the task's ``row`` is completed,
    or the row is at a later attempt than the message (a retry is under way). The kinds and ttl come
    from the row, else from the message's headers when they are usable.
    """
    if record.task_id is None or letter.task_completed or (row is not None and row.is_completed):
        return None
    headers = letter.envelope.headers
    attempt = _number(headers.get(H_ATTEMPT), MAX_ATTEMPT) or (row.attempt if row else 1)
    if row is not None and row.attempt > attempt:
        return None
    if row is not None:
        task_kind, worker_kind, ttl = row.task_kind, row.worker_kind, row.ttl
    else:
        task_kind = _name(headers.get(H_TASK_KIND)) or ""
        worker_kind = _name(headers.get(H_WORKER_KIND)) or worker_kind_of(record.origin) or ""
        given = _number(headers.get(H_TTL), MAX_TTL)
        ttl = DEFAULT_TTL_SECONDS if given is None else given
    return TaskEvent(
        id=record.task_id,
        attempt=max(attempt, 1),
        phase=Phase.COMPLETED,
        task_kind=task_kind,
        worker_kind=worker_kind,
        ttl=ttl,
        completed_at=now,
        is_error=True,
        error=ErrorInfo(DEAD_LETTERED, record.reason),
    )
