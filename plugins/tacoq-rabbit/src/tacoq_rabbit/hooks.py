"""The ``rabbit`` plugin's hooks: the ``amqp`` and ``amqps`` broker schemes, ``tacoq rabbit``.

Import-light: aio-pika (and pika) are imported only when a broker is created or a command runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from tacoq.contracts.hookspecs import hookimpl

if TYPE_CHECKING:
    from tacoq.contracts.broker import Broker


def rabbit_broker(url: str, *, namespace: str) -> Broker:
    """Make a RabbitMQ broker for an ``amqp://`` or ``amqps://`` URL (not connected yet)."""
    from tacoq_rabbit.broker import RabbitBroker

    return RabbitBroker(url, namespace=namespace)


@hookimpl
def tacoq_broker_schemes() -> Mapping[str, Any]:
    """The ``amqp`` and ``amqps`` broker schemes."""
    return {"amqp": rabbit_broker, "amqps": rabbit_broker}


@hookimpl
def tacoq_cli_group() -> tuple[str, Any]:
    """The ``tacoq rabbit`` command group (typer is imported here, pika only by commands)."""
    from tacoq_rabbit.cli import app

    return "rabbit", app
