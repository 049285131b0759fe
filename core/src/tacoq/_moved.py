"""Import paths that moved when the core was laid out by role, kept for one release.

``import tacoq.models`` (or any path below) still works: it gives the module at its new place,
with a ``DeprecationWarning`` naming it. The two modules that were split (``tacoq.serializers``,
``tacoq.runner``) are small modules of their own next to this one. Installed by
``tacoq/__init__.py``; goes with the next release (CHANGELOG.md).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import warnings
from collections.abc import Sequence
from types import ModuleType

__all__ = ["MOVED", "install"]

#: Old module path -> new one.
MOVED = {
    "tacoq.broker": "tacoq.contracts.broker",
    "tacoq.client": "tacoq.relay.client",
    "tacoq.context": "tacoq.worker.context",
    "tacoq.cursors": "tacoq.contracts.cursors",
    "tacoq.events": "tacoq.contracts.lifecycle",
    "tacoq.handler_call": "tacoq.worker.handler_call",
    "tacoq.handler_pool": "tacoq.worker.handler_pool",
    "tacoq.hookspecs": "tacoq.contracts.hookspecs",
    "tacoq.merge": "tacoq.model.merge",
    "tacoq.models": "tacoq.model.task",
    "tacoq.publisher": "tacoq.publishing.publisher",
    "tacoq.replies": "tacoq.publishing.replies",
    "tacoq.retry": "tacoq.worker.retry",
    "tacoq.shutdown": "tacoq.worker.shutdown",
    "tacoq.store": "tacoq.contracts.store",
    "tacoq.strict_json": "tacoq.model.strict_json",
    "tacoq.updates": "tacoq.worker.updates",
    "tacoq.wire": "tacoq.model.wire",
    "tacoq.worker_report": "tacoq.worker.report",
    "tacoq.worker_runtime": "tacoq.worker.runtime",
}


class _Alias(importlib.abc.Loader):
    """Loads an old path as the module at its new place (the same module object)."""

    def __init__(self, new: str) -> None:
        self.new = new

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        warnings.warn(
            f"{spec.name} is deprecated: import {self.new} instead (the old path goes in the "
            "next release)",
            DeprecationWarning,
            stacklevel=2,
        )
        return importlib.import_module(self.new)

    def exec_module(self, module: ModuleType) -> None:
        """Nothing to run: the module is the new one, already imported."""


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        new = MOVED.get(fullname)
        if new is None:
            return None
        return importlib.machinery.ModuleSpec(fullname, _Alias(new))


def install() -> None:
    """Make the old paths importable (once per process)."""
    if not any(isinstance(finder, _Finder) for finder in sys.meta_path):
        sys.meta_path.append(_Finder())
