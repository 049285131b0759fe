"""The systems under test: how each is set up, started, watched for its end and cleaned up.

Every measurement makes a fresh :class:`System` (fresh names: RabbitMQ namespace or queues,
Postgres schema), calls :meth:`System.prepare`, and :meth:`System.cleanup` afterwards, which
deletes its queues and exchanges and drops its schema.

End conditions (:meth:`System.finished` counts what must reach N):

- **TacoQ**: rows with ``status = 'COMPLETED'`` in the run's ``tasks`` table, written by the relay
  (``tacoq relay --no-http``, or with HTTP for the latency scenario), which runs throughout;
- **Celery with the Postgres backend**: ``SUCCESS`` rows in its ``celery_taskmeta`` table;
- **Dramatiq with Postgres results**: rows in the run's ``results`` table;
- **a peer without results**: bytes in its tally file (:mod:`bench.peers.tally`): the N-th task
  finished. After the workers stop, a passive declare must show 0 ready messages and 0
  consumers: RabbitMQ requeues what a closed channel left unacknowledged, so nothing was.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from bench.harness import python_command
from bench.peers.common import Counter, Rabbit, fresh_ident, pg_run

#: TacoQ worker concurrency: a no-op async handler keeps 100 in flight cheaply, and the worker
#: batches its acks and status updates across them.
TACOQ_CONCURRENCY = 100
#: TacoQ worker prefetch (4 x concurrency, Celery's default multiplier; TacoQ's default is the
#: concurrency). A worker acks a task only once the broker confirmed the update that completes
#: it, so completed tasks keep window slots until then: under a drain of no-op tasks a window of
#: 100 idles the worker between confirms (docs/worker.md, "Prefetch and throughput").
TACOQ_PREFETCH = 4 * TACOQ_CONCURRENCY
#: Dramatiq worker threads per process (issue 7).
DRAMATIQ_THREADS = 8
#: Tasks per throughput sample of Celery with its Postgres backend (see CelerySystem).
CELERY_PG_TASKS = 1_000


def _script(name: str) -> str:
    """A console script of this interpreter's environment (``celery``, ``dramatiq``, ``tacoq``)."""
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.exists() else name


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class System:
    """One system in one measurement. Subclasses set ``key`` (``tacoq``, ``celery``,
    ``dramatiq``) and ``queue`` (where its tasks wait), and say how to start and count."""

    key = ""
    #: The most tasks one throughput sample of this system uses.
    max_tasks = 1_000_000

    def __init__(self, amqp: str, pg: str, *, results: bool) -> None:
        self.amqp, self.pg, self.results = amqp, pg, results
        self.ident = fresh_ident()
        self.schema = f"bench_{self.key}_{self.ident}"
        self.queue = f"bench-{self.key}-{self.ident}"
        self.tally = ""
        if not results:
            handle, self.tally = tempfile.mkstemp(prefix=f"bench-{self.key}-", suffix=".tally")
            os.close(handle)
        self._counter: Callable[[], int] | None = None

    def env(self) -> dict[str, str]:
        """The environment of every process of the system (apps read their settings here)."""
        return {
            "BENCH_PEER_AMQP": self.amqp,
            "BENCH_PEER_QUEUE": self.queue,
            "BENCH_PEER_RESULTS": self.pg if self.results else "",
            "BENCH_PEER_SCHEMA": self.schema,
            "BENCH_PEER_TALLY": self.tally,
        }

    def prepare(self) -> None:
        """Create what the system needs before any of its processes starts."""
        if self.results:
            pg_run(self.pg, f'CREATE SCHEMA "{self.schema}"')

    def helpers(self, http_port: int | None = None) -> list[tuple[str, list[str]]]:
        """Processes that run beside the workers (TacoQ's relay), as ``(name, argv)``."""
        return []

    def helpers_ready(self, rabbit: Rabbit) -> bool:
        """Whether the helpers are ready to work."""
        return True

    def worker_argv(self, index: int, processes: int = 1) -> list[str]:
        """The command of worker ``index`` (``processes``: how many worker processes in all)."""
        raise NotImplementedError

    def workers(self, count: int) -> list[tuple[str, list[str]]]:
        """The ``(name, argv)`` of the processes that make up ``count`` worker processes."""
        return [(f"{self.key} worker {i}", self.worker_argv(i)) for i in range(count)]

    def publish_argv(self, tasks: int) -> list[str]:
        """The command that publishes ``tasks`` no-op tasks at full speed."""
        return python_command("bench.peers.publish", self.key, "--tasks", str(tasks))

    #: How ``bench.peers.latency`` waits for this system's results (default: its ``key``).
    latency_mode = ""

    def latency_argv(self, count: int, relay_url: str = "") -> list[str]:
        """The command that measures ``count`` round trips."""
        mode = self.latency_mode or self.key
        argv = python_command("bench.peers.latency", mode, "--count", str(count))
        return [*argv, "--relay-url", relay_url] if relay_url else argv

    def loaded(self, rabbit: Rabbit, tasks: int) -> bool:
        """Whether ``tasks`` pre-loaded tasks are all in place."""
        return rabbit.depth(self.queue)[0] >= tasks

    def count_query(self) -> str:
        """The ``SELECT count(*)`` of finished tasks, for a system with results."""
        raise NotImplementedError

    def finished(self) -> int:
        """How many tasks reached this system's end condition."""
        if not self.results:
            return os.stat(self.tally).st_size
        if self._counter is None:
            self._counter = Counter(self.pg, self.count_query())
        return self._counter()

    def queues(self) -> list[str]:
        """Every queue the system may have declared."""
        return [self.queue]

    def exchanges(self) -> list[str]:
        """Every exchange the system may have declared."""
        return []

    def cleanup(self, rabbit: Rabbit) -> None:
        """Delete the queues, exchanges, schema and tally file (each step best effort)."""
        if isinstance(self._counter, Counter):
            self._counter.close()
        rabbit.delete(self.queues(), self.exchanges())
        if self.results:
            with contextlib.suppress(Exception):
                pg_run(self.pg, f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE')
        if self.tally:
            with contextlib.suppress(OSError):
                os.unlink(self.tally)


class TacoqSystem(System):
    """TacoQ: ``tacoq worker`` (async no-op, concurrency 100, prefetch 400) and ``tacoq relay``
    storing every state in Postgres; the whole run lives in namespace ``bench-tacoq-<id>``,
    schema ``bench_tacoq_<id>``."""

    key = "tacoq"

    def __init__(self, amqp: str, pg: str, *, results: bool = True) -> None:
        super().__init__(amqp, pg, results=True)
        from bench.peers.tacoq_app import KIND
        from tacoq_rabbit.topology import Topology

        self.namespace = self.queue
        self.topology = Topology(self.namespace)
        self.queue = self.topology.worker_queue(KIND)
        self.kind = KIND
        separator = "&" if "?" in pg else "?"
        self.store = f"{pg}{separator}schema={self.schema}"

    def env(self) -> dict[str, str]:
        """Adds ``BENCH_PEER_NAMESPACE`` and ``BENCH_PEER_STORE`` (the relay's store URL)."""
        return {
            **super().env(),
            "BENCH_PEER_NAMESPACE": self.namespace,
            "BENCH_PEER_STORE": self.store,
        }

    def prepare(self) -> None:
        """Nothing: the relay creates its schema (``migrate=true``)."""

    def helpers(self, http_port: int | None = None) -> list[tuple[str, list[str]]]:
        """The relay: consumes updates into Postgres; HTTP only when ``http_port`` is given."""
        http = ["--no-http"] if http_port is None else ["--port", str(http_port)]
        argv = [
            _script("tacoq"), "relay", "--broker", self.amqp, "--store", self.store,
            "--namespace", self.namespace, *http,
        ]  # fmt: skip
        return [("tacoq relay", argv)]

    def helpers_ready(self, rabbit: Rabbit) -> bool:
        """The relay consumes its queue."""
        return rabbit.depth(self.topology.relay_queue)[1] > 0

    def worker_argv(self, index: int, processes: int = 1) -> list[str]:
        """``tacoq worker bench.peers.tacoq_app:app --concurrency 100 --prefetch 400``."""
        return [
            _script("tacoq"), "worker", "bench.peers.tacoq_app:app",
            "--concurrency", str(TACOQ_CONCURRENCY), "--prefetch", str(TACOQ_PREFETCH),
            "--broker", self.amqp,
            "--namespace", self.namespace, "--name", f"bench-{self.ident}-{index}",
        ]  # fmt: skip

    def loaded(self, rabbit: Rabbit, tasks: int) -> bool:
        """All tasks wait in the worker queue and the relay stored all of them (PENDING)."""
        if rabbit.depth(self.queue)[0] < tasks or rabbit.depth(self.topology.relay_queue)[0]:
            return False
        rows = Counter(self.pg, f'SELECT count(*) FROM "{self.schema}".tasks')
        try:
            return rows() >= tasks
        finally:
            rows.close()

    def count_query(self) -> str:
        """COMPLETED rows of the run's ``tasks`` table."""
        return f"SELECT count(*) FROM \"{self.schema}\".tasks WHERE status = 'COMPLETED'"

    def cleanup(self, rabbit: Rabbit) -> None:
        """Delete the namespace (queues and exchanges) and the schema."""
        from tacoq_rabbit.link import delete_namespace

        super().cleanup(rabbit)
        with contextlib.suppress(Exception):
            asyncio.run(delete_namespace(self.amqp, self.namespace, [self.kind]))


class CelerySystem(System):
    """Celery 5, solo pool, one process per worker (see :mod:`bench.peers.celery_app`).

    With the Postgres backend it manages a few dozen tasks/s here, so its throughput samples
    are capped at :data:`CELERY_PG_TASKS` tasks (10,000 would take minutes per sample).
    """

    key = "celery"

    def __init__(self, amqp: str, pg: str, *, results: bool) -> None:
        super().__init__(amqp, pg, results=results)
        if results:
            self.max_tasks = CELERY_PG_TASKS

    def worker_argv(self, index: int, processes: int = 1) -> list[str]:
        """``celery worker --concurrency 1`` without gossip, mingle and heartbeats: the solo
        pool, but prefork (one child) with the Postgres backend. With late acks at prefetch 1
        the solo pool stalls for seconds between tasks here (Celery 5.5.3 and 5.7.0: the
        worker idles in epoll holding one unacknowledged delivery; 149 of 300 tasks in 15 s,
        against 300 in under 15 s with prefork 1), which would measure the stall, not Celery."""
        pool = "prefork" if self.results else "solo"
        return [
            _script("celery"), "-A", "bench.peers.celery_app", "worker", "--pool", pool,
            "--concurrency", "1", "--loglevel", "WARNING", "--without-gossip",
            "--without-mingle", "--without-heartbeat", "-Q", self.queue,
            "-n", f"bench-{self.ident}-{index}@%h",
        ]  # fmt: skip

    def count_query(self) -> str:
        """SUCCESS rows of ``celery_taskmeta``."""
        return f"SELECT count(*) FROM \"{self.schema}\".celery_taskmeta WHERE status = 'SUCCESS'"

    def exchanges(self) -> list[str]:
        """The task exchange, the (unused) event exchange and the remote-control ones."""
        control = f"{self.queue}.ctl.pidbox"
        return [self.queue, f"{self.queue}.ev", control, f"reply.{control}"]


class DramatiqSystem(System):
    """Dramatiq, ``--threads 8`` per process (see :mod:`bench.peers.dramatiq_app`)."""

    key = "dramatiq"

    def prepare(self) -> None:
        """The schema and the results table of :class:`bench.peers.dramatiq_app.PostgresBackend`."""
        if self.results:
            pg_run(
                self.pg,
                f'CREATE SCHEMA "{self.schema}"',
                f'CREATE TABLE "{self.schema}".results '
                "(key text PRIMARY KEY, data bytea NOT NULL, expires_at timestamptz)",
            )

    def workers(self, count: int) -> list[tuple[str, list[str]]]:
        """One ``dramatiq`` command with ``--processes count``."""
        return [("dramatiq", self.worker_argv(0, count))]

    def worker_argv(self, index: int, processes: int = 1) -> list[str]:
        """``dramatiq bench.peers.dramatiq_app --processes N --threads 8``."""
        return [
            _script("dramatiq"), "bench.peers.dramatiq_app", "--processes", str(processes),
            "--threads", str(DRAMATIQ_THREADS), "--queues", self.queue,
        ]  # fmt: skip

    def count_query(self) -> str:
        """Rows of the results table."""
        return f'SELECT count(*) FROM "{self.schema}".results'

    def queues(self) -> list[str]:
        """The queue, its delay queue and its dead-letter queue."""
        return [self.queue, f"{self.queue}.DQ", f"{self.queue}.XQ"]


SystemFactory = Callable[[str, str], System]


def tacoq(amqp: str, pg: str) -> System:
    """TacoQ with every state in Postgres."""
    return TacoqSystem(amqp, pg)


def tacoq_relay_wait(amqp: str, pg: str) -> System:
    """TacoQ with every state in Postgres, its callers waiting on the relay's HTTP API."""
    system = TacoqSystem(amqp, pg)
    system.latency_mode = "tacoq-relay"
    return system


def celery_pg(amqp: str, pg: str) -> System:
    """Celery with the Postgres result backend."""
    return CelerySystem(amqp, pg, results=True)


def celery_fast(amqp: str, pg: str) -> System:
    """Celery's fastest mode: no result backend."""
    return CelerySystem(amqp, pg, results=False)


def dramatiq_pg(amqp: str, pg: str) -> System:
    """Dramatiq with the bench's Postgres results backend."""
    return DramatiqSystem(amqp, pg, results=True)


def dramatiq_fast(amqp: str, pg: str) -> System:
    """Dramatiq without results."""
    return DramatiqSystem(amqp, pg, results=False)
