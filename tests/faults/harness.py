"""The fault suite's harness: real processes, service outages, and the evidence they leave.

- A :class:`~tacoq.testing.processes.ChildProcess` runs one command (``tacoq worker``,
  ``tacoq relay``, a publisher script) with its output collected by a thread; :class:`Scene`
  starts them for one scenario in its own namespace and kills whatever is left at the end.
- Evidence: :func:`read_rows` reads the store's rows straight from Postgres, :func:`read_trace`
  the handlers' per-execution trace, :func:`relay_stats` a relay's counters (``GET /health``,
  with the relay's token; every read of a relay's counters goes through it),
  :func:`queue_counts` RabbitMQ's queue depths, :func:`read_dead_letters` the store's
  dead-letters table (the relay consumes the dead-letter queue into it).
- :func:`check_outcome` is the common final assertion: every confirmed task completed with the
  right output, produced by one finished execution in the trace; re-executions only where the
  scenario allows them; conflicting completions bounded by the completions that could conflict.
- Outages: :func:`rabbit_outage` (``rabbitmqctl stop_app``/``start_app``) and
  :func:`postgres_restart`; :func:`ensure_services` waits for both ports and fails loudly.
- :func:`record` adds a scenario's counts to the JSON summary behind ``docs/reliability.md``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aio_pika
import httpx
import psycopg
from psycopg.rows import dict_row

from tacoq.testing import fresh_namespace
from tacoq.testing.processes import ChildProcess, clean_environ, tacoq_argv
from tacoq_postgres.settings import schema_for_namespace
from tacoq_postgres.testing import drop_schemas
from tacoq_rabbit.link import delete_namespace
from tacoq_rabbit.topology import Topology

HERE = Path(__file__).resolve().parent
KIND = "faults"
#: The token every relay of a scenario runs with (``GET /health``, with the counters, needs it).
RELAY_TOKEN = "faults-relay-token"
#: Where each scenario's counts go (``docs/reliability.md`` is written from this file).
SUMMARY = Path(
    os.environ.get("TACOQ_FAULTS_SUMMARY", Path(tempfile.gettempdir()) / "tacoq-faults.json")
)
SERVICE_WAIT = 60.0


# -- processes -----------------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Scene:
    """One scenario's world: a namespace, a project dir with the app, its processes."""

    amqp_url: str
    postgres_url: str
    workdir: Path
    namespace: str = field(default_factory=lambda: fresh_namespace("faults"))
    procs: list[ChildProcess] = field(default_factory=list)
    kinds: set[str] = field(default_factory=lambda: {KIND})

    def __post_init__(self) -> None:
        self.trace_dir = self.workdir / "trace"
        self.trace_dir.mkdir(parents=True, exist_ok=True)
        shutil.copy(HERE / "faultapp.py", self.workdir / "faultapp.py")
        self.published = self.workdir / "published.jsonl"

    def env(self, **extra: str) -> dict[str, str]:
        """The environment of a child: no inherited ``TACOQ_*``, the trace dir, ``extra``."""
        return clean_environ(
            **{"FAULTS_TRACE_DIR": str(self.trace_dir), "PYTHONUNBUFFERED": "1", **extra}
        )

    def spawn(self, name: str, argv: Sequence[str], **env: str) -> ChildProcess:
        """Start a process in the project dir; it is killed at the end of the scenario."""
        proc = ChildProcess(argv, cwd=self.workdir, env=self.env(**env), name=name)
        self.procs.append(proc)
        return proc

    def worker(self, name: str, *options: str, kind: str = KIND, wait: bool = True) -> ChildProcess:
        """``tacoq worker faultapp:worker --name NAME ...``, waited for until it serves."""
        self.kinds.add(kind)
        argv = tacoq_argv("worker", "faultapp:worker")
        argv += ["--broker", self.amqp_url, "--namespace", self.namespace, "--name", name]
        proc = self.spawn(name, [*argv, *options], FAULTS_WORKER_KIND=kind)
        if wait:
            proc.wait_for(f"serving {kind}")
        return proc

    def relay(self, name: str = "relay", *options: str) -> Relay:
        """``tacoq relay`` on a free port with a token (``RELAY_TOKEN``, in its environment),
        waited for until ``GET /health/ready`` answers 200."""
        port = free_port()
        argv = tacoq_argv("relay", "--broker", self.amqp_url)
        argv += ["--store", self.postgres_url, "--namespace", self.namespace]
        argv += ["--port", str(port), "--no-cleanup", *options]
        env = self.env(TACOQ_RELAY_TOKEN=RELAY_TOKEN)
        relay = Relay(name, argv, self.workdir, env, f"http://127.0.0.1:{port}")
        self.procs.append(relay)
        relay.wait_healthy()
        return relay

    def publisher(
        self, count: int, *, rate: float = 0.0, sleep: float = 0.0, **opts: Any
    ) -> ChildProcess:
        """The publisher script publishing ``count`` tasks (confirmed ones go to the file)."""
        argv = [sys.executable, str(HERE / "publisher.py"), "steady"]
        argv += ["--broker", opts.pop("broker", self.amqp_url), "--namespace", self.namespace]
        argv += ["--count", str(count), "--rate", str(rate), "--sleep", str(sleep)]
        argv += ["--out", str(self.published), "--first", str(opts.pop("first", 0))]
        kind = opts.pop("kind", KIND)
        self.kinds.add(kind)  # publishing declares its queue: cleanup deletes it
        argv += ["--worker-kind", kind]
        assert not opts, opts
        return self.spawn("publisher", argv)

    def confirmed(self) -> dict[str, int]:
        """Task id -> ``n`` of every publish the publisher saw confirmed."""
        found: dict[str, int] = {}
        if self.published.exists():
            for line in self.published.read_text(encoding="utf-8").splitlines():
                item = json.loads(line)
                found[item["id"]] = item["n"]
        return found

    def tries(self) -> dict[str, int]:
        """Task id -> how many times the publisher sent it (more than 1 after a PublishError)."""
        found: dict[str, int] = {}
        if self.published.exists():
            for line in self.published.read_text(encoding="utf-8").splitlines():
                item = json.loads(line)
                found[item["id"]] = item["tries"]
        return found

    def trace(self) -> list[dict[str, Any]]:
        """Every trace record of every worker process."""
        return read_trace(self.trace_dir)

    def rows(self) -> dict[str, dict[str, Any]]:
        """The store's rows of this namespace."""
        return read_rows(self.postgres_url, self.namespace)

    def dead_letters(self) -> list[dict[str, Any]]:
        """The store's dead-letter records of this namespace."""
        return read_dead_letters(self.postgres_url, self.namespace)

    def stop_all(self) -> None:
        """Kill every process still running."""
        for proc in self.procs:
            proc.kill()

    async def cleanup(self) -> None:
        """Delete the namespace's queues and exchanges and drop its schema."""
        with contextlib.suppress(Exception):
            await delete_namespace(self.amqp_url, self.namespace, sorted(self.kinds))
        with contextlib.suppress(Exception):
            await drop_schemas(self.postgres_url, [schema_for_namespace(self.namespace)])


