"""Helpers shared by the RabbitMQ tests (the ``amqp_url`` fixture comes from the root conftest)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest_asyncio

from tacoq.testing import fresh_namespace
from tacoq_rabbit.link import delete_namespace

#: Worker kinds the tests use; their queues are deleted with the namespace.
TEST_KINDS = ("contract", "late", "work", "e2e", "prio", "demo", "poison")

NewNamespace = Callable[..., str]


@pytest_asyncio.fixture
async def namespaces(amqp_url: str) -> AsyncIterator[NewNamespace]:
    """``namespaces(prefix)`` makes fresh namespaces, all deleted from RabbitMQ afterwards."""
    made: list[str] = []

    def make(prefix: str = "rabbit") -> str:
        made.append(fresh_namespace(prefix))
        return made[-1]

    yield make
    for namespace in made:
        await delete_namespace(amqp_url, namespace, TEST_KINDS)
