"""Regression test for issue 15 fuzz finding 3 (fixed): a decoder error
holds a header or field value whole.

A :class:`WireFormatError`'s message becomes a log line of the relay or worker and a dead
letter's reason, so the decoder cuts the values it quotes (``[:64]``, ``[:40]``); a few it does
not: ``tacoq-version``, a payload's ``encoding``, an updates message's content type. One
70,000-character header then makes a 70,000-character log line (in ``tacoq relay`` and ``tacoq
worker`` that costs seconds: ``cli/tests/test_redact_regression.py``).
"""

from __future__ import annotations

import json

import pytest

from tacoq.errors import WireFormatError
from tacoq.model.wire import UPDATES_CONTENT_TYPE, Envelope, decode, decode_assignment

HUGE = "x" * 70_000
#: The longest message a decoder error should have (a dead letter keeps 1000 characters).
LIMIT = 1000


def _update(**changes: object) -> dict[str, object]:
    item: dict[str, object] = {
        "id": "0b7f6f0e-8a51-4a5e-9a39-2f1e6f7c2d10",
        "attempt": 1,
        "phase": "completed",
        "task_kind": "k",
        "worker_kind": "w",
        "ttl": 60,
        "output": {"content_type": "text/plain", "encoding": "text", "data": "1"},
    }
    item.update(changes)
    return item


UPDATES = {"tacoq-version": "1", "tacoq-event": "updates"}
CASES = {
    "a long tacoq-version": (decode, Envelope({"tacoq-version": HUGE}, "", b"")),
    "a long tacoq-version on an assignment": (
        decode_assignment,
        Envelope({"tacoq-version": HUGE, "tacoq-event": "assign"}, "application/json", b"1"),
    ),
    "a long payload encoding": (
        decode,
        Envelope(
            UPDATES,
            UPDATES_CONTENT_TYPE,
            json.dumps(
                [_update(output={"content_type": "a/b", "encoding": HUGE, "data": ""})]
            ).encode(),
        ),
    ),
    "a long updates content type": (decode, Envelope(UPDATES, HUGE, b"[]")),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_decoder_error_quotes_values_cut_short(case: str) -> None:
    decoder, envelope = CASES[case]
    with pytest.raises(WireFormatError) as caught:
        decoder(envelope)
    assert len(str(caught.value)) <= LIMIT, f"{case}: {len(str(caught.value)):,} characters"
