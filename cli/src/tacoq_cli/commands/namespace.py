"""``tacoq namespace delete NAME``: delete what TacoQ made for a namespace.

The broker's queues and exchanges go first, then the store's tables or schema
(``Broker.delete_namespace``, ``Store.delete_namespace``; docs/architecture.md, "Namespaces").
AMQP cannot list queues without RabbitMQ's management plugin, so the worker queues to delete are
those of every worker kind the store names (``Store.worker_kinds``) and each ``--kind``. The
command refuses while a relay or a worker consumes there (they would declare it all again),
unless ``--force``, and asks before deleting unless ``--yes``; without a terminal to ask on it
refuses instead. The heavy modules (the plugin host, the clients) are imported inside.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

import typer

from tacoq.errors import ConfigError, TacoqError
from tacoq_cli.helptext import plain_help
from tacoq_cli.options import BrokerOption, StoreOption

if TYPE_CHECKING:
    from tacoq.contracts.broker import Broker
    from tacoq.contracts.store import Store

__all__ = ["NamespaceInUse", "app", "check_name", "delete", "register"]

app = typer.Typer(no_args_is_help=True)


@app.callback()
def _group() -> None:
    """Namespaces: delete one, with its queues, exchanges and tables.

    Examples:

    \b
      tacoq namespace delete demo-1a2b3c4d --yes
    """


NameArgument = Annotated[
    str, typer.Argument(metavar="NAME", help="The namespace to delete.", show_default=False)
]
KindOption = Annotated[
    list[str] | None,
    typer.Option(
        "--kind",
        "-k",
        metavar="KIND",
        help="A worker kind whose queue to delete too (repeatable); the store's are found.",
        show_default=False,
    ),
]
YesOption = Annotated[
    bool, typer.Option("--yes", "-y", help="Delete without asking.", show_default=False)
]
ForceOption = Annotated[
    bool,
    typer.Option(
        "--force",
        help="Delete even while a relay or worker consumes the namespace's queues.",
        show_default=False,
    ),
]


class NamespaceInUse(TacoqError):
    """A relay or a worker consumes the namespace's queues (``--force`` deletes anyway)."""


def check_name(name: str) -> str:
    """``name`` if it is a namespace (1-63 of letters, digits, ``_ . -``), else raise
    :class:`ConfigError`. Never falls back to ``TACOQ_NAMESPACE``: an empty name is a mistake,
    not a request for the default."""
    from tacoq.config import resolve_namespace

    if not name:
        raise ConfigError("the namespace to delete is empty: name it (NAME)")
    return resolve_namespace(name)


def _check_kinds(kinds: list[str]) -> list[str]:
    from tacoq.model.wire import kind_problem, quoted

    for kind in kinds:
        if (problem := kind_problem(kind)) is not None:
            raise ConfigError(f"--kind {problem}: {quoted(kind)}")
    return list(dict.fromkeys(kinds))


@dataclass
class Target:
    """The namespace, and the broker and store (not connected) to delete it from."""

    namespace: str
    broker: Broker | None
    store: Store | None

    def describe(self) -> str:
        """Where the namespace is deleted from, credentials hidden."""
        from tacoq.config import redact_url

        places = [f"{what} {redact_url(side.url)}" for what, side in self._sides()]
        return " and ".join(places)

    def _sides(self) -> list[tuple[str, Broker | Store]]:
        sides: list[tuple[str, Broker | Store]] = []
        if self.broker is not None:
            sides.append(("broker", self.broker))
        if self.store is not None:
            sides.append(("store", self.store))
        return sides


def _target(namespace: str, broker_url: str | None, store_url: str | None) -> Target:
    from tacoq.config import redact_url
    from tacoq.plugins import get_plugin_host

    if not broker_url and not store_url:
        raise ConfigError(
            "say where to delete the namespace from: --broker URL (or TACOQ_BROKER_URL), "
            "--store URL (or TACOQ_STORE_URL), or both"
        )
    host = get_plugin_host()
    broker = host.create_broker(broker_url, namespace=namespace) if broker_url else None
    store = host.create_store(store_url, namespace=namespace) if store_url else None
    for side in (broker, store):
        if side is not None and side.in_process:
            raise ConfigError(
                f"{redact_url(side.url)} lives inside one process: there is no namespace to "
                "delete from here"
            )
    return Target(namespace, broker, store)


