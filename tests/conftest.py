"""Fixtures of the cross-package tests (the services' own come from the root conftest)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest


@pytest.fixture(scope="session")
def forget_namespace(amqp_url: str, postgres_url: str) -> Callable[[str], None]:
    """``forget_namespace(ns)`` deletes a namespace's RabbitMQ queues and exchanges (one queue
    per worker kind its tasks name) and its Postgres schema, once a test is done with it."""
    from tacoq_postgres.settings import schema_for_namespace
    from tacoq_postgres.testing import drop_schemas, worker_kinds_in
    from tacoq_rabbit.link import delete_namespace

    def forget(namespace: str) -> None:
        kinds = asyncio.run(worker_kinds_in(postgres_url, namespace))
        asyncio.run(delete_namespace(amqp_url, namespace, kinds))
        asyncio.run(drop_schemas(postgres_url, [schema_for_namespace(namespace)]))

    return forget
