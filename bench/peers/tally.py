"""The finished-task tally of the peers without results: one byte appended per finished task.

A peer that stores no result leaves nothing to count in Postgres, so its no-op task appends one
byte to the file named by ``BENCH_PEER_TALLY`` (``O_APPEND`` writes are atomic, so every thread
and process of a run shares one file); the driver polls the file's size. One ``write`` costs a
few microseconds, next to the hundreds a task costs.
"""

from __future__ import annotations

import os

_PATH = os.environ.get("BENCH_PEER_TALLY", "")
_FD = os.open(_PATH, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600) if _PATH else None


def tally() -> None:
    """Count one finished task (nothing when no tally file was configured)."""
    if _FD is not None:
        os.write(_FD, b".")
