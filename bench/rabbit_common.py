"""What the RabbitMQ scenarios share: the broker URL, a reachability check, namespaces.

The URL is ``TACOQ_BENCH_AMQP_URL``, else ``TACOQ_TEST_AMQP_URL``, else the local default. Every
measurement works in a namespace of its own and deletes it afterwards.
"""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from urllib.parse import urlsplit

from bench.harness import SkipScenario

DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"
#: The worker kind the RabbitMQ scenarios publish to.
BENCH_KIND = "bench"
#: Confirms in flight for the publish scenario, and the drain's concurrency / prefetch.
IN_FLIGHT = 100


def amqp_url() -> str:
    """The RabbitMQ the scenarios use."""
    for name in ("TACOQ_BENCH_AMQP_URL", "TACOQ_TEST_AMQP_URL"):
        value = os.environ.get(name, "").strip()
        if value:
            return value
    return DEFAULT_AMQP_URL


def require_rabbitmq(url: str) -> None:
    """Raise :class:`SkipScenario` unless RabbitMQ's port accepts a TCP connection."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 5672
    try:
        with socket.create_connection((host, port), timeout=2):
            return
    except OSError as exc:
        raise SkipScenario(f"RabbitMQ is unreachable at {host}:{port} ({exc})") from None


def fresh_namespace(prefix: str) -> str:
    """A namespace no other run uses."""
    return f"bench-{prefix}-{uuid.uuid4().hex[:10]}"


def delete_namespace(url: str, namespace: str) -> None:
    """Delete the namespace's queues and exchanges (the bench kind included)."""
    from tacoq_rabbit.link import delete_namespace as delete

    asyncio.run(delete(url, namespace, [BENCH_KIND]))