class Relay(ChildProcess):
    """A ``tacoq relay`` process, its HTTP address and its token."""

    def __init__(
        self, name: str, argv: Sequence[str], cwd: Path, env: dict[str, str], url: str
    ) -> None:
        super().__init__(argv, cwd=cwd, env=env, name=name)
        self.url = url
        self.token = env.get("TACOQ_RELAY_TOKEN")

    def wait_healthy(self, timeout: float = 30.0) -> None:
        """Wait until ``GET /health/ready`` answers 200 (store and broker reachable)."""
        deadline = time.monotonic() + timeout
        while True:
            if not self.alive():
                raise AssertionError(f"{self.name} exited:\n{self.output}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/health/ready", timeout=5).status_code == 200:
                    return
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name} not healthy in {timeout}s:\n{self.tail}")
            time.sleep(0.1)

    def stats(self) -> dict[str, Any]:
        """The relay's counters (the ``stats`` of ``GET /health``)."""
        return relay_stats(self.url, self.token)


def relay_stats(url: str, token: str | None = RELAY_TOKEN) -> dict[str, Any]:
    """``stats`` from a relay's ``GET /health``, sent with the relay's token (the report is
    answered whatever the relay's state: an unhealthy relay still counts)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    answer = httpx.get(f"{url}/health", headers=headers, timeout=10)
    answer.raise_for_status()
    stats: dict[str, Any] = answer.json()["stats"]
    return stats


def sum_stats(stats: Sequence[dict[str, Any]]) -> dict[str, int]:
    """Counters of several relays added up."""
    total: dict[str, int] = defaultdict(int)
    for one in stats:
        for key, value in one.items():
            if isinstance(value, int):
                total[key] += value
    return dict(total)


# -- evidence ------------------------------------------------------------------------------------


def read_rows(postgres_url: str, namespace: str) -> dict[str, dict[str, Any]]:
    """Every row of the namespace's ``tasks`` table, by task id (text), all columns."""
    schema = schema_for_namespace(namespace)
    with psycopg.connect(postgres_url, row_factory=dict_row, connect_timeout=10) as conn:
        exists = conn.execute("SELECT to_regclass(%s) AS t", [f'"{schema}".tasks']).fetchone()
        if not exists or exists["t"] is None:
            return {}
        found = conn.execute(f'SELECT * FROM "{schema}".tasks').fetchall()
    return {str(row["id"]): row for row in found}


