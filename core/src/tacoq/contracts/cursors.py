"""List cursors: the opaque ``next_cursor`` every store hands out for keyset pagination.

A cursor names the last row of a page: its sort time (``created_at`` of a task, ``last_seen`` of
a dead letter; microseconds since the epoch, or none) and its id. Every store encodes and decodes
it here, so a cursor any store made reads the same everywhere.
"""

from __future__ import annotations

import base64
import binascii
import re
from datetime import UTC, datetime, timedelta
from uuid import UUID

__all__ = ["MAX_CURSOR_LENGTH", "cursor_text_problem", "decode_cursor", "encode_cursor", "micros"]

#: The longest cursor a relay takes (those the stores make are about 70 characters).
MAX_CURSOR_LENGTH = 128
_CURSOR_TEXT = re.compile(r"[A-Za-z0-9_-]+")

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def micros(moment: datetime) -> int:
    """Microseconds since the Unix epoch (exact); a naive datetime is taken as UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - _EPOCH) // _MICROSECOND


#: The times a cursor may hold, in microseconds since the epoch: what ``datetime`` can hold.
_FIRST_MICROS = micros(datetime.min.replace(tzinfo=UTC))
_LAST_MICROS = micros(datetime.max.replace(tzinfo=UTC))


def encode_cursor(created_at: datetime | None, task_id: UUID) -> str:
    """The opaque cursor after a row of sort time ``created_at`` (or none) and id ``task_id``."""
    created = "-" if created_at is None else str(micros(created_at))
    return base64.urlsafe_b64encode(f"{created}:{task_id.hex}".encode()).decode().rstrip("=")


def cursor_text_problem(cursor: str) -> str | None:
    """Why ``cursor`` cannot be the text of a cursor, or ``None`` when it can: a cursor is 1 to
    :data:`MAX_CURSOR_LENGTH` characters of ``A-Z a-z 0-9 _ -`` (what :func:`decode_cursor`
    then reads is another matter)."""
    if len(cursor) <= MAX_CURSOR_LENGTH and _CURSOR_TEXT.fullmatch(cursor):
        return None
    return f"not a cursor of this relay (1-{MAX_CURSOR_LENGTH} of A-Z a-z 0-9 _ -)"


def decode_cursor(cursor: str) -> tuple[int | None, UUID]:
    """``(created_at in microseconds or None, id)`` of a cursor; ``ValueError`` when malformed,
    or when its time is not one a ``datetime`` can hold (years 1 to 9999)."""
    shown = repr(cursor if len(cursor) <= 80 else cursor[:80] + "...")
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        created, _, hex_id = base64.urlsafe_b64decode(padded).decode().partition(":")
        moment = None if created == "-" else int(created)
        task_id = UUID(hex=hex_id)
    except (ValueError, UnicodeDecodeError, binascii.Error):
        raise ValueError(f"invalid list cursor {shown}") from None
    if moment is not None and not _FIRST_MICROS <= moment <= _LAST_MICROS:
        raise ValueError(f"list cursor {shown} holds a time outside the years 1 to 9999")
    return moment, task_id
