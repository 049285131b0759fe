"""Entry-point module of the ``tacoq-postgres`` plugin: the ``postgresql``/``postgres`` store
schemes and the ``tacoq postgres`` command group.

Import-light: every ``tacoq`` command imports this module, so psycopg (and typer) are imported
only when a store or the command group is made.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from tacoq.contracts.hookspecs import hookimpl

if TYPE_CHECKING:
    from tacoq.contracts.store import Store


def postgres_store(url: str, *, namespace: str) -> Store:
    """Make (but do not connect) a Postgres store; psycopg is imported here."""
    from tacoq_postgres.store import PostgresStore

    return PostgresStore(url, namespace=namespace)


@hookimpl
def tacoq_store_schemes() -> Mapping[str, Any]:
    """The ``postgresql`` and ``postgres`` store schemes."""
    return {"postgresql": postgres_store, "postgres": postgres_store}


@hookimpl
def tacoq_cli_group() -> tuple[str, Any] | None:
    """``tacoq postgres migrate|stats`` (typer is imported here, psycopg inside the commands)."""
    from tacoq_postgres.cli import build_group

    return ("postgres", build_group())
