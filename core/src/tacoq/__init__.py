"""TacoQ: a plugin-first task queue for Python.

The public API lives here; see the README for a quickstart and ``docs/`` for guides. Names are
imported on first use, so ``import tacoq`` (and ``tacoq --help``) stays fast.
"""

from __future__ import annotations

import importlib
from importlib import metadata as _metadata
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tacoq.client import RelayClient as RelayClient
    from tacoq.client import SyncRelayClient as SyncRelayClient
    from tacoq.context import TaskContext as TaskContext
    from tacoq.errors import ConfigError as ConfigError
    from tacoq.errors import HandlerSignatureError as HandlerSignatureError
    from tacoq.errors import PayloadTooLarge as PayloadTooLarge
    from tacoq.errors import PluginError as PluginError
    from tacoq.errors import PublishError as PublishError
    from tacoq.errors import RelayError as RelayError
    from tacoq.errors import RelayUnavailable as RelayUnavailable
    from tacoq.errors import SerializationError as SerializationError
    from tacoq.errors import StoreUnavailable as StoreUnavailable
    from tacoq.errors import TacoqError as TacoqError
    from tacoq.errors import TaskFailed as TaskFailed
    from tacoq.errors import UnknownSchemeError as UnknownSchemeError
    from tacoq.hookspecs import hookimpl as hookimpl
    from tacoq.models import ErrorInfo as ErrorInfo
    from tacoq.models import Payload as Payload
    from tacoq.models import Task as Task
    from tacoq.models import TaskStatus as TaskStatus
    from tacoq.publisher import Publisher as Publisher
    from tacoq.publisher import SyncPublisher as SyncPublisher
    from tacoq.relay.engine import RelayEngine as RelayEngine
    from tacoq.worker import TaskDef as TaskDef
    from tacoq.worker import WorkerApp as WorkerApp

_LAZY = {
    "RelayClient": "tacoq.client",
    "SyncRelayClient": "tacoq.client",
    "TaskContext": "tacoq.context",
    "ConfigError": "tacoq.errors",
    "HandlerSignatureError": "tacoq.errors",
    "PayloadTooLarge": "tacoq.errors",
    "PluginError": "tacoq.errors",
    "PublishError": "tacoq.errors",
    "RelayError": "tacoq.errors",
    "RelayUnavailable": "tacoq.errors",
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
