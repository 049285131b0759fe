"""TacoQ: a plugin-first task queue for Python.

The public API lives here; see the README for a quickstart and ``docs/`` for guides. Names are
imported on first use, so ``import tacoq`` (and ``tacoq --help``) stays fast.
"""

from __future__ import annotations

import importlib
from importlib import metadata as _metadata
from typing import TYPE_CHECKING, Any

from tacoq import _moved
from tacoq.model import task as _task

if TYPE_CHECKING:
    from tacoq.contracts.hookspecs import hookimpl as hookimpl
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
    from tacoq.model.options import PublishOptions as PublishOptions
    from tacoq.model.options import TaskOptions as TaskOptions
    from tacoq.model.task import ErrorInfo as ErrorInfo
    from tacoq.model.task import Payload as Payload
    from tacoq.model.task import Task as Task
    from tacoq.model.task import TaskStatus as TaskStatus
    from tacoq.publishing.publisher import Publisher as Publisher
    from tacoq.publishing.publisher import SyncPublisher as SyncPublisher
    from tacoq.relay.client import RelayClient as RelayClient
    from tacoq.relay.client import SyncRelayClient as SyncRelayClient
    from tacoq.relay.engine import RelayEngine as RelayEngine
    from tacoq.worker.app import TaskDef as TaskDef
    from tacoq.worker.app import WorkerApp as WorkerApp
    from tacoq.worker.context import TaskContext as TaskContext

_LAZY = {
    "RelayClient": "tacoq.relay.client",
    "SyncRelayClient": "tacoq.relay.client",
    "TaskContext": "tacoq.worker.context",
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
    "hookimpl": "tacoq.contracts.hookspecs",
    "PublishOptions": "tacoq.model.options",
    "TaskOptions": "tacoq.model.options",
    "ErrorInfo": "tacoq.model.task",
    "Payload": "tacoq.model.task",
    "Task": "tacoq.model.task",
    "TaskStatus": "tacoq.model.task",
    "Publisher": "tacoq.publishing.publisher",
    "SyncPublisher": "tacoq.publishing.publisher",
    "RelayEngine": "tacoq.relay.engine",
    "TaskDef": "tacoq.worker",
    "WorkerApp": "tacoq.worker",
}

_moved.install()  # the import paths of before the core was laid out by role, for one release


def _serializers() -> _task.PayloadDecoder:
    """The process's serializers (the plugin host's registry), for ``Task.result()``."""
    from tacoq.plugins import get_plugin_host

    return get_plugin_host().serializers


# The model imports no runtime: the composition root tells it where the serializers are.
_task.default_serializers = _serializers

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
