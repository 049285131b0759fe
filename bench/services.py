"""Where the benchmark's services are, and whether they answer (shared by every scenario)."""

from __future__ import annotations

import os
import socket
from collections.abc import Sequence
from urllib.parse import urlsplit

from bench.harness import SkipScenario

__all__ = ["amqp_url", "env_url", "postgres_url", "require_port"]

DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"
DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"


def env_url(variables: Sequence[str], default: str) -> str:
    """The first of ``variables`` that is set, else ``default``."""
    for name in variables:
        value = os.environ.get(name, "").strip()
        if value:
            return value
    return default


def amqp_url() -> str:
    """RabbitMQ: ``TACOQ_BENCH_AMQP_URL``, else ``TACOQ_TEST_AMQP_URL``, else the local one."""
    return env_url(("TACOQ_BENCH_AMQP_URL", "TACOQ_TEST_AMQP_URL"), DEFAULT_AMQP_URL)


def postgres_url() -> str:
    """Postgres: ``TACOQ_BENCH_POSTGRES_URL``, else ``TACOQ_TEST_POSTGRES_URL``, else local."""
    return env_url(("TACOQ_BENCH_POSTGRES_URL", "TACOQ_TEST_POSTGRES_URL"), DEFAULT_POSTGRES_URL)


def require_port(service: str, url: str, default_port: int) -> None:
    """Raise :class:`SkipScenario` unless ``url``'s host accepts a TCP connection."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or default_port
    try:
        with socket.create_connection((host, port), timeout=2):
            return
    except OSError as exc:
        raise SkipScenario(f"{service} is unreachable at {host}:{port} ({exc})") from None
