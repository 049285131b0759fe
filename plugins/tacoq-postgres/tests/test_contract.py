"""The core store contract suite, unchanged, against the real Postgres."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tacoq.contracts.store import Store
from tacoq.plugins import get_plugin_host
from tacoq.testing.store_contract import OpenStore, StoreContract
from tacoq_postgres.store import PostgresStore
from tacoq_postgres.testing import drop_schemas


class TestPostgresStore(StoreContract):
    """Every test runs in a fresh namespace, hence a fresh schema, dropped afterwards."""

    @pytest.fixture
    def store_url(self, pg_url: str) -> str:
        """The real Postgres (``TACOQ_TEST_POSTGRES_URL``)."""
        return pg_url

    @pytest.fixture
    async def open_store(self, store_url: str, namespace: str) -> AsyncIterator[OpenStore]:
        """The suite's factory, plus dropping the schema of every namespace it opened."""
        opened: list[Store] = []
        default = namespace

        async def open_(namespace: str | None = None) -> Store:
            store = get_plugin_host().create_store(store_url, namespace=namespace or default)
            await store.connect()
            opened.append(store)
            return store

        yield open_
        for store in opened:
            await store.close()
        schemas = [store.schema for store in opened if isinstance(store, PostgresStore)]
        await drop_schemas(store_url, schemas)

    async def test_created_by_the_plugin_host(self, store: Store) -> None:
        """The ``postgresql`` scheme resolves to this plugin's store."""
        assert isinstance(store, PostgresStore)
