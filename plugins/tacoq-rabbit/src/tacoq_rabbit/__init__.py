"""TacoQ's RabbitMQ broker plugin (``amqp://`` and ``amqps://``).

``SyncRabbitPublisher`` (pika, for code without an event loop) is imported lazily, so importing
this package loads no AMQP client.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tacoq_rabbit.sync_publisher import SyncRabbitPublisher

__all__ = ["SyncRabbitPublisher"]


def __getattr__(name: str) -> Any:
    if name == "SyncRabbitPublisher":
        from tacoq_rabbit.sync_publisher import SyncRabbitPublisher

        return SyncRabbitPublisher
    raise AttributeError(f"module 'tacoq_rabbit' has no attribute {name!r}")
