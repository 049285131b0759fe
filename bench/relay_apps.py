"""The worker app of the relay-latency scenario: a no-op handler that reports when it finished."""

from __future__ import annotations

import time
from typing import Any

from tacoq.worker import WorkerApp

#: The worker kind the relay scenarios publish to.
RELAY_KIND = "bench-relay"

stamp_app = WorkerApp(RELAY_KIND, name="bench-relay-worker")


@stamp_app.task(kind="stamp")
async def stamp(value: Any) -> dict[str, float]:
    """Do nothing; return the wall-clock moment the handler finished (``time.time()``)."""
    return {"finished": time.time()}
