"""Regression test for issue 15 fuzz finding 3 (a strict xfail until fixed).

Every log record of ``tacoq relay`` and ``tacoq worker`` goes through
:func:`tacoq_cli.errors.redact`, whose pattern takes time quadratic in the length of a run of
letters and digits: a 70,000-character header value in a log line (``unknown wire version
'xxx...'``, which the wire decoder does not cut) keeps the process's event loop busy for about
5 s per line. In the poison flood (fault scenario 8) five such messages in a row kept a relay
from answering ``GET /health`` for over 10 s, and a worker from taking any task meanwhile.
"""

from __future__ import annotations

import time

import pytest

from tacoq_cli.errors import redact

LINE = "dead-lettering an undecodable message: unknown wire version '" + "x" * 30_000 + "'"


@pytest.mark.xfail(
    strict=True, raises=AssertionError, reason="issue 15 fuzz finding 3: redact is quadratic"
)
def test_redacting_a_long_log_line_takes_linear_time() -> None:
    began = time.perf_counter()
    redacted = redact(LINE)
    elapsed = time.perf_counter() - began
    assert redacted == LINE
    assert elapsed < 0.2, f"redacting {len(LINE):,} characters took {elapsed:.2f}s"


def test_redact_still_hides_passwords() -> None:
    """What any fix must keep."""
    assert redact("amqp://guest:s3cret@host/ and x" * 2) == "amqp://guest:***@host/ and x" * 2
