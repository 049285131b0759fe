"""Query parameters the relay's routes share: kind filters and cursors, checked as the API
documents them (``docs/http-api.md``), before anything reaches the store."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query
from pydantic import AfterValidator

from tacoq.contracts.cursors import MAX_CURSOR_LENGTH, cursor_text_problem
from tacoq.model.wire import MAX_HEADER_VALUE_LENGTH
from tacoq.relay.api_models import NO_NUL_PATTERN

__all__ = ["MAX_CURSOR_LENGTH", "Cursor", "KindFilter", "NoNulText", "no_nul"]


def no_nul(value: str | None) -> str | None:
    """``value`` unless it holds NUL, which no store column can (a ``ValueError`` then)."""
    if value is not None and "\x00" in value:
        raise ValueError("must not contain the NUL character (\\u0000)")
    return value


KindFilter = Annotated[
    str | None,
    Query(
        min_length=1,
        max_length=MAX_HEADER_VALUE_LENGTH,
        json_schema_extra={"pattern": NO_NUL_PATTERN},
    ),
    AfterValidator(no_nul),
]


def _cursor_text(value: str | None) -> str | None:
    problem = None if value is None else cursor_text_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


# The document says only "format: tacoq-cursor": which strings are cursors cannot be said in
# JSON Schema (a fuzzer is given a strategy for the format); the relay checks the text here and
# decodes it in the store (422 for anything it did not make).
Cursor = Annotated[
    str | None,
    Query(
        json_schema_extra={"format": "tacoq-cursor"},
        description="The next_cursor of the previous page: an opaque cursor made by the relay.",
    ),
    AfterValidator(_cursor_text),
]


#: Free text to match (a dead letter's origin or reason): at most 1000 characters, no NUL.
NoNulText = Annotated[
    str | None,
    Query(max_length=1000, json_schema_extra={"pattern": NO_NUL_PATTERN}),
    AfterValidator(no_nul),
]
