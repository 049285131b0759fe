"""The relay-latency measurement: one task at a time, from a worker finishing it to a waiting
client seeing it COMPLETED over the relay's HTTP API.

For each sample, in a fresh namespace (RabbitMQ queues and a Postgres schema, deleted after):

- TacoQ: a real ``tacoq relay`` process (amqp:// + postgresql://, HTTP on a free loopback port,
  no cleanup job) and a real ``tacoq worker bench.relay_apps:stamp_app --concurrency 1``
  process, both pinned to core 0. The driver (this process, not pinned) first starts a
  ``RelayClient.wait(id)`` long-poll for a fresh id, gives it 10 ms to park, then publishes the
  task with that id (``Publisher.publish``, awaiting the broker's confirm). The no-op handler
  returns ``time.time()`` as its output (**the start**: the worker finished the task); **the
  end** is ``time.time()`` when ``wait`` returns the COMPLETED task in the driver. Also
  reported: publish -> result, from just before the publish call to the same end.
- Baseline: the same one-at-a-time round trip through raw aio-pika RPC: the driver publishes a
  persistent message (publisher confirms) with ``reply_to`` and ``correlation_id``; a raw
  aio-pika consumer process (``bench.relay_rpc``, pinned, prefetch 1) stamps ``time.time()``
  (the start), publishes the stamp to the reply queue and acks; the end is the driver's
  ``time.time()`` when the reply arrives.

20 warm-up round trips are not counted; then ``LATENCY_SAMPLES`` (300) are.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import statistics
import tempfile
import time
import uuid
from typing import Any

from bench.harness import MeasurementError, Sample, Settings
from bench.postgres_common import drop_schema, fresh_namespace, postgres_url, require_postgres
from bench.postgres_wait import percentile
from bench.rabbit_common import amqp_url, require_rabbitmq
from bench.relay_apps import RELAY_KIND
from bench.relay_common import alive, consumers_on, free_port, running

LATENCY_SAMPLES = 300
WARMUP = 20
#: The pause before each round trip (so each starts from idle and a waiter is parked).
PACE_S = 0.01


def latency_sample(after_finish: list[float], after_publish: list[float]) -> Sample:
    """p50 of worker-finished -> client-sees in µs; p99 and publish -> result in the notes."""
    if len(after_finish) != LATENCY_SAMPLES:
        raise MeasurementError(f"took {len(after_finish)} samples, not {LATENCY_SAMPLES}")
    return Sample(
        statistics.median(after_finish) * 1e6,
        {
            "p99 ms": percentile(after_finish, 0.99) * 1000,
            "publish->result p50 ms": statistics.median(after_publish) * 1000,
            "publish->result p99 ms": percentile(after_publish, 0.99) * 1000,
        },
    )


async def _wait_healthy(url: str, process: asyncio.subprocess.Process, errors: Any) -> None:
    import httpx

    async with httpx.AsyncClient(base_url=url, timeout=2) as http:
        while True:
            alive(process, errors, "tacoq relay")
            with contextlib.suppress(httpx.TransportError):
                if (await http.get("/health")).status_code == 200:
                    return
            await asyncio.sleep(0.05)


async def _tacoq_round_trips(amqp: str, store: str, namespace: str) -> Sample:
    from bench.scenarios import tacoq_command
    from tacoq.client import RelayClient
    from tacoq.publisher import Publisher

    tacoq = tacoq_command()
    port = free_port()
    relay_argv = [
        tacoq, "relay", "--broker", amqp, "--store", store, "--namespace", namespace,
        "--host", "127.0.0.1", "--port", str(port), "--no-cleanup",
    ]  # fmt: skip
    worker_argv = [
        tacoq, "worker", "bench.relay_apps:stamp_app", "--broker", amqp,
        "--namespace", namespace, "--concurrency", "1",
    ]  # fmt: skip
    base_url = f"http://127.0.0.1:{port}"
    after_finish: list[float] = []
    after_publish: list[float] = []
    with tempfile.TemporaryFile() as relay_errors, tempfile.TemporaryFile() as worker_errors:
        async with (
            running(relay_argv, relay_errors, "tacoq relay") as relay,
            running(worker_argv, worker_errors, "tacoq worker") as worker,
        ):
            await _wait_healthy(base_url, relay, relay_errors)
            async with (
                RelayClient(base_url, timeout=10, retries=2) as client,
                Publisher(amqp, namespace=namespace) as publisher,
            ):

                async def watch(task_id: uuid.UUID, timeout: float) -> tuple[Any, float]:
                    task = await client.wait(task_id, timeout)
                    return task, time.time()

                for index in range(WARMUP + LATENCY_SAMPLES):
                    alive(relay, relay_errors, "tacoq relay")
                    alive(worker, worker_errors, "tacoq worker")
                    task_id = uuid.uuid4()
                    # The first round trips also wait for the worker to start consuming.
                    waiting = asyncio.create_task(watch(task_id, 60 if index == 0 else 10))
                    await asyncio.sleep(PACE_S)
                    published = time.time()
                    await publisher.publish("stamp", index, worker_kind=RELAY_KIND, id=task_id)
                    task, seen = await waiting
                    if not task.is_completed or task.output is None:
                        raise MeasurementError(f"task {task_id} did not complete: {task.status}")
                    finished = float(json.loads(task.output.data)["finished"])
                    if index >= WARMUP:
                        after_finish.append(seen - finished)
                        after_publish.append(seen - published)
    return latency_sample(after_finish, after_publish)


def measure_tacoq(settings: Settings) -> Sample:
    """One relay-latency sample of TacoQ (a relay and a worker process) in a fresh namespace."""
    amqp, store = amqp_url(), postgres_url()
    require_rabbitmq(amqp)
    require_postgres(store)
    namespace = fresh_namespace("latency")

    async def measure() -> Sample:
        async with asyncio.timeout(settings.timeout_s):
            return await _tacoq_round_trips(amqp, store, namespace)

    try:
        return asyncio.run(measure())
    except TimeoutError:
        raise MeasurementError(f"the round trips took more than {settings.timeout_s:g}s") from None
    finally:
        with contextlib.suppress(Exception):
            from tacoq_rabbit.link import delete_namespace

            asyncio.run(delete_namespace(amqp, namespace, [RELAY_KIND]))
        with contextlib.suppress(Exception):
            drop_schema(store, namespace)


async def _rpc_round_trips(amqp: str, queue_name: str) -> Sample:
    import aio_pika

    from bench.harness import python_command

    after_finish: list[float] = []
    after_publish: list[float] = []
    pending: dict[str, asyncio.Future[tuple[float, float]]] = {}

    def on_reply(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        seen = time.time()
        future = pending.pop(message.correlation_id or "", None)
        if future is not None and not future.done():
            future.set_result((float(json.loads(message.body)["finished"]), seen))

    connection = await aio_pika.connect(amqp)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        queue = await channel.declare_queue(queue_name, durable=True)
        replies = await channel.declare_queue(exclusive=True, auto_delete=True)
        await replies.consume(on_reply, no_ack=True)  # type: ignore[arg-type]
        argv = python_command("bench.relay_rpc", "--url", amqp, "--queue", queue_name)
        try:
            with tempfile.TemporaryFile() as errors:
                async with running(argv, errors, "the raw RPC consumer") as server:
                    while (await consumers_on(channel, queue_name))[1] == 0:
                        alive(server, errors, "the raw RPC consumer")
                        await asyncio.sleep(0.005)
                    for index in range(WARMUP + LATENCY_SAMPLES):
                        alive(server, errors, "the raw RPC consumer")
                        correlation = uuid.uuid4().hex
                        future = asyncio.get_running_loop().create_future()
                        pending[correlation] = future
                        await asyncio.sleep(PACE_S)
                        body = json.dumps(index).encode()
                        message = aio_pika.Message(
                            body,
                            content_type="application/json",
                            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                            reply_to=replies.name,
                            correlation_id=correlation,
                        )
                        published = time.time()
                        await channel.default_exchange.publish(message, routing_key=queue_name)
                        finished, seen = await asyncio.wait_for(future, 10)
                        if index >= WARMUP:
                            after_finish.append(seen - finished)
                            after_publish.append(seen - published)
        finally:
            with contextlib.suppress(Exception):
                await queue.delete(if_unused=False, if_empty=False)
    return latency_sample(after_finish, after_publish)


def measure_rpc(settings: Settings) -> Sample:
    """One sample of the raw aio-pika RPC baseline, on a queue of its own (deleted after)."""
    amqp = amqp_url()
    require_rabbitmq(amqp)
    queue_name = f"{fresh_namespace('rpc')}.requests"

    async def measure() -> Sample:
        async with asyncio.timeout(settings.timeout_s):
            return await _rpc_round_trips(amqp, queue_name)

    try:
        return asyncio.run(measure())
    except TimeoutError:
        raise MeasurementError(f"the round trips took more than {settings.timeout_s:g}s") from None
