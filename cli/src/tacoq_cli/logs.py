"""Where TacoQ's own log records go when it runs as the ``tacoq`` command.

Records of the ``tacoq`` loggers are written to stderr, with any password in a URL replaced —
whatever logged it. A process that configured the ``tacoq`` logger itself is left alone.
"""

from __future__ import annotations

import logging
import sys

from tacoq_cli.errors import redact

__all__ = ["configure_logging"]

_BRIEF = "%(levelname)s: %(message)s"
_DETAILED = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class _RedactingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        record.levelname = record.levelname.lower()
        return redact(super().format(record))


def configure_logging(*, verbose: bool = False) -> None:
    """Send ``tacoq`` log records to stderr: warnings as ``warning: ...`` lines, or (``verbose``,
    for long-running commands like ``tacoq worker``) info and up with a timestamp."""
    logger = logging.getLogger("tacoq")
    ours = [h for h in logger.handlers if getattr(h, "_tacoq_cli", False)]
    if logger.handlers and not ours:
        return  # configured by someone else (an embedding application)
    handler = ours[0] if ours else logging.StreamHandler(sys.stderr)
    handler._tacoq_cli = True  # type: ignore[attr-defined]
    handler.setFormatter(_RedactingFormatter(_DETAILED if verbose else _BRIEF))
    if not ours:
        logger.addHandler(handler)
    logger.setLevel(logging.INFO if verbose else logging.WARNING)
    logger.propagate = False
