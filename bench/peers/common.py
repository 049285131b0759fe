"""What the peer scenarios share: service URLs and checks, queue depth, Postgres, process trees.

The Postgres URL is ``TACOQ_BENCH_POSTGRES_URL``, else ``TACOQ_TEST_POSTGRES_URL``, else
``postgresql://postgres@127.0.0.1:5432/test``; RabbitMQ's is :func:`bench.rabbit_common.amqp_url`.
A connection that breaks during a measurement raises :class:`ServiceVanished`, which the
scenarios retry once (a fault suite may restart a service on this shared machine).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from bench.harness import ROOT, MeasurementError, SkipScenario
from bench.services import postgres_url as postgres_url  # re-exported for the scenarios


class ServiceVanished(MeasurementError):
    """RabbitMQ or Postgres went away during a measurement (worth one retry)."""


def fresh_ident() -> str:
    """Ten hex digits no other run uses: part of every queue, namespace and schema name."""
    return uuid.uuid4().hex[:10]


# --- Postgres -----------------------------------------------------------------------------


def pg_connect(url: str) -> Any:
    """An autocommit psycopg connection; :class:`ServiceVanished` when it cannot connect."""
    import psycopg

    try:
        return psycopg.connect(url, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        raise ServiceVanished(f"Postgres is unreachable: {str(exc).strip()[:160]}") from None


def require_postgres(url: str) -> None:
    """Raise :class:`SkipScenario` unless Postgres accepts a connection."""
    try:
        pg_connect(url).close()
    except ServiceVanished as exc:
        raise SkipScenario(str(exc)) from None


def pg_run(url: str, *statements: str) -> None:
    """Run ``statements`` one by one on a short-lived connection."""
    import psycopg

    with pg_connect(url) as conn:
        try:
            for statement in statements:
                conn.execute(statement)  # type: ignore[arg-type]
        except psycopg.OperationalError as exc:
            raise ServiceVanished(f"Postgres went away: {str(exc).strip()[:160]}") from None


class Counter:
    """Polls one ``SELECT count(*) ...`` on a connection kept open."""

    def __init__(self, url: str, query: str) -> None:
        self.url, self.query = url, query
        self._conn: Any = None

    def __call__(self) -> int:
        """The current count."""
        import psycopg

        try:
            if self._conn is None or self._conn.closed:
                self._conn = pg_connect(self.url)
            row = self._conn.execute(self.query).fetchone()
        except psycopg.errors.UndefinedTable:
            return 0  # the system has not created its table yet
        except psycopg.OperationalError as exc:
            self.close()
            raise ServiceVanished(f"Postgres went away: {str(exc).strip()[:160]}") from None
        return int(row[0])

    def close(self) -> None:
        """Close the connection."""
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None


# --- RabbitMQ ------------------------------------------------------------------------------


class Rabbit:
    """A pika connection for passive declares (queue depth, consumers) and deletions.

    Heartbeats are off (the driver may not touch it for minutes while it polls Postgres); a
    broken connection is reopened once per operation, then :class:`ServiceVanished`.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self._connection: Any = None
        self._channel: Any = None

    def _ch(self) -> Any:
        import pika

        if self._connection is None or self._connection.is_closed:
            parameters = pika.URLParameters(self.url)
            parameters.heartbeat = 0
            self._connection = pika.BlockingConnection(parameters)
            self._channel = None
        if self._channel is None or self._channel.is_closed:
            self._channel = self._connection.channel()
        return self._channel

    def _do(self, operation: Callable[[Any], Any]) -> Any:
        import pika.exceptions

        for attempt in (1, 2):
            try:
                return operation(self._ch())
            except pika.exceptions.ChannelClosedByBroker:
                raise
            except (pika.exceptions.AMQPError, OSError) as exc:
                self.close()
                if attempt == 2:
                    raise ServiceVanished(f"RabbitMQ went away: {exc!r}"[:200]) from None
        raise AssertionError("unreachable")

    def depth(self, queue: str) -> tuple[int, int]:
        """``(ready messages, consumers)`` of ``queue`` by a passive declare; (0, 0) if absent."""
        import pika.exceptions

        try:
            frame = self._do(lambda channel: channel.queue_declare(queue, passive=True))
        except pika.exceptions.ChannelClosedByBroker:
            self._channel = None
            return 0, 0
        return int(frame.method.message_count), int(frame.method.consumer_count)

    def delete(self, queues: Sequence[str] = (), exchanges: Sequence[str] = ()) -> None:
        """Delete ``queues`` and ``exchanges`` (missing ones are fine)."""
        for name in queues:
            with contextlib.suppress(Exception):
                self._do(lambda channel, name=name: channel.queue_delete(name))
        for name in exchanges:
            with contextlib.suppress(Exception):
                self._do(lambda channel, name=name: channel.exchange_delete(name))

    def close(self) -> None:
        """Close the connection."""
        with contextlib.suppress(Exception):
            self._connection.close()
        self._connection = self._channel = None


