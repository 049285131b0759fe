"""The optional context a handler can ask for by annotating a parameter with ``TaskContext``."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING
from uuid import UUID

if TYPE_CHECKING:
    from tacoq.publishing.publisher import Publisher

__all__ = ["TaskContext"]


@dataclass(frozen=True, slots=True)
class TaskContext:
    """What a running handler may want to know about its task and its worker."""

    id: UUID
    task_kind: str
    worker_kind: str
    attempt: int
    priority: int
    worker_name: str
    #: When the handler's time is up (UTC), or ``None`` without a timeout.
    deadline: datetime | None
    #: A logger named after the task kind, for the handler's own messages.
    logger: logging.Logger
    #: The worker's publisher, for follow-up tasks (same broker and namespace).
    publisher: Publisher
