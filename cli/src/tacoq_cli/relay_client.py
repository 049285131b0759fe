"""The relay client of the commands that talk to the relay (``tacoq task …``, ``tacoq
publish``, ``tacoq dlq …``, ``tacoq workers``, ``tacoq kinds``), made from their shared options,
and the task ids and kinds they take.

``--relay URL`` (``TACOQ_RELAY_URL``) names the relay and ``--token`` (``TACOQ_RELAY_TOKEN``) its
bearer token; ``--relay-url``, the old spelling of ``--relay``, still works for one release with
a ``warning:`` line, and giving both spellings is a usage error.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from uuid import UUID

import typer

from tacoq.errors import ConfigError
from tacoq.model.wire import kind_problem, quoted

if TYPE_CHECKING:
    from tacoq.relay.client import SyncRelayClient

__all__ = ["kind_filter", "open_client", "parse_task_id", "relay_address"]


def parse_task_id(text: str) -> UUID:
    """A task id from the command line; a one-line ConfigError when it is not a UUID."""
    try:
        return UUID(text.strip())
    except ValueError:
        raise ConfigError(f"{quoted(text)} is not a task id (expected a UUID)") from None


def kind_filter(name: str, value: str | None) -> str | None:
    """``value`` of a kind option or argument ``name`` (``--worker-kind``, ``WORKER_KIND``), or
    a one-line ConfigError naming it when no kind can be it (empty, NUL, over 255 characters)."""
    problem = None if value is None else kind_problem(value)
    if problem is not None:
        raise ConfigError(f"{name} {problem}: {quoted(value)}")
    return value


def relay_address(ctx: typer.Context, relay: str | None, relay_url: str | None) -> str | None:
    """The relay URL from a command's ``--relay`` and deprecated ``--relay-url`` options
    (``None``: the client's default, ``http://127.0.0.1:8080``).

    ``--relay-url`` on the command line wins over ``TACOQ_RELAY_URL``, as any option does;
    both spellings on the command line are a usage error (a ConfigError).
    """
    if relay_url is None:
        return relay
    source = ctx.get_parameter_source("relay")
    if relay is not None and (source is None or source.name == "COMMANDLINE"):
        raise ConfigError(f"--relay and --relay-url (its old spelling) were both given: give "
                          f"--relay only (see `{ctx.command_path} --help`)")  # fmt: skip
    return relay_url


def open_client(
    ctx: typer.Context, relay: str | None, token: str | None, relay_url: str | None = None
) -> SyncRelayClient:
    """The blocking relay client of a command, from its ``--relay``, ``--token`` and
    ``--relay-url`` options (``ctx`` tells where ``--relay`` came from)."""
    from tacoq.relay.client import SyncRelayClient

    return SyncRelayClient(relay_address(ctx, relay, relay_url), token=token)