# --- processes -----------------------------------------------------------------------------


class Proc:
    """A process the scenario started (in its own session), with its output in a temp file."""

    def __init__(self, argv: Sequence[str], env: Mapping[str, str], name: str) -> None:
        self.name = name
        self._output = tempfile.TemporaryFile()  # noqa: SIM115 (closed by stop())
        try:
            self.popen = subprocess.Popen(
                list(argv),
                cwd=ROOT,
                env={**os.environ, **env},
                stdin=subprocess.DEVNULL,
                stdout=self._output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as exc:
            raise MeasurementError(f"cannot start {name}: {exc}") from exc

    def _tree(self) -> list[Any]:
        import psutil

        try:
            root = psutil.Process(self.popen.pid)
            return [root, *root.children(recursive=True)]
        except psutil.Error:
            return []

    def cpu_s(self) -> float:
        """CPU-seconds (user + system) used so far by the process and its living children."""
        import psutil

        total = 0.0
        for process in self._tree():
            with contextlib.suppress(psutil.Error):
                times = process.cpu_times()
                total += times.user + times.system
        return total

    def peak_rss_mib(self) -> float:
        """The largest peak RSS (``VmHWM``) among the process and its children, in MiB."""
        peak = 0
        for process in self._tree():
            with contextlib.suppress(OSError, ValueError):
                status = Path(f"/proc/{process.pid}/status").read_text()
                for line in status.splitlines():
                    if line.startswith("VmHWM:"):
                        peak = max(peak, int(line.split()[1]))
        return peak / 1024

    def check_alive(self) -> None:
        """Raise :class:`MeasurementError` (with its last output line) if it exited."""
        if self.popen.poll() is not None:
            raise MeasurementError(f"{self.name} exited {self.popen.returncode}: {self.tail()}")

    def tail(self) -> str:
        """The last line of its output."""
        self._output.seek(0)
        lines = self._output.read().decode("utf-8", "replace").strip().splitlines()
        return lines[-1].strip()[:200] if lines else "no output"

    def output(self) -> str:
        """Everything it printed."""
        self._output.seek(0)
        return self._output.read().decode("utf-8", "replace")

    def wait(self, timeout: float) -> int:
        """Wait for it to exit on its own; :class:`MeasurementError` after ``timeout``."""
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            raise MeasurementError(f"{self.name} took more than {timeout:g}s") from None

    def stop(self, grace: float = 20.0) -> None:
        """SIGTERM, then SIGKILL to its process group after ``grace`` seconds."""
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(10)
        with contextlib.suppress(ProcessLookupError):  # children it left behind, if any
            os.killpg(self.popen.pid, signal.SIGKILL)
        self._output.close()


@contextlib.contextmanager
def processes() -> Iterator[list[Proc]]:
    """A list to put started processes in; every one is stopped on the way out."""
    started: list[Proc] = []
    try:
        yield started
    finally:
        for proc in reversed(started):
            with contextlib.suppress(Exception):
                proc.stop()


def wait_until(
    check: Any, what: str, timeout: float, poll: float = 0.005, alive: Sequence[Proc] = ()
) -> float:
    """Call ``check()`` every ``poll`` seconds until it is true; return ``time.time()`` then.

    Raises :class:`MeasurementError` after ``timeout`` seconds or when a process in ``alive``
    exited.
    """
    deadline = time.monotonic() + timeout
    while not check():
        for proc in alive:
            proc.check_alive()
        if time.monotonic() > deadline:
            raise MeasurementError(f"{what}: not within {timeout:g}s")
        time.sleep(poll)
    return time.time()
