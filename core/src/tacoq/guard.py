"""The last-resort guard of every consumer: what one bad message may cost, and what it may not.

A relay or worker that fails on *one message* (a decoder raising what nobody expected, a store
refusing a row, a plugin's serializer crashing) sets that message aside as a dead letter, with
the failure as the reason, logs it once, and goes on with the next: never a crash, never a
requeue loop. An *outage* is not the message's fault: the store or broker being unreachable,
a connection dropping, the process stopping. Those keep the consumer's hold-and-retry
behaviour (:func:`is_outage`), so an outage never turns good messages into dead letters.

If the dead letter itself cannot be published because of the message (the broker refuses to
carry a copy of it), the message is dropped after it is logged with its headers and size: it
could only be redelivered, fail again and block its queue. If it cannot be published because
of an outage, it goes back to its queue.
"""

from __future__ import annotations

import contextlib
import logging

from tacoq.contracts.broker import Delivery
from tacoq.errors import PublishError, StoreUnavailable
from tacoq.logfields import task_fields
from tacoq.model.wire import H_ID, H_TASK_KIND

__all__ = ["OUTAGES", "describe_failure", "is_outage", "note_unknown_kind", "set_aside"]

#: Errors that mean "cannot reach a service now", not "this message is bad". (``OSError``
#: covers ``ConnectionError``; cancellation is a ``BaseException`` and never caught here.)
OUTAGES: tuple[type[BaseException], ...] = (StoreUnavailable, PublishError, OSError, TimeoutError)
#: The longest failure description put in a dead letter's reason.
_MAX_DESCRIPTION = 500


def is_outage(exc: BaseException) -> bool:
    """True when ``exc`` is an outage (hold and retry), not a fault of the message."""
    return isinstance(exc, OUTAGES)


def describe_failure(exc: BaseException) -> str:
    """``Type: message`` of an unexpected exception, bounded, for a dead letter's reason."""
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= _MAX_DESCRIPTION else text[:_MAX_DESCRIPTION] + "..."


async def set_aside(
    delivery: Delivery, reason: str, log: logging.Logger, *, task_completed: bool = False
) -> str:
    """Dead-letter ``delivery`` with ``reason``; what happened: ``"dead-lettered"``,
    ``"requeued"`` (an outage while dead-lettering) or ``"dropped"`` (the broker refused to
    carry the dead letter; logged with the message's headers and size)."""
    try:
        await delivery.dead_letter(reason, task_completed=task_completed)
    except Exception as exc:
        if is_outage(exc):
            log.warning("could not dead-letter a message (%s); it goes back to its queue", exc)
            with contextlib.suppress(Exception):
                await delivery.requeue()
            return "requeued"
        envelope = delivery.envelope
        log.error(
            "a message could not be dead-lettered (%s) and is dropped; it was set aside "
            "because %s; headers %r, content type %r, %d bytes",
            describe_failure(exc),
            reason,
            dict(envelope.headers),
            envelope.content_type,
            len(envelope.body),
            extra=task_fields(envelope.headers.get(H_ID), envelope.headers.get(H_TASK_KIND)),
        )
        with contextlib.suppress(Exception):
            await delivery.ack()
        return "dropped"
    return "dead-lettered"


def note_unknown_kind(kind: str, seen: set[str], log: logging.Logger) -> None:
    """Log, once per kind (``seen`` remembers them), that messages of ``kind`` are skipped: a
    newer TacoQ's message kind, acknowledged and counted by the caller, never dead-lettered."""
    if kind not in seen:
        seen.add(kind)
        log.warning(
            "skipping messages of an unknown kind %r (from a newer TacoQ?): acknowledged and "
            "counted, not dead-lettered; this is logged once per kind",
            kind,
        )
