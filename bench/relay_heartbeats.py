"""The relay-heartbeats measurement: what one worker heartbeat costs the relay in CPU (issue 19).

For each sample, in a fresh namespace (RabbitMQ queues and a Postgres schema, deleted after),
the driver pre-loads the control queue through the RabbitMQ broker plugin
(``Broker.send_control`` of ``encode_control``): the announcements of :data:`WORKERS` workers
(persistent, three task kinds with JSON Schema contracts each), then N heartbeats (N from
5,000 to 10,000; transient with a ttl of an hour, so none expires during the run),
round-robin over the workers, sent one round of :data:`WORKERS` at a time (so each worker's
heartbeats stay in order). Heartbeat ``i`` carries ``succeeded = i`` and
:data:`RUNNING_IDS` running task ids, as a busy worker's does.

Then the measured process starts, pinned to core 0:

- TacoQ: ``tacoq relay --no-http --no-cleanup`` over amqp:// and postgresql://: its control
  intake decodes each message, ``store.save_worker`` / ``store.touch_worker``, acks.
- Baseline: ``python -m bench.heartbeat_sink`` (raw aio-pika at the relay's control prefetch,
  one message at a time, the name read from the JSON body, one autocommit ``UPDATE`` per
  heartbeat, one upsert per announcement, then the ack) into a table of the same shape.

**The start** is the moment the driver sees a consumer on the control queue (a passive declare
every 5 ms), so start-up and migrations are not counted; **the end** is the first moment the
control queue is empty and a poll of the workers table (every 20 ms) finds every worker's last
heartbeat (its ``heartbeat->>'succeeded'``). The value is the process tree's CPU seconds (user +
system, psutil: the process and its children) between start and end, over N, in µs: the
announcements' share is in it (100 of N + 100 messages). After stopping the process (SIGTERM)
the driver checks that the control queue is empty (everything acked) and that the table holds
exactly the workers, each with its last heartbeat.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from bench.harness import MeasurementError, Sample, Settings, python_command
from bench.postgres_common import (
    conninfo_of,
    create_schema,
    drop_schema,
    fresh_namespace,
    postgres_url,
    require_postgres,
    schema_of,
)
from bench.rabbit_common import amqp_url, require_rabbitmq
from bench.relay_common import alive, consumers_on, running
from bench.relay_throughput import relay_argv

#: Workers announced; the heartbeats go round-robin over them.
WORKERS = 100
#: Heartbeats per sample: N within these bounds. The relay takes them one at a time, a commit
#: each (a few hundred a second here), so a sample of 10,000 takes about 30 s.
MIN_BEATS = 5_000
MAX_BEATS = 10_000
#: The relay's prefetch on the control queue (``RelayEngine.run``); the baseline uses it too.
PREFETCH = 100
#: Heartbeats' ttl (s): far longer than any run, so none expires unread.
TTL_S = 3600.0
#: Running task ids each heartbeat lists.
RUNNING_IDS = 10
#: The heartbeat interval the workers announce (the default, s).
INTERVAL_S = 5.0
WORKER_KIND = "bench-heartbeats"
TASK_KINDS = ("resize", "thumbnail", "transcode")
_POLL_CONSUMER = 0.005
_POLL_END = 0.02
#: How long after the control queue is empty the last heartbeats may take to show in the table.
_SETTLE_S = 10.0

#: Makes the measured command from ``(amqp, store, namespace, control queue)``.
ArgvFor = Callable[[str, str, str, str], list[str]]


def heartbeat_count(settings: Settings) -> int:
    """How many heartbeats one sample uses."""
    return min(max(settings.tasks, MIN_BEATS), MAX_BEATS)


def worker_name(index: int) -> str:
    """The name of worker ``index``."""
    return f"bench-worker-{index:03d}"


def final_floor(beats: int, workers: int = WORKERS) -> int:
    """The smallest ``succeeded`` among the workers' last heartbeats: heartbeat ``i`` goes to
    worker ``i % workers``, so a worker's heartbeat is its last exactly when ``i`` is at least
    this."""
    return max(beats - workers, 0)


def beats_plan(beats: int, workers: int = WORKERS) -> list[list[int]]:
    """The heartbeats' indexes in sending rounds: one heartbeat per worker per round, rounds in
    order (the sends of a round are concurrent, so a worker's never share one)."""
    return [list(range(start, min(start + workers, beats))) for start in range(0, beats, workers)]


def _announcement(index: int, now: Any) -> Any:
    from tacoq.model.workers import Announcement, PayloadContract, TaskContract

    schema = {"type": "object", "properties": {"id": {"type": "string"}}, "required": ["id"]}
    contract = TaskContract(
        input=PayloadContract(content_type="application/json", json_schema=schema),
        output=PayloadContract(content_type="application/json", json_schema={"type": "object"}),
    )
    return Announcement(
        name=worker_name(index), worker_kind=WORKER_KIND, task_kinds=list(TASK_KINDS),
        contracts=dict.fromkeys(TASK_KINDS, contract), host="bench-host", pid=1000 + index,
        tacoq_version="0.0.0", python_version="3.11.0", concurrency=100, prefetch=400,
        started_at=now, heartbeat_interval=INTERVAL_S, sent_at=now,
    )  # fmt: skip


def _heartbeat(index: int, running_ids: list[uuid.UUID], now: Any) -> Any:
    from tacoq.model.workers import Heartbeat

    return Heartbeat(
        name=worker_name(index % WORKERS), worker_kind=WORKER_KIND, running=len(running_ids),
        succeeded=index, failed=0, retried=0, running_ids=running_ids,
        heartbeat_interval=INTERVAL_S, sent_at=now + timedelta(microseconds=index),
    )  # fmt: skip


async def preload(amqp: str, namespace: str, beats: int) -> int:
    """Announce the workers and send ``beats`` heartbeats; how many messages were sent."""
    from tacoq.model.task import utcnow
    from tacoq.model.wire import encode_control
    from tacoq.plugins import get_plugin_host

    broker = get_plugin_host().create_broker(amqp, namespace=namespace)
    await broker.connect()
    running_ids = [uuid.uuid4() for _ in range(RUNNING_IDS)]
    now = utcnow()
    try:
        await asyncio.gather(*(
            broker.send_control(encode_control(_announcement(i, now)), ttl=None)
            for i in range(WORKERS)
        ))  # fmt: skip
        for indexes in beats_plan(beats):
            await asyncio.gather(*(
                broker.send_control(encode_control(_heartbeat(i, running_ids, now)), ttl=TTL_S)
                for i in indexes
            ))  # fmt: skip
    finally:
        await broker.close()
    return WORKERS + beats


def _tree_cpu(process: Any) -> float:
    """User + system CPU seconds of ``process`` and its children (psutil), reaped ones too."""
    import psutil

    times = process.cpu_times()
    total = times.user + times.system + times.children_user + times.children_system
    for child in process.children(recursive=True):
        with contextlib.suppress(psutil.NoSuchProcess):
            child_times = child.cpu_times()
            total += child_times.user + child_times.system
    return float(total)


async def _drive(
    amqp: str, store: str, namespace: str, beats: int, argv_for: ArgvFor, what: str
) -> Sample:
    import aio_pika
    import psutil
    import psycopg
    from psycopg import sql

    from tacoq_rabbit.topology import Topology

    control_queue = Topology(namespace).control_queue
    workers = sql.Identifier(schema_of(store, namespace), "workers")
    count_last = sql.SQL(
        "SELECT count(*) FROM {} WHERE (heartbeat->>'succeeded')::bigint >= %s"
    ).format(workers)
    count_all = sql.SQL("SELECT count(*) FROM {}").format(workers)
    floor = final_floor(beats)
    expected = await preload(amqp, namespace, beats)

    async def lasts_found(db: Any) -> int:
        try:
            found = await (await db.execute(count_last, (floor,))).fetchone()
        except psycopg.errors.UndefinedTable:
            return -1
        return int(found[0]) if found else 0

    connection = await aio_pika.connect(amqp)
    async with (
        connection,
        await psycopg.AsyncConnection.connect(conninfo_of(store), autocommit=True) as db,
    ):
        channel = await connection.channel()
        waiting, _ = await consumers_on(channel, control_queue)
        if waiting != expected:
            raise MeasurementError(f"sent {expected} messages, the control queue has {waiting}")
        argv = argv_for(amqp, store, namespace, control_queue)
        with tempfile.TemporaryFile() as errors:
            async with running(argv, errors, what) as process:
                measured = psutil.Process(process.pid)
                while (await consumers_on(channel, control_queue))[1] == 0:
                    alive(process, errors, what)
                    await asyncio.sleep(_POLL_CONSUMER)
                start, cpu_start = time.time(), _tree_cpu(measured)
                drained_at = None
                while True:
                    left, _ = await consumers_on(channel, control_queue)
                    if left == 0:
                        found = await lasts_found(db)
                        if found >= WORKERS:
                            break
                        drained_at = drained_at or time.monotonic()
                        if time.monotonic() - drained_at > _SETTLE_S:
                            shown = (
                                "has no workers table"
                                if found < 0
                                else f"shows {found} of {WORKERS} workers' last heartbeats"
                            )
                            raise MeasurementError(
                                f"{what} drained the control queue, but {_SETTLE_S:g}s later "
                                f"the store {shown} (does it keep workers?)"
                            )
                    alive(process, errors, what)
                    await asyncio.sleep(_POLL_END)
                end, cpu_end = time.time(), _tree_cpu(measured)
        left, _ = await consumers_on(channel, control_queue)
        rows = await (await db.execute(count_all)).fetchone()
        lasts = await lasts_found(db)
    if left:
        raise MeasurementError(f"{left} control messages were left unacknowledged")
    if rows is None or rows[0] != WORKERS or lasts != WORKERS:
        raise MeasurementError(
            f"the table holds {rows} workers, {lasts} with their last heartbeat, not {WORKERS}"
        )
    cpu = cpu_end - cpu_start
    per_beat = cpu / beats
    return Sample(
        per_beat * 1e6,
        {
            "heartbeats/s": beats / (end - start),
            "CPU busy %": cpu / (end - start) * 100,
            # workers one core follows at 1 % of its time, each beating every INTERVAL_S
            "workers per 1 % core at 5 s": 0.01 * INTERVAL_S / per_beat,
        },
    )


def measure(settings: Settings, argv_for: ArgvFor, what: str, *, make_schema: bool) -> Sample:
    """Pre-load a fresh namespace, run the process, measure, clean up."""
    amqp, store = amqp_url(), postgres_url()
    require_rabbitmq(amqp)
    require_postgres(store)
    namespace = fresh_namespace("beats")
    beats = heartbeat_count(settings)

    async def run() -> Sample:
        async with asyncio.timeout(settings.timeout_s):
            if make_schema:
                await create_schema(store, namespace)
            return await _drive(amqp, store, namespace, beats, argv_for, what)

    try:
        return asyncio.run(run())
    except TimeoutError:
        raise MeasurementError(f"{what} took more than {settings.timeout_s:g}s") from None
    finally:
        with contextlib.suppress(Exception):
            from tacoq_rabbit.link import delete_namespace

            asyncio.run(delete_namespace(amqp, namespace, [WORKER_KIND]))
        with contextlib.suppress(Exception):
            drop_schema(store, namespace)


def sink_argv(amqp: str, store: str, namespace: str, control_queue: str) -> list[str]:
    """The raw aio-pika + psycopg baseline."""
    return python_command(
        "bench.heartbeat_sink", "--amqp", amqp, "--queue", control_queue,
        "--postgres", conninfo_of(store), "--schema", schema_of(store, namespace),
        "--prefetch", str(PREFETCH),
    )  # fmt: skip


def measure_relay(settings: Settings) -> Sample:
    """One sample of ``tacoq relay``."""
    return measure(settings, relay_argv, "tacoq relay", make_schema=False)


def measure_sink(settings: Settings) -> Sample:
    """One sample of the raw baseline."""
    return measure(settings, sink_argv, "the raw heartbeat sink", make_schema=True)
