"""The namespace ``tacoq demo`` runs in: refused when another relay serves it, removed after.

Before publishing anything the demo asks the broker whether a consumer is attached to the
namespace's relay queue (``Broker.consumer_count``): another relay would take half the demo's
events and the demo would wait for completions it never sees. When the run ends (success,
failure or Ctrl-C) it deletes the namespace from the broker and the store
(``delete_namespace``), unless ``--keep`` is given, the namespace already existed before the
demo (its relay queue, or tasks in the store: someone else's), or a backend lives in this
process (``memory://`` goes with it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from tacoq.errors import TacoqError

if TYPE_CHECKING:
    from tacoq.contracts.broker import Broker
    from tacoq.contracts.store import Store
    from tacoq.plugins import PluginHost

__all__ = ["DemoNamespace", "NamespaceBusy"]


class NamespaceBusy(TacoqError):
    """Another relay consumes the namespace's relay queue."""


@dataclass
class DemoNamespace:
    """The demo's namespace on its broker and store (neither connected here)."""

    namespace: str
    broker: Broker
    store: Store
    #: Why the namespace stays after the run (``None``: it is removed).
    kept: str | None = None
    #: What was deleted when the run ended.
    removed: list[str] = field(default_factory=list)

    @classmethod
    async def claim(
        cls, host: PluginHost, broker_url: str, store_url: str, namespace: str, *, keep: bool
    ) -> DemoNamespace:
        """Check the namespace is free (raise :class:`NamespaceBusy` when a relay serves it)
        and decide whether it is removed after the run."""
        from tacoq.contracts.broker import RELAY_QUEUE

        broker = host.create_broker(broker_url, namespace=namespace)
        store = host.create_store(store_url, namespace=namespace)
        relays = await broker.consumer_count(RELAY_QUEUE)
        if relays:
            raise NamespaceBusy(
                f"namespace {namespace} is served by another relay ({relays} consumer(s) on its "
                "relay queue), which would take the demo's events: pass another --namespace, "
                "or none for one of the demo's own"
            )
        claimed = cls(namespace, broker, store)
        if broker.in_process and store.in_process:
            claimed.kept = "in this process only"  # memory:// goes with the process
        elif keep:
            claimed.kept = "--keep"
        elif relays is not None or (not store.in_process and await store.worker_kinds()):
            claimed.kept = "it existed before the demo"
        return claimed

    async def release(self, worker_kinds: list[str]) -> None:
        """Delete the namespace from each backend outside this process, unless it is kept;
        a failure is kept as the reason (:attr:`kept`) rather than raised."""
        if self.kept is not None:
            return
        try:
            if not self.broker.in_process:
                self.removed += await self.broker.delete_namespace(worker_kinds)
            if not self.store.in_process:
                self.removed += await self.store.delete_namespace()
        except TacoqError as exc:
            self.kept = f"removing it failed: {exc}"

    def describe(self) -> str:
        """One line on what became of the namespace."""
        if self.kept is None:
            count = len(self.removed)
            return f"removed namespace {self.namespace} ({count} queues, exchanges and tables)"
        if self.broker.in_process and self.store.in_process:
            return f"namespace {self.namespace} lived in this process only"
        return (
            f"kept namespace {self.namespace} ({self.kept}); `tacoq namespace delete "
            f"{self.namespace}` removes it"
        )
