"""The RabbitMQ scenarios: ``rabbit-publish`` and ``rabbit-drain`` (issue 3 point 10, issue 6
point 9). Both skip with a clear row when RabbitMQ is unreachable."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

from bench.harness import (
    Sample,
    Scenario,
    Settings,
    Variant,
    parse_json_summary,
    python_command,
    run_pinned,
    throughput_of,
)
from bench.rabbit_common import amqp_url, delete_namespace, fresh_namespace, require_rabbitmq
from bench.rabbit_drain import (
    ArgvFor,
    aiormq_consumer_argv,
    consumer_argv,
    measure_drain,
    worker_argv,
)

#: The one-confirm-at-a-time sync publisher is slow: it publishes at most this many per sample.
SINGLE_CONFIRM_TASKS = 5_000


def publish_sample(mode: str, tasks: int, settings: Settings) -> float:
    """Run ``python -m bench.rabbit_publish MODE`` pinned, in a fresh namespace; its tasks/s."""
    url = amqp_url()
    require_rabbitmq(url)
    namespace = fresh_namespace("publish")
    argv = python_command(
        "bench.rabbit_publish", mode, "--tasks", str(tasks), "--url", url, "--namespace", namespace
    )
    try:
        summary = parse_json_summary(run_pinned(argv, settings.timeout_s), ("tasks", "throughput"))
    finally:
        with contextlib.suppress(Exception):
            delete_namespace(url, namespace)
    return throughput_of(summary)


def _publish(mode: str, *, single: bool = False) -> Callable[[Settings], float]:
    def measure(settings: Settings) -> float:
        tasks = min(settings.tasks, SINGLE_CONFIRM_TASKS) if single else settings.tasks
        return publish_sample(mode, tasks, settings)

    return measure


def _drain(argv_for: ArgvFor) -> Callable[[Settings], Sample]:
    def measure(settings: Settings) -> Sample:
        return measure_drain(settings, argv_for)

    return measure


RABBIT_PUBLISH = Scenario(
    name="rabbit-publish",
    description=(
        "Publishing N tasks to RabbitMQ with 100 publisher confirms in flight, pinned to one "
        "core, in a fresh namespace: the plugin's async `Publisher.publish` by name "
        "(serialization included) from 100 coroutines, against raw aio-pika publishing "
        "persistent messages of the same size (same body, headers, properties, topology) the "
        "same way. Beside them, the pika `SyncRabbitPublisher`: `publish_many` with a window of "
        "100 confirms, and `publish` one confirm at a time (at most 5,000 tasks)."
    ),
    unit="tasks/s",
    candidates=(
        Variant("tacoq Publisher (aio-pika, 100 in flight)", _publish("tacoq"), tacoq=True),
        Variant(
            "tacoq SyncRabbitPublisher.publish_many (pika, window 100)",
            _publish("pika-wnd"),
            tacoq=True,
        ),
        Variant(
            "tacoq SyncRabbitPublisher.publish (pika, 1 in flight)",
            _publish("pika-single", single=True),
            tacoq=True,
        ),
    ),
    baseline=Variant("raw aio-pika (100 in flight)", _publish("aio-pika")),
)  # fmt: skip

RABBIT_DRAIN = Scenario(
    name="rabbit-drain",
    description=(
        "One worker process drains max(N, 10,000) pre-loaded no-op tasks from RabbitMQ, status "
        "updates included: `tacoq worker` with async (or sync) no-op handlers at concurrency "
        "100, until the last COMPLETED update arrived (the worker queue is then checked empty), "
        "against a raw aio-pika consumer at prefetch 100 acking the same messages; both "
        "processes pinned to core 0, timed from the moment their consumer appears. "
        "msgs/task = update messages the worker published per task. Beside them, a raw aiormq "
        "consumer (aio-pika's own transport, which tacoq-rabbit uses directly) acking the same "
        "way, to show what aio-pika's consumer API costs."
    ),
    unit="tasks/s",
    candidates=(
        Variant(
            "tacoq worker (async no-op, concurrency 100)",
            _drain(worker_argv("async_app")),
            tacoq=True,
        ),
        Variant(
            "tacoq worker (sync no-op, concurrency 100)",
            _drain(worker_argv("sync_app")),
            tacoq=True,
        ),
        Variant(
            "raw aiormq consumer (prefetch 100; tacoq-rabbit's transport)",
            _drain(aiormq_consumer_argv),
        ),
    ),
    baseline=Variant("raw aio-pika consumer (prefetch 100)", _drain(consumer_argv)),
)  # fmt: skip
