"""Built-in plugin: the in-process ``memory://`` broker and store.

Import-light: the implementations are imported by the factories, when a broker or store is made.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from tacoq.contracts.hookspecs import hookimpl

if TYPE_CHECKING:
    from tacoq.contracts.broker import Broker
    from tacoq.contracts.store import Store


def memory_broker(url: str, *, namespace: str) -> Broker:
    """Make an in-process broker; brokers with the same URL share one in-process server."""
    from tacoq.builtin.memory_broker import MemoryBroker

    return MemoryBroker(url, namespace=namespace)


def memory_store(url: str, *, namespace: str) -> Store:
    """Make an in-process store; stores with the same URL and namespace share their rows."""
    from tacoq.builtin.memory_store import MemoryStore

    return MemoryStore(url, namespace=namespace)


@hookimpl(trylast=True)
def tacoq_broker_schemes() -> Mapping[str, Any]:
    """The ``memory`` broker scheme."""
    return {"memory": memory_broker}


@hookimpl(trylast=True)
def tacoq_store_schemes() -> Mapping[str, Any]:
    """The ``memory`` store scheme."""
    return {"memory": memory_store}
