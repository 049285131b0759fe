"""The relay-throughput measurement: one process drains pre-loaded worker traffic into Postgres.

For each sample, in a fresh namespace (RabbitMQ queues and a Postgres schema, deleted after),
the driver pre-loads the relay queue with what a relay sees for N tasks (max(N, 10,000), at
most 50,000), through the RabbitMQ broker plugin, in chunks of 500 tasks: the 500 assignments'
copies (``encode_assignment``, one message each), then the updates a busy worker would send,
batched 50 events per message (``encode_updates``): 10 messages of RUNNING events and 10 of
COMPLETED ones. Three updates per task; 1.04 messages per task.

Then the measured process starts, pinned to core 0:

- TacoQ: ``tacoq relay --no-http --no-cleanup`` over amqp:// and postgresql:// (default batch
  size 1,000 deliveries, prefetch 2,000); it runs TacoQ's migrations before it consumes.
- Baseline: ``python -m bench.relay_sink`` (raw aio-pika at the same prefetch, batches gathered
  the same way, raw psycopg ``executemany`` upserts, one ``multiple`` ack per batch) into the
  same table, created by TacoQ's migrations before it starts.

**The start** is the moment the driver sees a consumer on the relay queue (a passive declare
every 5 ms), so start-up and migrations are not counted; **the end** is the first moment the
driver's poll (``SELECT count(*) ... WHERE status = 'COMPLETED'``, every 20 ms) finds all N
tasks completed. Throughput = N / (end - start) task completions/s. After stopping the process
(SIGTERM) the driver checks that the relay queue is empty (everything acked) and that every row
is COMPLETED with its assignment's ``created_at``. The side number is the process's CPU
seconds (user + system, from ``/proc``) between start and end, per 1,000 tasks.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import timedelta

from bench.harness import MeasurementError, Sample, Settings, python_command
from bench.postgres_apply import WORKER_KIND, assigned
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
from bench.relay_common import alive, consumers_on, cpu_seconds, running

MIN_TASKS = 10_000
MAX_TASKS = 50_000
CHUNK = 500
EVENTS_PER_MESSAGE = 50
PREFETCH = 2000
BATCH = 1000
_POLL_CONSUMER = 0.005
_POLL_COUNT = 0.02

#: Makes the measured command from ``(amqp, store, namespace, relay queue)``.
ArgvFor = Callable[[str, str, str, str], list[str]]


def throughput_tasks(settings: Settings) -> int:
    """How many tasks one sample uses."""
    return min(max(settings.tasks, MIN_TASKS), MAX_TASKS)


async def preload(amqp: str, namespace: str, tasks: int) -> int:
    """Publish ``tasks`` tasks' relay traffic; returns how many messages reached the relay."""
    from tacoq.models import Payload, Phase, TaskEvent, utcnow
    from tacoq.plugins import get_plugin_host
    from tacoq.wire import encode_assignment, encode_updates

    broker = get_plugin_host().create_broker(amqp, namespace=namespace)
    await broker.connect()
    messages = 0
    try:
        for start in range(0, tasks, CHUNK):
            now = utcnow()
            indexes = range(start, min(start + CHUNK, tasks))
            ids = [uuid.uuid4() for _ in indexes]
            assigns = [assigned(task_id, i, now) for task_id, i in zip(ids, indexes, strict=True)]
            common = {"attempt": 1, "task_kind": "noop", "worker_kind": WORKER_KIND}
            started = [
                TaskEvent(id=task_id, phase=Phase.RUNNING, executed_by="bench-worker",
                          started_at=now, **common)  # type: ignore[arg-type]
                for task_id in ids
            ]  # fmt: skip
            done = [
                TaskEvent(id=task_id, phase=Phase.COMPLETED, executed_by="bench-worker",
                          started_at=now, completed_at=now + timedelta(milliseconds=1),
                          output=Payload("application/json", b"null"), **common)  # type: ignore[arg-type]
                for task_id in ids
            ]  # fmt: skip
            await broker.publish_many([(encode_assignment(event), 0) for event in assigns])
            updates = [
                (encode_updates(events[i : i + EVENTS_PER_MESSAGE]), 0)
                for events in (started, done)
                for i in range(0, len(events), EVENTS_PER_MESSAGE)
            ]
            await broker.publish_many(updates)
            messages += len(assigns) + len(updates)
    finally:
        await broker.close()
    return messages


