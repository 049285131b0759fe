"""Scenario 5: a relay SIGKILLed in the middle of its batches; the rows it leaves behind, once
another relay finished, are identical to those of a relay that saw the same messages and no
fault."""

from __future__ import annotations

import asyncio
import signal
import time

import aio_pika

from tacoq.testing import fresh_namespace
from tacoq_postgres.settings import schema_for_namespace
from tacoq_postgres.testing import drop_schemas
from tacoq_rabbit.link import delete_namespace
from tacoq_rabbit.topology import RELAY_ROUTING_KEY, Topology

from .harness import (
    KIND,
    Scene,
    check_outcome,
    eventually,
    never,
    queue_counts,
    read_rows,
    record,
    relay_stats,
    sum_stats,
    wait_completed,
)

TASKS = 1500


async def mirror(amqp_url: str, source: str, target: str) -> None:
    """Bind ``target``'s relay queue to ``source``'s exchange with the keys of ``source``'s relay
    queue, so it receives a copy of every message ``source``'s relay receives."""
    src, dst = Topology(source), Topology(target)
    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel()
        exchange = await channel.get_exchange(src.tasks_exchange, ensure=True)
        queue = await channel.declare_queue(dst.relay_queue, passive=True)
        for key in (RELAY_ROUTING_KEY, src.worker_routing_key(KIND)):
            await queue.bind(exchange, key)
    finally:
        await connection.close()


async def test_relay_sigkill_mid_batch_leaves_rows_identical_to_a_faultless_run(
    scene: Scene,
) -> None:
    """Scenario 5. While ``TASKS`` tasks' messages wait in the relay queue, a relay (batches of
    10, prefetch 20) starts, commits a few batches and is SIGKILLed; a second relay finishes.

    A reference relay in another namespace consumes a mirror of the very same messages (its
    relay queue is bound to this namespace's exchange with the same keys) without any fault. The
    two tables must be identical, column for column, row for row. At-least-once allows the
    killed relay's committed-but-unacknowledged batch to be applied again: that only shows as
    duplicate completions on the second relay, never as a different row. Workers are not
    disturbed: no task runs twice.
    """
    reference = fresh_namespace("faultsref")
    began = time.monotonic()
    try:
        worker = scene.worker("w-a", "--concurrency", "32")
        ref_relay = scene.relay("reference", "--namespace", reference)
        await mirror(scene.amqp_url, scene.namespace, reference)
        publisher = scene.publisher(TASKS)
        assert publisher.wait(120) == 0, publisher.tail
        confirmed = scene.confirmed()
        assert len(confirmed) == TASKS
        ids = list(confirmed)

        def reference_done(rows: dict[str, object]) -> bool:
            return len(rows) == TASKS and all(
                row["status"] == "COMPLETED"  # type: ignore[index]
                for row in rows.values()
            )

        await eventually(
            lambda: read_rows(scene.postgres_url, reference), reference_done, 120, "reference"
        )
        waiting = await queue_counts(scene.amqp_url, scene.namespace, [KIND])
        assert waiting["worker:faults"] == 0

        victim = scene.relay("victim", "--batch-size", "10")
        deadline = time.monotonic() + 30
        last: dict[str, int] = {}
        while not last or last["batches"] < 5:
            last = relay_stats(victim.url)
            assert time.monotonic() < deadline, victim.tail
            await asyncio.sleep(0.01)
        victim.signal(signal.SIGKILL)
        assert victim.wait(10) == -signal.SIGKILL
        left = await queue_counts(scene.amqp_url, scene.namespace, [KIND])
        committed_before_kill = len(scene.rows())
        assert left["relay"] > 0, "the victim finished before the kill: nothing was mid-batch"

        finisher = scene.relay("finisher", "--batch-size", "10")
        rows = await wait_completed(scene, ids, timeout=120)
        assert len(rows) == TASKS
        expected = read_rows(scene.postgres_url, reference)
        differing = [i for i in ids if rows[i] != expected[i]]
        assert not differing, [(rows[i], expected[i]) for i in differing[:3]]
        assert set(rows) == set(expected)

        stats = finisher.stats()
        total = sum_stats([last, stats])
        outcome = check_outcome(scene, confirmed, rows, total, may_rerun=never)
        assert total["conflicting_completions"] == 0
        assert ref_relay.stats()["duplicate_completions"] == 0
        assert worker.alive()
        assert finisher.alive()
        counts = await queue_counts(scene.amqp_url, scene.namespace, [KIND])
        assert counts["relay"] == 0
        assert counts["dead-letter"] == 0
        record(
            "5-relay-sigkill",
            injected=f"SIGKILL of a relay (batch size 10) after {last['batches']}+ batches, "
            f"with the messages of {TASKS} completed tasks waiting in its queue",
            batches_seen_before_kill=last["batches"],
            rows_before_kill=committed_before_kill,
            messages_left_at_kill=left["relay"],
            rows_compared=len(rows),
            rows_differing=len(differing),
            dead_lettered=counts["dead-letter"],
            relay=stats,
            seconds=round(time.monotonic() - began, 1),
            **outcome.counts(),
        )
    finally:
        scene.stop_all()
        await delete_namespace(scene.amqp_url, reference, [KIND])
        await drop_schemas(scene.postgres_url, [schema_for_namespace(reference)])
