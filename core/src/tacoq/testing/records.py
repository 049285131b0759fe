"""Whole listings from a store, for tests: every dead letter (following the cursor)."""

from __future__ import annotations

from tacoq.contracts.store import DeadLetterFilter, DeadLetterRecord, Store

__all__ = ["all_dead_letters"]


async def all_dead_letters(
    store: Store, filters: DeadLetterFilter | None = None, *, page: int = 500
) -> list[DeadLetterRecord]:
    """Every dead letter of ``store`` matching ``filters``, newest first (all pages)."""
    found: list[DeadLetterRecord] = []
    cursor = None
    while True:
        result = await store.list_dead_letters(filters, cursor=cursor, limit=page)
        found += result.dead_letters
        if result.next_cursor is None:
            return found
        cursor = result.next_cursor
