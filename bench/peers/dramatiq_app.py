"""The Dramatiq app of the peer scenarios: one no-op actor, configured from the environment.

``BENCH_PEER_QUEUE`` names the actor's queue (Dramatiq adds ``.DQ`` and ``.XQ``). With
``BENCH_PEER_RESULTS`` (a ``postgresql://`` URL) Dramatiq's ``Results`` middleware stores every
result through :class:`PostgresBackend`, in table ``results`` of schema ``BENCH_PEER_SCHEMA``
(Dramatiq ships no Postgres backend; this one is written for the bench). Without it, nothing is
stored and the actor counts itself in the tally file (:mod:`bench.peers.tally`). The broker is
Dramatiq's ``RabbitmqBroker`` with its default middleware; the worker runs ``dramatiq
bench.peers.dramatiq_app --processes 1 --threads 8``.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

import dramatiq
import psycopg
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from dramatiq.results import Results, ResultTimeout
from dramatiq.results.backend import DEFAULT_TIMEOUT, Missing, ResultBackend

from bench.peers.tally import tally

QUEUE = os.environ.get("BENCH_PEER_QUEUE", "bench-dramatiq")
RESULTS = os.environ.get("BENCH_PEER_RESULTS", "")
SCHEMA = os.environ.get("BENCH_PEER_SCHEMA", "public")


class PostgresBackend(ResultBackend):  # type: ignore[misc]
    """Dramatiq results in Postgres: a row per message key, written in one round trip with a
    ``pg_notify`` of the key; a blocking get LISTENs, so it wakes on the write, never on a
    timer. One autocommit connection per thread. The table is made by
    :func:`bench.peers.systems.DramatiqSystem.prepare`:
    ``results (key text PRIMARY KEY, data bytea, expires_at timestamptz)``."""

    def __init__(self, url: str, schema: str, **options: Any) -> None:
        super().__init__(**options)
        self.url, self.table, self.channel = url, f'"{schema}".results', f"{schema}_results"
        self._local = threading.local()

    def _conn(self) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is None or conn.closed:
            conn = self._local.conn = psycopg.connect(self.url, autocommit=True)
        return conn

    def _store(self, message_key: str, result: Any, ttl: int) -> None:
        self._conn().execute(
            f"WITH stored AS (INSERT INTO {self.table} VALUES (%s, %s, now() + %s * interval "
            "'1 ms') ON CONFLICT (key) DO UPDATE SET data = excluded.data, expires_at = "
            "excluded.expires_at) SELECT pg_notify(%s, %s)",
            (message_key, self.encoder.encode(result), ttl, self.channel, message_key),
        )

    def _get(self, message_key: str) -> Any:
        sql = f"SELECT data FROM {self.table} WHERE key = %s"
        row = self._conn().execute(sql, (message_key,)).fetchone()
        return Missing if row is None else self.encoder.decode(bytes(row[0]))

    def get_result(self, message: Any, *, block: bool = False, timeout: int | None = None) -> Any:
        """The result; with ``block``, wait up to ``timeout`` ms for its NOTIFY."""
        if not block:
            return super().get_result(message)
        key, conn = self.build_message_key(message), self._conn()
        deadline = time.monotonic() + (timeout or DEFAULT_TIMEOUT) / 1000
        conn.execute(f"LISTEN {self.channel}")
        while (result := self._get(key)) is Missing:
            if (remaining := deadline - time.monotonic()) <= 0:
                raise ResultTimeout(message)
            for _ in conn.notifies(timeout=remaining, stop_after=1):
                pass
        return self.unwrap_result(result)


broker = RabbitmqBroker(url=os.environ.get("BENCH_PEER_AMQP", "amqp://127.0.0.1"))
if RESULTS:
    broker.add_middleware(Results(backend=PostgresBackend(RESULTS, SCHEMA)))
dramatiq.set_broker(broker)


@dramatiq.actor(queue_name=QUEUE, actor_name="noop", **({"store_results": True} if RESULTS else {}))
def noop(value: Any) -> None:
    """Do nothing (but count, when no result is stored)."""
    if not RESULTS:
        tally()
