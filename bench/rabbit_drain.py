"""The drain measurement: one worker process empties a queue of pre-loaded no-op tasks.

For each sample: a fresh namespace gets ``max(N, 10,000)`` tasks (published with the sync
publisher's windowed ``publish_many``), the relay's copies of the assignments are purged, then
the measured process starts, pinned like every measured process (:func:`bench.harness.pinned`):

- TacoQ: ``tacoq worker bench.rabbit_apps:async_app|sync_app --concurrency 100`` (prefetch =
  concurrency). This driver consumes the relay's queue itself (no relay runs) and counts the
  COMPLETED events in the worker's ``updates`` messages. **The end** is the moment the last
  COMPLETED event arrived: RabbitMQ routed (and, for the worker, confirmed) every update. The
  worker acks a batch of assignments right after its update is confirmed; after stopping it
  (SIGTERM) the driver checks the worker queue is empty, so every assignment was acked.
- Baseline: ``python -m bench.rabbit_consumer`` (raw aio-pika, prefetch 100, one ack per
  message) acks the same number of the same messages; its end is its last ack.

**The start**, for both, is the moment the driver sees a consumer on the queue (a passive
``queue.declare`` every 5 ms), so interpreter start-up is not counted. Throughput = tasks /
(end - start). The worker's side number is messages/task: update messages it published per
task (a busy worker batches completions, so fewer than one is expected).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import tempfile
import time
from collections.abc import Callable
from typing import Any

from bench.harness import ROOT, MeasurementError, Sample, Settings, pinned, python_command
from bench.rabbit_common import (
    BENCH_KIND,
    IN_FLIGHT,
    amqp_url,
    delete_namespace,
    fresh_namespace,
    require_rabbitmq,
)

#: The drain always uses at least this many tasks (issue 3 asks for N >= 10,000).
MIN_DRAIN_TASKS = 10_000
_POLL = 0.005

#: Makes the measured command from ``(url, namespace, tasks)``.
ArgvFor = Callable[[str, str, int], list[str]]


def drain_tasks(settings: Settings) -> int:
    """How many tasks one drain sample uses."""
    return max(settings.tasks, MIN_DRAIN_TASKS)


def preload(url: str, namespace: str, tasks: int) -> None:
    """Publish ``tasks`` no-op assignments, then purge the relay's copies of them."""
    from tacoq_rabbit import SyncRabbitPublisher
    from tacoq_rabbit.admin import RabbitAdmin

    with SyncRabbitPublisher(url, namespace=namespace) as pub:
        pub.publish_many([("noop", i) for i in range(tasks)], worker_kind=BENCH_KIND, window=500)
    with RabbitAdmin(url, namespace) as admin:
        admin.purge_relay()


async def _depth(channel: Any, name: str) -> tuple[int, int]:
    queue = await channel.declare_queue(name, passive=True)
    result = queue.declaration_result
    return int(result.message_count), int(result.consumer_count)


async def _drive(url: str, namespace: str, tasks: int, argv: list[str], timeout: float) -> Sample:
    import aio_pika

    from tacoq_rabbit.topology import Topology

    topology = Topology(namespace)
    worker_queue = topology.worker_queue(BENCH_KIND)
    tacoq = "bench.rabbit_consumer" not in argv
    counts = {"messages": 0, "completed": 0}
    done = asyncio.Event()
    end = 0.0

    def on_update(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        nonlocal end
        counts["messages"] += 1
        counts["completed"] += sum(1 for e in json.loads(message.body) if e["phase"] == "completed")
        if counts["completed"] >= tasks and not done.is_set():
            end = time.time()
            done.set()

    connection = await aio_pika.connect(url)
    with tempfile.TemporaryFile() as errors:
        async with connection:
            poll = await connection.channel()
            if tacoq:
                listen = await connection.channel()
                await listen.set_qos(prefetch_count=1000)
                relay = await listen.get_queue(topology.relay_queue)
                await relay.consume(on_update, no_ack=True)  # type: ignore[arg-type]
            process = await asyncio.create_subprocess_exec(
                *pinned(argv), cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=errors
            )
            try:
                async with asyncio.timeout(timeout):
                    while (await _depth(poll, worker_queue))[1] == 0:
                        if process.returncode is not None:
                            break
                        await asyncio.sleep(_POLL)
                    start = time.time()
                    if tacoq:
                        await done.wait()
                    else:
                        stdout, _ = await process.communicate()
                        end = float(
                            json.loads(stdout.decode().strip().splitlines()[-1])["end_wall"]
                        )
            except TimeoutError:
                raise MeasurementError(
                    f"the drain of {tasks} tasks took more than {timeout:g}s "
                    f"({counts['completed']} completed)"
                ) from None
            except (ValueError, KeyError, IndexError):
                raise MeasurementError(f"bad output from the consumer: {_last(errors)}") from None
            finally:
                if process.returncode is None:
                    process.send_signal(signal.SIGTERM)
                    try:
                        await asyncio.wait_for(process.wait(), 30)
                    except TimeoutError:
                        process.kill()
                        await process.wait()
            if process.returncode not in (0, -signal.SIGTERM):
                raise MeasurementError(
                    f"the drain process exited {process.returncode}: {_last(errors)}"
                )
            left, _ = await _depth(poll, worker_queue)
            if left:
                raise MeasurementError(f"{left} tasks were left unacknowledged in the queue")
    notes = {"msgs/task": counts["messages"] / tasks} if tacoq else {}
    return Sample(tasks / (end - start), notes)


def _last(errors: Any) -> str:
    errors.seek(0)
    lines = errors.read().decode("utf-8", "replace").strip().splitlines()
    return lines[-1][:200] if lines else "no output"


def measure_drain(settings: Settings, argv_for: ArgvFor) -> Sample:
    """Pre-load a fresh namespace, run ``argv_for(url, namespace, tasks)``, measure, clean up."""
    url = amqp_url()
    require_rabbitmq(url)
    namespace = fresh_namespace("drain")
    tasks = drain_tasks(settings)
    try:
        preload(url, namespace, tasks)
        return asyncio.run(
            _drive(url, namespace, tasks, argv_for(url, namespace, tasks), settings.timeout_s)
        )
    finally:
        with contextlib.suppress(Exception):
            delete_namespace(url, namespace)


def worker_argv(app: str) -> ArgvFor:
    """The ``tacoq worker`` command for ``bench.rabbit_apps:<app>``."""
    from bench.scenarios import tacoq_command

    def argv(url: str, namespace: str, tasks: int) -> list[str]:
        return [
            tacoq_command(), "worker", f"bench.rabbit_apps:{app}",
            "--concurrency", str(IN_FLIGHT), "--broker", url, "--namespace", namespace,
        ]  # fmt: skip

    return argv


def consumer_argv(url: str, namespace: str, tasks: int, library: str = "aio-pika") -> list[str]:
    """A raw consumer (``library``: aio-pika's consumer API, or aiormq, its transport)."""
    from tacoq_rabbit.topology import Topology

    queue = Topology(namespace).worker_queue(BENCH_KIND)
    return python_command(
        "bench.rabbit_consumer", "--url", url, "--queue", queue,
        "--prefetch", str(IN_FLIGHT), "--count", str(tasks), "--library", library,
    )  # fmt: skip


def aiormq_consumer_argv(url: str, namespace: str, tasks: int) -> list[str]:
    """The raw aiormq consumer: the transport tacoq-rabbit talks to directly."""
    return consumer_argv(url, namespace, tasks, "aiormq")
