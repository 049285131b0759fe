"""Schemathesis hooks for fuzzing the relay (loaded through ``SCHEMATHESIS_HOOKS``).

- The relay's OpenAPI document says a ``cursor`` has the format ``tacoq-cursor``: only cursors
  the relay made are valid, which JSON Schema cannot spell. A strategy for them (any time a
  cursor can hold, or none, and any id) lets schemathesis' positive cases send real cursors.
- A ``date-time`` (the ``eta`` of ``POST /tasks``) is valid at most 48.5 days ahead (the
  longest delay, ``tacoq.model.options.MAX_DELAY_SECONDS``), which JSON Schema cannot spell
  either: the strategy for that format makes times from ten years ago to 40 days ahead, in
  several offsets. Times beyond it are refused with 422 and tested in test_relay_http.py.
- ``not_a_server_error_but_an_outage`` replaces schemathesis' ``not_a_server_error``: no 5xx,
  except the documented ``503 unavailable`` of a store or broker outage (the services the
  fuzzing runs on may be restarted meanwhile by other suites).
- ``CasesPerOperation`` writes how many test cases each operation got to the JSON file named
  by ``FUZZ_CASES_PATH``, for the test's summary.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import schemathesis
from hypothesis import strategies as st

from tacoq.contracts.cursors import encode_cursor

schemathesis.openapi.format(
    "tacoq-cursor",
    st.builds(
        encode_cursor,
        st.one_of(st.none(), st.datetimes(timezones=st.just(UTC))),
        st.uuids(),
    ),
)

_NOW = datetime.now(UTC).replace(tzinfo=None)
schemathesis.openapi.format(
    "date-time",
    st.builds(
        lambda when, zone: when.replace(tzinfo=UTC).astimezone(zone).isoformat(),
        st.datetimes(min_value=_NOW - timedelta(days=3650), max_value=_NOW + timedelta(days=40)),
        st.sampled_from(
            [UTC, timezone(timedelta(hours=-5)), timezone(timedelta(hours=5, minutes=30))]
        ),
    ),
)


@schemathesis.check
def not_a_server_error_but_an_outage(ctx: Any, response: Any, case: Any) -> None:
    """No 5xx but the relay's 503 'unavailable' (a store or broker outage)."""
    status = response.status_code
    if status < 500:
        return
    if status == 503:
        try:
            kind = json.loads(response.content)["error"]["type"]
        except (ValueError, KeyError, TypeError):
            kind = None
        if kind == "unavailable":
            return
    raise AssertionError(f"server error {status}: {response.content[:500]!r}")


@schemathesis.check
class CasesPerOperation:
    """Count the distinct test cases of each operation; write them out after the run."""

    def __init__(self) -> None:
        self.cases: dict[str, set[str]] = {}

    def after_response(self, ctx: Any, response: Any, case: Any) -> None:
        self.cases.setdefault(case.operation.label, set()).add(case.id)

    def after_run(self, ctx: Any) -> None:
        path = os.environ.get("FUZZ_CASES_PATH")
        if path:
            counts = {label: len(ids) for label, ids in sorted(self.cases.items())}
            with open(path, "w", encoding="utf-8") as file:
                json.dump(counts, file)
