"""TacoQ: a plugin-first task queue for Python.

The public API lives here; see the README for a quickstart and ``docs/`` for guides. Names are
imported on first use, so ``import tacoq`` (and ``tacoq --help``) stays fast.
"""

from __future__ import annotations

import importlib
from importlib import metadata as _metadata
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tacoq.context import TaskContext
    from tacoq.errors import (
        ConfigError,
        PayloadTooLarge,
        PluginError,
        PublishError,
        SerializationError,
        StoreUnavailable,
        TacoqError,
        TaskFailed,
        UnknownSchemeError,
    )
    from tacoq.hookspecs import hookimpl
    from tacoq.models import ErrorInfo, Payload, Task, TaskStatus
    from tacoq.publisher import Publisher, SyncPublisher
    from tacoq.relay.engine import RelayEngine
    from tacoq.worker import TaskDef, WorkerApp

_LAZY = {
    "TaskContext": "tacoq.context",
    "ConfigError": "tacoq.errors",
    "PayloadTooLarge": "tacoq.errors",
    "PluginError": "tacoq.errors",
    "PublishError": "tacoq.errors",
    "SerializationError": "tacoq.errors",
    "StoreUnavailable": "tacoq.errors",
    "TacoqError": "tacoq.errors",
    "TaskFailed": "tacoq.errors",
    "UnknownSchemeError": "tacoq.errors",
    "hookimpl": "tacoq.hookspecs",
    "ErrorInfo": "tacoq.models",
    "Payload": "tacoq.models",
    "Task": "tacoq.models",
    "TaskStatus": "tacoq.models",
    "Publisher": "tacoq.publisher",
    "SyncPublisher": "tacoq.publisher",
    "RelayEngine": "tacoq.relay.engine",
    "TaskDef": "tacoq.worker",
    "WorkerApp": "tacoq.worker",
}

try:
    __version__ = _metadata.version("tacoq-core")
except _metadata.PackageNotFoundError:  # running from a source tree without installing
    __version__ = "0.0.0+unknown"


def __getattr__(name: str) -> Any:
    try:
        module = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'tacoq' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])


__all__ = [*sorted(_LAZY), "__version__"]
