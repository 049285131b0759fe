"""What the RabbitMQ scenarios share: the broker URL, a reachability check, namespaces.

The URL is ``TACOQ_BENCH_AMQP_URL``, else ``TACOQ_TEST_AMQP_URL``, else the local default. Every
measurement works in a namespace of its own and deletes it afterwards.
"""

from __future__ import annotations

import asyncio
import uuid

from bench.services import amqp_url as amqp_url  # re-exported for the scenarios
from bench.services import require_port

#: The worker kind the RabbitMQ scenarios publish to.
BENCH_KIND = "bench"
#: Confirms in flight for the publish scenario, and the drain's concurrency / prefetch.
IN_FLIGHT = 100


def require_rabbitmq(url: str) -> None:
    """Raise :class:`SkipScenario` unless RabbitMQ's port accepts a TCP connection."""
    require_port("RabbitMQ", url, 5672)


def fresh_namespace(prefix: str) -> str:
    """A namespace no other run uses."""
    return f"bench-{prefix}-{uuid.uuid4().hex[:10]}"


def delete_namespace(url: str, namespace: str) -> None:
    """Delete the namespace's queues and exchanges (the bench kind included)."""
    from tacoq_rabbit.link import delete_namespace as delete

    asyncio.run(delete(url, namespace, [BENCH_KIND]))