def output_of(row: dict[str, Any]) -> Any:
    """A row's output decoded as JSON (``None`` when it has none)."""
    data = row.get("output_data")
    return None if data is None else json.loads(bytes(data))


def read_trace(trace_dir: Path) -> list[dict[str, Any]]:
    """Every record of every ``<pid>.jsonl`` trace file (a torn last line is skipped)."""
    records = []
    for path in sorted(trace_dir.glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            with contextlib.suppress(ValueError):
                records.append(json.loads(line))
    return records


@dataclass
class Execution:
    """One handler execution seen in the trace."""

    task: str
    run: str
    worker: str
    pid: int
    attempt: int
    finished: bool = False


def executions(trace: Sequence[dict[str, Any]]) -> dict[str, list[Execution]]:
    """Task id -> its executions, in trace order per process."""
    runs: dict[str, Execution] = {}
    for record in trace:
        run = runs.setdefault(
            record["run"],
            Execution(
                record["task"], record["run"], record["worker"], record["pid"], record["attempt"]
            ),
        )
        if record["event"] == "end":
            run.finished = True
    by_task: dict[str, list[Execution]] = defaultdict(list)
    for run in runs.values():
        by_task[run.task].append(run)
    return dict(by_task)


async def queue_counts(amqp_url: str, namespace: str, kinds: Sequence[str]) -> dict[str, int]:
    """Ready messages in the relay, dead-letter and given worker queues (passive declares)."""
    topology = Topology(namespace)
    names = {"relay": topology.relay_queue, "dead-letter": topology.dead_queue}
    names.update({f"worker:{k}": topology.worker_queue(k) for k in kinds})
    counts: dict[str, int] = {}
    connection = await aio_pika.connect(amqp_url)
    try:
        for label, queue in names.items():
            channel = await connection.channel()
            try:
                declared = await channel.declare_queue(queue, passive=True)
                counts[label] = int(declared.declaration_result.message_count or 0)
            except aio_pika.exceptions.ChannelClosed:
                counts[label] = -1  # missing
    finally:
        await connection.close()
    return counts


def read_dead_letters(postgres_url: str, namespace: str) -> list[dict[str, Any]]:
    """Every record of the namespace's dead-letters table (the relay consumes the dead-letter
    queue into it): origin, reason, headers, task id, count and body size."""
    schema = schema_for_namespace(namespace)
    with psycopg.connect(postgres_url, row_factory=dict_row, connect_timeout=10) as conn:
        exists = conn.execute(
            "SELECT to_regclass(%s) AS t", [f'"{schema}".dead_letters']
        ).fetchone()
        if not exists or exists["t"] is None:
            return []
        return conn.execute(
            "SELECT id, origin, reason, headers, task_id, count, body_size AS size "
            f'FROM "{schema}".dead_letters'
        ).fetchall()


async def eventually(
    probe: Callable[[], Any], until: Callable[[Any], bool], timeout: float, what: str
) -> Any:
    """Call ``probe`` (sync, in a thread) until ``until(value)``; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    value = None
    while time.monotonic() < deadline:
        value = await asyncio.to_thread(probe)
        if until(value):
            return value
        await asyncio.sleep(0.25)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {value!r}"[:4000])


def all_completed(scene: Scene, ids: Sequence[str]) -> Callable[[dict[str, Any]], bool]:
    """A predicate for :func:`eventually` over :meth:`Scene.rows`: ``ids`` all completed."""

    def done(rows: dict[str, Any]) -> bool:
        return all(i in rows and rows[i]["status"] == "COMPLETED" for i in ids)

    return done


async def wait_completed(scene: Scene, ids: Sequence[str], timeout: float) -> dict[str, Any]:
    """Wait until every task in ``ids`` shows ``COMPLETED`` in the store; the rows."""
    rows: dict[str, Any] = await eventually(
        scene.rows, all_completed(scene, ids), timeout, f"{len(ids)} tasks completed"
    )
    return rows


# -- the final assertion -------------------------------------------------------------------------


@dataclass
class Outcome:
    """What :func:`check_outcome` found, for the report."""

    published: int
    completed: int
    executions: int
    reexecuted: list[str]
    finished_twice: int
    duplicate_completions: int
    conflicting_completions: int

    def counts(self) -> dict[str, int]:
        """The numbers the reliability report shows."""
        return {
            "published": self.published,
            "completed": self.completed,
            "executions": self.executions,
            "re_executed_tasks": len(self.reexecuted),
            "finished_more_than_once": self.finished_twice,
            "duplicate_completions": self.duplicate_completions,
            "conflicting_completions": self.conflicting_completions,
        }


def check_outcome(
    scene: Scene,
    confirmed: dict[str, int],
    rows: dict[str, dict[str, Any]],
    relay_counters: dict[str, int],
    *,
    may_rerun: Callable[[list[Execution]], bool],
) -> Outcome:
    """The scenario's end: assert that no confirmed task was lost or answered wrongly.

    For every confirmed task: its row is ``COMPLETED`` without error, its output is
    ``{n, worker, pid, run}`` with the published ``n``, ``executed_by`` is that worker, and the
    run it names is an execution in the trace that finished, by that worker and pid (so the
    stored completion is one that really happened, not a mix). A task executed more than once
    must satisfy ``may_rerun(executions)``, the scenario's statement of what at-least-once
    allowed. Only a task whose handler finished more than once can produce a conflicting
    completion, so the relays' conflicting counter is at most the number of such extra finishes;
    and the store's row is the first committed of them (the merge rule never applies a second).
    """
    runs = executions(scene.trace())
    problems: list[str] = []
    reexecuted = []
    extra_finishes = 0
    for task_id, n in confirmed.items():
        row = rows.get(task_id)
        if row is None or row["status"] != "COMPLETED":
            problems.append(f"{task_id} (n={n}): {'missing' if row is None else row['status']}")
            continue
        if row["is_error"]:
            problems.append(f"{task_id}: error {row['error_type']}: {row['error_message']!r}")
            continue
        output = output_of(row)
        if not isinstance(output, dict) or output.get("n") != n:
            problems.append(f"{task_id}: output {output!r}, expected n={n}")
            continue
        if row["executed_by"] != output["worker"]:
            problems.append(f"{task_id}: executed_by {row['executed_by']} != {output['worker']}")
        mine = runs.get(task_id, [])
        stored = [e for e in mine if e.run == output["run"]]
        if len(stored) != 1 or not stored[0].finished:
            problems.append(f"{task_id}: stored run {output['run']} is not a finished execution")
        elif (stored[0].worker, stored[0].pid) != (output["worker"], output["pid"]):
            problems.append(f"{task_id}: stored run {output['run']} ran elsewhere")
        if len(mine) > 1:
            reexecuted.append(task_id)
            if not may_rerun(mine):
                problems.append(f"{task_id}: executed {len(mine)} times, not allowed: {mine}")
        finished = sum(e.finished for e in mine)
        extra_finishes += max(finished - 1, 0)
    assert not problems, f"{len(problems)} of {len(confirmed)} tasks wrong:\n" + "\n".join(
        problems[:40]
    )
    conflicting = relay_counters.get("conflicting_completions", 0)
    assert conflicting <= extra_finishes, (
        f"{conflicting} conflicting completions, but only {extra_finishes} extra finished runs"
    )
    return Outcome(
        published=len(confirmed),
        completed=sum(rows[i]["status"] == "COMPLETED" for i in confirmed),
        executions=sum(len(runs.get(i, [])) for i in confirmed),
        reexecuted=reexecuted,
        finished_twice=extra_finishes,
        duplicate_completions=relay_counters.get("duplicate_completions", 0),
        conflicting_completions=conflicting,
    )


def never(_: list[Execution]) -> bool:
    """``may_rerun`` of a scenario where no task may run twice."""
    return False


# -- services ------------------------------------------------------------------------------------


def port_of(url: str, default: int) -> tuple[str, int]:
    """Host and port of a service URL."""
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or default


def answers(host: str, port: int) -> bool:
    """True when something accepts a TCP connection on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


def wait_port(host: str, port: int, timeout: float = SERVICE_WAIT, *, up: bool = True) -> float:
    """Wait until the port answers (or stops answering); seconds waited. Fails loudly."""
    began = time.monotonic()
    while answers(host, port) is not up:
        if time.monotonic() - began > timeout:
            state = "answer" if up else "close"
            raise AssertionError(f"{host}:{port} did not {state} within {timeout}s")
        time.sleep(0.1)
    return time.monotonic() - began


def run(argv: Sequence[str], timeout: float = 60.0) -> str:
    """Run a service command; its output. Fails with the output if it fails."""
    done = subprocess.run(
        list(argv), capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
    )
    assert done.returncode == 0, f"{argv} failed ({done.returncode}): {done.stdout}{done.stderr}"
    return done.stdout


def pg_cluster(action: str) -> str:
    """``pg_ctlcluster <version> main <action>`` (the cluster behind the test database)."""
    version = sorted(os.listdir("/etc/postgresql"))[-1]
    return run(["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", action])


def ensure_services(amqp_url: str, postgres_url: str) -> None:
    """Make sure RabbitMQ and Postgres run again (start them if a scenario left them down)."""
    amqp = port_of(amqp_url, 5672)
    pg = port_of(postgres_url, 5432)
    if not answers(*amqp):
        with contextlib.suppress(Exception):
            run(["rabbitmqctl", "start_app"])
    if not answers(*pg):
        with contextlib.suppress(Exception):
            pg_cluster("start")
    wait_port(*amqp)
    wait_port(*pg)
    with psycopg.connect(postgres_url, connect_timeout=10) as conn:
        conn.execute("SELECT 1")


@contextlib.contextmanager
def rabbit_outage(amqp_url: str, seconds: float) -> Iterator[dict[str, float]]:
    """``rabbitmqctl stop_app``, ``seconds`` of outage, ``start_app``; yields timings."""
    host, port = port_of(amqp_url, 5672)
    timing: dict[str, float] = {}
    began = time.monotonic()
    try:
        run(["rabbitmqctl", "stop_app"])
        timing["stopped_after"] = time.monotonic() - began
        time.sleep(seconds)
        yield timing
    finally:
        run(["rabbitmqctl", "start_app"], timeout=120)
        wait_port(host, port)
        timing["outage"] = time.monotonic() - began


def postgres_restart(postgres_url: str) -> float:
    """Restart the Postgres cluster; seconds until it answers again."""
    host, port = port_of(postgres_url, 5432)
    began = time.monotonic()
    try:
        pg_cluster("restart")
    finally:
        if not answers(host, port):
            with contextlib.suppress(Exception):
                pg_cluster("start")
        wait_port(host, port)
    return time.monotonic() - began


# -- the summary ---------------------------------------------------------------------------------


def record(scenario: str, **facts: Any) -> None:
    """Add (replace) one scenario's facts in the JSON summary file."""
    data: dict[str, Any] = {}
    if SUMMARY.exists():
        with contextlib.suppress(ValueError):
            data = json.loads(SUMMARY.read_text(encoding="utf-8"))
    data[scenario] = facts
    SUMMARY.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
