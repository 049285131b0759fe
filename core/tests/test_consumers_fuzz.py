"""Fuzzing the consumers: a real relay and a real worker (memory broker, SQLite store) fed
hostile messages (:mod:`tacoq.testing.poison`) through their queues, one engine and one worker
for every example.

After each message: the relay and the worker still run, the message ended exactly one way, the
one its decoding predicts (:mod:`tacoq.testing.consumer_probe`), and a normal task published
after it completes. The Postgres plugin runs the relay part against Postgres.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tacoq.contracts.broker import Broker
from tacoq.model.wire import Envelope
from tacoq.plugins import get_plugin_host
from tacoq.publishing.publisher import Publisher
from tacoq.relay.engine import RelayEngine
from tacoq.testing import fresh_namespace
from tacoq.testing.consumer_probe import RelayProbe, WorkerProbe
from tacoq.testing.poison import (
    assignment_envelopes,
    hostile_envelopes,
    unknown_kind_envelopes,
    updates_envelopes,
)
from tacoq.worker import WorkerApp
from tacoq.worker.runtime import WorkerRuntime

EXAMPLES = 120
TIMEOUT = 10.0
CONSUMER_FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    # one relay and one worker (function-scoped fixtures) serve every example, on purpose
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)

APP = WorkerApp("fuzz", name="fuzz-worker")


@APP.task
async def echo(value: int) -> int:
    return value


@dataclass
class System:
    """A running relay and worker, the broker to feed them, and a publisher of normal tasks."""

    relay: RelayEngine
    runtime: WorkerRuntime
    broker: Broker
    publisher: Publisher
    jobs: list[asyncio.Task[None]]

    def __post_init__(self) -> None:
        self.relay_probe = RelayProbe(self.relay, self.broker, timeout=TIMEOUT)
        self.worker_probe = WorkerProbe(
            self.runtime, self.broker, self.relay.store, timeout=TIMEOUT
        )

    async def normal_task_completes(self, value: int) -> None:
        """Both consumers still run, and a task published now completes with its output."""
        assert not any(job.done() for job in self.jobs), [job for job in self.jobs if job.done()]
        since = self.relay.stats.deliveries
        task = await self.publisher.publish(echo, value)
        row = await self.relay.store.wait(task.id, TIMEOUT)
        assert row is not None
        assert row.is_completed, row
        assert row.result(int) == value
        await self.relay_probe.wait_applied(since, 2)  # its assignment copy and completion


@pytest.fixture
async def system(tmp_path: Path) -> AsyncIterator[System]:
    """Relay (SQLite store) and worker on one memory broker, in a fresh namespace."""
    ns = fresh_namespace("fuzz")
    url = f"memory://{ns}"
    relay = RelayEngine(url, f"sqlite:///{tmp_path}/fuzz.db", namespace=ns, cleanup=False)
    host = get_plugin_host()
    runtime = WorkerRuntime(
        APP, host.create_broker(url, namespace=ns), concurrency=4, prefetch=None, name="fuzz-w"
    )
    broker = host.create_broker(url, namespace=ns)
    await broker.connect()
    stop = asyncio.Event()
    jobs = [asyncio.create_task(relay.run(stop)), asyncio.create_task(runtime.run(stop))]
    await asyncio.wait_for(relay.ready.wait(), TIMEOUT)
    async with Publisher(url, namespace=ns) as publisher:
        try:
            yield System(relay, runtime, broker, publisher, jobs)
        finally:
            stop.set()
            await asyncio.wait_for(asyncio.gather(*jobs), TIMEOUT)
            await broker.close()


@CONSUMER_FUZZ
@given(st.one_of(hostile_envelopes(), updates_envelopes(), unknown_kind_envelopes()))
async def test_a_relay_ends_every_hostile_message_one_way_and_goes_on(
    system: System, envelope: Envelope
) -> None:
    outcome = await system.relay_probe.feed(envelope)
    event(f"relay: {outcome}")
    await system.normal_task_completes(len(envelope.body))


@CONSUMER_FUZZ
@given(st.one_of(assignment_envelopes(task_kinds=["echo"]), hostile_envelopes()))
async def test_a_worker_ends_every_hostile_message_one_way_and_goes_on(
    system: System, envelope: Envelope
) -> None:
    outcome = await system.worker_probe.feed(envelope)
    event(f"worker: {outcome}")
    await system.normal_task_completes(len(envelope.body))
