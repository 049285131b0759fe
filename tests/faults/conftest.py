"""Fixtures of the fault suite: one :class:`~.harness.Scene` per scenario, cleaned up after.

Whatever a scenario did, its teardown kills the processes it started, makes sure RabbitMQ and
Postgres answer again (starting them if a scenario left one down, failing loudly otherwise),
then deletes the namespace's queues and schema.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio

from .harness import Scene, ensure_services


@pytest_asyncio.fixture
async def scene(amqp_url: str, postgres_url: str, tmp_path: Path) -> AsyncIterator[Scene]:
    """A fresh scenario world; services checked up before and after."""
    ensure_services(amqp_url, postgres_url)
    world = Scene(amqp_url, postgres_url, tmp_path)
    try:
        yield world
    finally:
        world.stop_all()
        ensure_services(amqp_url, postgres_url)
        await world.cleanup()