async def _worker_kinds(target: Target, given: list[str]) -> list[str]:
    """The store's worker kinds and the given ones, sorted."""
    known = await target.store.worker_kinds() if target.store is not None else []
    return sorted(set(known) | set(given))


async def _check_idle(target: Target, kinds: list[str]) -> None:
    """Raise :class:`NamespaceInUse` when a consumer is on the relay's or a worker queue."""
    from tacoq.contracts.broker import RELAY_QUEUE, worker_queue

    if target.broker is None:
        return
    busy: list[str] = []
    for queue in [RELAY_QUEUE, *(worker_queue(kind) for kind in kinds)]:
        count = await target.broker.consumer_count(queue)
        if count:
            who = "a relay is running" if queue == RELAY_QUEUE else "a worker is running"
            busy.append(f"{count} consumer(s) on {queue} ({who})")
    if busy:
        raise NamespaceInUse(
            f"namespace {target.namespace} is in use: {'; '.join(busy)}. Stop them first, or "
            "pass --force to delete it anyway"
        )


async def _delete(target: Target, kinds: list[str]) -> list[str]:
    """Delete from the broker, then from the store; what was deleted."""
    deleted: list[str] = []
    if target.broker is not None:
        deleted += await target.broker.delete_namespace(kinds)
    if target.store is not None:
        deleted += await target.store.delete_namespace()
    return deleted


def _confirm(target: Target, kinds: list[str]) -> bool:
    shown = ", ".join(kinds) if kinds else "none known"
    return typer.confirm(
        f"Delete namespace {target.namespace} from the {target.describe()}, with every task "
        f"and message in it (worker kinds: {shown})? This cannot be undone",
        default=False,
    )


@app.command("delete")
def delete(
    name: NameArgument,
    broker: BrokerOption = None,
    store: StoreOption = None,
    kind: KindOption = None,
    yes: YesOption = False,
    force: ForceOption = False,
) -> None:
    """Delete a namespace: its queues and exchanges on the broker, then its tables or schema
    in the store, with every task and message in them. Prints what it deleted.

    Give the broker, the store or both; only those given are cleaned. AMQP cannot list
    queues, so the worker queues deleted are those of the worker kinds the store names and of
    each --kind. Asks first unless --yes, and refuses without a terminal to ask on. Refuses
    (exit 1) while a consumer is attached to the namespace's relay queue or a worker queue (a
    relay or a worker is running and would declare it all again) unless --force. A namespace
    that does not exist is not an error: there is nothing to delete.

    Examples:

    \b
      tacoq namespace delete demo-1a2b3c4d --yes
      tacoq namespace delete staging --broker amqp://mq/ \\
          --store postgresql://db/ --kind images
      tacoq namespace delete old --store sqlite:///t.db --yes
    """
    import asyncio

    namespace = check_name(name)
    kinds = _check_kinds(kind or [])
    target = _target(namespace, broker, store)
    if not yes and not sys.stdin.isatty():
        raise ConfigError(
            f"refusing to delete namespace {namespace} without a terminal to confirm: pass --yes"
        )

    async def survey() -> list[str]:
        found = await _worker_kinds(target, kinds)
        if not force:
            await _check_idle(target, found)
        return found

    kinds = asyncio.run(survey())
    if not yes and not _confirm(target, kinds):
        typer.echo("nothing deleted")
        raise typer.Exit(1)
    deleted = asyncio.run(_delete(target, kinds))
    if not deleted:
        typer.echo(f"nothing to delete: namespace {namespace} does not exist there")
        return
    for what in deleted:
        typer.echo(f"deleted {what}")
    typer.echo(f"deleted namespace {namespace} ({len(deleted)} in all)")


def register(root: typer.Typer) -> None:
    """Add ``tacoq namespace`` to ``root``."""
    root.add_typer(plain_help(app), name="namespace")
