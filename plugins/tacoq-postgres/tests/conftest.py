"""Fixtures of the Postgres plugin's tests: URLs with a per-test ``application_name``, stores in
fresh schemas that are dropped afterwards. The service URL comes from the repository-wide
``postgres_url`` fixture (``TACOQ_TEST_POSTGRES_URL``); helpers live in
:mod:`tacoq_postgres.testing`."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from tacoq.testing import fresh_namespace
from tacoq_postgres.store import PostgresStore
from tacoq_postgres.testing import MakeStore, drop_schemas, with_params


@pytest.fixture
def app_name() -> str:
    """An ``application_name`` only this test's sessions use."""
    return f"tacoq-test-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def pg_url(postgres_url: str, app_name: str) -> str:
    """The service URL, tagged with this test's ``application_name``."""
    return with_params(postgres_url, application_name=app_name)


@pytest.fixture
async def make_store(pg_url: str) -> AsyncIterator[MakeStore]:
    """A factory of stores; every store is closed and its schema dropped after the test."""
    opened: list[PostgresStore] = []
    default_namespace = fresh_namespace("pg")

    async def make(
        namespace: str | None = None, *, url: str | None = None, connect: bool = True
    ) -> PostgresStore:
        store = PostgresStore(url or pg_url, namespace=namespace or default_namespace)
        opened.append(store)
        if connect:
            await store.connect()
        return store

    yield make
    for store in opened:
        await store.close()
    await drop_schemas(pg_url, (store.schema for store in opened))


@pytest.fixture
async def pg(make_store: MakeStore) -> PostgresStore:
    """A connected store in a fresh schema."""
    return await make_store()