async def _drive(
    amqp: str, store: str, namespace: str, tasks: int, argv_for: ArgvFor, what: str
) -> Sample:
    import aio_pika
    import psycopg
    from psycopg import sql

    from tacoq_rabbit.topology import Topology

    relay_queue = Topology(namespace).relay_queue
    schema = schema_of(store, namespace)
    expected = await preload(amqp, namespace, tasks)
    count_completed = sql.SQL("SELECT count(*) FROM {} WHERE status = 'COMPLETED'").format(
        sql.Identifier(schema, "tasks")
    )
    count_whole = sql.SQL(
        "SELECT count(*) FROM {} WHERE status = 'COMPLETED' AND created_at IS NOT NULL"
    ).format(sql.Identifier(schema, "tasks"))
    connection = await aio_pika.connect(amqp)
    async with (
        connection,
        await psycopg.AsyncConnection.connect(conninfo_of(store), autocommit=True) as db,
    ):
        channel = await connection.channel()
        waiting, _ = await consumers_on(channel, relay_queue)
        if waiting != expected:
            raise MeasurementError(f"pre-loaded {expected} messages, the relay queue has {waiting}")
        argv = argv_for(amqp, store, namespace, relay_queue)
        with tempfile.TemporaryFile() as errors:
            async with running(argv, errors, what) as process:
                while (await consumers_on(channel, relay_queue))[1] == 0:
                    alive(process, errors, what)
                    await asyncio.sleep(_POLL_CONSUMER)
                start, cpu_start = time.time(), cpu_seconds(process.pid)
                while True:
                    with contextlib.suppress(psycopg.errors.UndefinedTable):
                        cur = await db.execute(count_completed)
                        found = await cur.fetchone()
                        if found is not None and found[0] >= tasks:
                            break
                    alive(process, errors, what)
                    await asyncio.sleep(_POLL_COUNT)
                end, cpu_end = time.time(), cpu_seconds(process.pid)
        left, _ = await consumers_on(channel, relay_queue)
        whole = await (await db.execute(count_whole)).fetchone()
    if left:
        raise MeasurementError(f"{left} relay messages were left unacknowledged")
    if whole is None or whole[0] != tasks:
        raise MeasurementError(f"{whole} rows are complete with their assignment, not {tasks}")
    return Sample(
        tasks / (end - start),
        {
            "CPU s per 1k tasks": (cpu_end - cpu_start) / tasks * 1000,
            "CPU busy %": (cpu_end - cpu_start) / (end - start) * 100,
        },
    )


def measure(settings: Settings, argv_for: ArgvFor, what: str, *, make_schema: bool) -> Sample:
    """Pre-load a fresh namespace, run the process, measure, clean up."""
    amqp, store = amqp_url(), postgres_url()
    require_rabbitmq(amqp)
    require_postgres(store)
    namespace = fresh_namespace("through")
    tasks = throughput_tasks(settings)

    async def run() -> Sample:
        async with asyncio.timeout(settings.timeout_s):
            if make_schema:
                await create_schema(store, namespace)
            return await _drive(amqp, store, namespace, tasks, argv_for, what)

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


def relay_argv(amqp: str, store: str, namespace: str, relay_queue: str) -> list[str]:
    """``tacoq relay`` with only its consumer."""
    from bench.scenarios import tacoq_command

    return [
        tacoq_command(), "relay", "--broker", amqp, "--store", store, "--namespace", namespace,
        "--no-http", "--no-cleanup",
    ]  # fmt: skip


def sink_argv(amqp: str, store: str, namespace: str, relay_queue: str) -> list[str]:
    """The raw aio-pika + psycopg baseline."""
    return python_command(
        "bench.relay_sink", "--amqp", amqp, "--queue", relay_queue,
        "--postgres", conninfo_of(store), "--schema", schema_of(store, namespace),
        "--prefetch", str(PREFETCH), "--batch", str(BATCH),
    )  # fmt: skip


def measure_relay(settings: Settings) -> Sample:
    """One sample of ``tacoq relay``."""
    return measure(settings, relay_argv, "tacoq relay", make_schema=False)


def measure_sink(settings: Settings) -> Sample:
    """One sample of the raw baseline."""
    return measure(settings, sink_argv, "the raw sink", make_schema=True)
