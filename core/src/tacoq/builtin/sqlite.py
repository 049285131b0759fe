"""Built-in plugin: the ``sqlite:///PATH`` store (stdlib sqlite3, off the event loop)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from tacoq.contracts.hookspecs import hookimpl

if TYPE_CHECKING:
    from tacoq.contracts.store import Store


def sqlite_store(url: str, *, namespace: str) -> Store:
    """Make a SQLite store for ``sqlite:///relative/path`` or ``sqlite:////absolute/path``."""
    from tacoq.builtin.sqlite_store import SqliteStore

    return SqliteStore(url, namespace=namespace)


@hookimpl(trylast=True)
def tacoq_store_schemes() -> Mapping[str, Any]:
    """The ``sqlite`` store scheme."""
    return {"sqlite": sqlite_store}
