"""What the Postgres scenarios share: the database URL, a reachability check, schemas.

The URL is ``TACOQ_BENCH_POSTGRES_URL``, else ``TACOQ_TEST_POSTGRES_URL``, else the local
default. Every measurement works in a namespace (so a schema) of its own and drops it
afterwards.
"""

from __future__ import annotations

import asyncio
import uuid

from bench.services import postgres_url as postgres_url  # re-exported for the scenarios
from bench.services import require_port


def require_postgres(url: str) -> None:
    """Raise :class:`SkipScenario` unless Postgres's port accepts a TCP connection."""
    require_port("PostgreSQL", url, 5432)


def fresh_namespace(prefix: str) -> str:
    """A namespace (and so a schema) no other run uses: lower-case, so the schema is
    ``tacoq_<namespace>``."""
    return f"bench_{prefix}_{uuid.uuid4().hex[:10]}"


def schema_of(url: str, namespace: str) -> str:
    """The schema a store of ``url`` uses for ``namespace``."""
    from tacoq_postgres.settings import parse_store_url

    return parse_store_url(url, namespace).schema


def conninfo_of(url: str) -> str:
    """The libpq connection string of a store URL (TacoQ's own parameters removed)."""
    from tacoq_postgres.settings import parse_store_url

    return parse_store_url(url, "bench").conninfo


def drop_schema(url: str, namespace: str) -> None:
    """Drop the namespace's schema and everything in it (a missing one is fine)."""
    from tacoq_postgres.testing import drop_schemas

    asyncio.run(drop_schemas(url, [schema_of(url, namespace)]))


async def create_schema(url: str, namespace: str) -> str:
    """Create the namespace's schema with TacoQ's migrations (its ``tasks`` table); its name."""
    from tacoq_postgres.store import PostgresStore

    store = PostgresStore(url, namespace=namespace)
    await store.connect()
    await store.close()
    return store.schema
