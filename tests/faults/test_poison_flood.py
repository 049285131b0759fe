"""Scenario 8: the poison flood. Issue 15's findings and 2,000 hostile messages drawn with a fixed
seed (:mod:`.flood`), published raw into a real relay's and a real worker's queues, with the
relay killed in the middle and restarted; then 1,000 normal tasks.

No service is restarted; only the relay process is (SIGKILL).
"""

from __future__ import annotations

import asyncio
import re
import signal
import time
from collections import Counter
from typing import Any

import aio_pika
import httpx

from tacoq_rabbit.testing import publish_raw
from tacoq_rabbit.topology import Topology

from .flood import (
    APPLIED,
    DEAD,
    RELAY,
    UNKNOWN,
    WORKER,
    Message,
    expected_dead_letters,
    expected_ends,
    finding_messages,
    found_dead_letters,
    markers_per_record,
    origin_of,
    random_messages,
)
from .harness import (
    KIND,
    Relay,
    Scene,
    check_outcome,
    eventually,
    never,
    queue_counts,
    record,
    sum_stats,
    wait_completed,
)

SEED = 15
RANDOM = 2000
TASKS = 1000
SETTLE = 120.0


async def publish(scene: Scene, messages: list[Message]) -> None:
    """Publish ``messages`` raw: into the relay's or the worker's queue, or (an assignment
    copied to both) to the tasks exchange with the worker's routing key."""
    topology = Topology(scene.namespace)
    queues = {RELAY: topology.relay_queue, WORKER: topology.worker_queue(KIND)}
    for target, queue in queues.items():
        batch = [(m.properties, m.body) for m in messages if m.target == target]
        await asyncio.to_thread(publish_raw, scene.amqp_url, queue, batch)
    routed = [m for m in messages if m.target == "exchange"]
    if routed:
        connection = await aio_pika.connect(scene.amqp_url)
        try:
            channel = await connection.channel(publisher_confirms=True)
            exchange = await channel.get_exchange(topology.tasks_exchange)
            for message in routed:
                headers = dict(message.properties.headers)
                amqp = aio_pika.Message(
                    message.body,
                    headers=headers,
                    content_type=message.properties.content_type,
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                )
                await exchange.publish(amqp, routing_key=topology.worker_routing_key(KIND))
        finally:
            await connection.close()


async def settled(
    scene: Scene,
    relay: Relay,
    messages: list[Message],
    base: dict[str, int],
    health_timeouts: list[float],
) -> dict[str, Any]:
    """Wait until both queues and the dead-letter queue are empty, every dead letter of
    ``messages`` is in the store, and the relay counted its part (``base``: its counters
    before ``messages``); return the relay's counters. A ``GET /health`` that times out (a
    relay busy for 10 s: issue 15 fuzz finding 3) is noted in ``health_timeouts`` and read
    again."""
    letters = sum(expected_dead_letters(messages).values())
    relay_ends = expected_ends(messages, RELAY)

    def done() -> dict[str, Any] | None:
        try:
            stats = relay.stats()
        except httpx.TimeoutException:
            health_timeouts.append(time.monotonic())
            return None
        return {
            "records": len(scene.dead_letters()),
            "unknown": stats["unknown_messages"] - base.get("unknown_messages", 0),
            "dead": stats["dead_lettered"] - base.get("dead_lettered", 0),
            "stats": stats,
        }

    def counted(state: dict[str, Any] | None) -> bool:
        return (
            state is not None
            and state["records"] >= base.get("records", 0) + letters
            and state["unknown"] >= relay_ends[UNKNOWN]
            and state["dead"] >= relay_ends[DEAD]
        )

    state: dict[str, Any] = await eventually(done, counted, SETTLE, "the flood settled")
    empty = {"relay": 0, "dead-letter": 0, f"worker:{KIND}": 0}
    deadline = time.monotonic() + SETTLE
    while (counts := await queue_counts(scene.amqp_url, scene.namespace, [KIND])) != empty:
        assert time.monotonic() < deadline, counts
        await asyncio.sleep(0.25)
    stats: dict[str, Any] = state["stats"]
    return stats


def worker_counters(output: str) -> dict[str, int]:
    """The counters of a stopped worker's last line ``worker NAME stopped (a 1, b 2)``."""
    found = re.findall(r"worker \S+ stopped \(([^)]*)\)", output)
    assert found, output[-2000:]
    return {k: int(v) for k, v in (part.rsplit(" ", 1) for part in found[-1].split(", ") if part)}


async def test_a_poison_flood_with_a_relay_killed_midway_loses_and_doubles_nothing(
    scene: Scene,
) -> None:
    """Scenario 8. Phase A: the findings' messages and the first half of the random ones go to
    a running relay and worker; everything settles. Phase B: the relay is frozen (SIGSTOP), the
    second half is published (RabbitMQ hands the relay's share to the frozen relay), the relay
    is SIGKILLed holding it and a new relay takes over its redeliveries. Freezing first keeps
    every counter exact: the killed relay counted nothing it did not also ack.

    Afterwards the dead-letters table holds exactly the expected records per class and origin,
    one per message and origin (none twice); the relays' ``unknown_messages`` and
    ``dead_lettered`` and the worker's counters are exactly the expected ones; what a message's
    decoding says is applied left its rows; the findings' assignment is completed as
    ``DeadLettered``; the worker is the same process throughout; 1,000 normal tasks then
    complete, each executed once.

    A relay or worker spends about 5 s on each log line quoting a 70,000-character header
    (issue 15 fuzz finding 3, strict xfails in ``cli/tests/test_redact_regression.py`` and
    ``core/tests/test_wire_regressions.py``): ``GET /health`` may time out meanwhile; such
    reads are counted (``health_reads_timed_out``) and retried.
    """
    began = time.monotonic()
    drawn_at = time.monotonic()
    findings = finding_messages()
    drawn = random_messages(RANDOM, SEED)
    drawing = time.monotonic() - drawn_at
    half = RANDOM // 2
    phase_a, phase_b = [*findings, *drawn[:half]], drawn[half:]
    everything = [*findings, *drawn]

    first = scene.relay("relay-1")
    worker = scene.worker("w-flood", "--concurrency", "8")
    worker_pid = worker.pid

    await publish(scene, phase_a)
    health_timeouts: list[float] = []
    stats_a = await settled(scene, first, phase_a, {}, health_timeouts)
    records_a = len(scene.dead_letters())

    first.signal(signal.SIGSTOP)
    await publish(scene, phase_b)
    await asyncio.sleep(1.0)  # RabbitMQ pushes the relay's share to the frozen relay
    held = await queue_counts(scene.amqp_url, scene.namespace, [KIND])
    first.signal(signal.SIGKILL)
    assert first.wait(10) == -signal.SIGKILL
    second = scene.relay("relay-2")
    stats_b = await settled(scene, second, phase_b, {"records": records_a}, health_timeouts)

    records = scene.dead_letters()
    expected = expected_dead_letters(everything)
    found = found_dead_letters(records)
    assert found == expected, {"expected": expected, "found": found}
    twice = {k: v for k, v in markers_per_record(records).items() if v > 1}
    assert not twice, twice
    assert all(record["reason"] for record in records)
    relay_ends = expected_ends(everything, RELAY)
    totals = sum_stats([stats_a, stats_b])
    assert totals["unknown_messages"] == relay_ends[UNKNOWN], (totals, relay_ends)
    assert totals["dead_lettered"] == relay_ends[DEAD], (totals, relay_ends)

    assert worker.alive(), worker.tail
    assert worker.pid == worker_pid
    assert second.alive(), second.tail
    publisher = scene.publisher(TASKS)
    assert publisher.wait(120) == 0, publisher.tail
    confirmed = scene.confirmed()
    assert len(confirmed) == TASKS
    done = await wait_completed(scene, list(confirmed), timeout=120)
    stats_c = second.stats()
    outcome = check_outcome(scene, confirmed, done, sum_stats([stats_a, stats_c]), may_rerun=never)
    assert worker.alive(), worker.tail
    assert second.alive(), second.tail
    assert worker.pid == worker_pid

    rows = scene.rows()
    applied = [m for m in everything if APPLIED in m.expected.values()]
    missing = [m.marker for m in applied if not all(i in rows for i in m.task_ids)]
    assert not missing, missing[:20]
    finding = next(m for m in findings if m.cls == "finding-assign")
    task_id = finding.properties.headers["tacoq-id"]
    assert rows[task_id]["status"] == "COMPLETED", rows.get(task_id)
    assert rows[task_id]["error_type"] == "DeadLettered", rows[task_id]

    worker.signal(signal.SIGTERM)
    assert worker.wait(60) == 0, worker.tail
    counters = worker_counters(worker.output)
    worker_ends = expected_ends(everything, WORKER)
    assert counters.get("unknown_messages", 0) == worker_ends[UNKNOWN], (counters, worker_ends)
    assert counters.get("dead_lettered", 0) == worker_ends[DEAD], (counters, worker_ends)

    by_class = Counter(m.cls for m in everything)
    record(
        "8-poison-flood",
        injected=f"issue 15's finding messages ({len(findings)}) and {RANDOM} hostile messages "
        f"drawn with seed {SEED}, raw into the relay's and the worker's queues; the relay "
        f"frozen and SIGKILLed holding the second half, a new relay took over; then "
        f"{TASKS} normal tasks",
        messages=dict(by_class),
        messages_by_queue=dict(Counter(m.target for m in everything)),
        relay_expected=dict(relay_ends),
        worker_expected=dict(worker_ends),
        dead_letters_by_class_and_origin={f"{c} {o}": n for (c, o), n in sorted(found.items())},
        dead_letters=len(records),
        dead_lettered_twice=len(twice),
        relay_unknown_messages=totals["unknown_messages"],
        relay_dead_lettered=totals["dead_lettered"],
        worker=counters,
        queues_when_killed=held,
        relay_messages_in_flight_at_kill=sum(m.target == RELAY for m in phase_b) - held["relay"],
        relay_pids={"killed": first.pid, "restarted": second.pid},
        worker_pid={"before": worker_pid, "after": worker.pid},
        drawing_seconds=round(drawing, 1),
        health_reads_timed_out=len(health_timeouts),
        relay=stats_c,
        seconds=round(time.monotonic() - began, 1),
        **outcome.counts(),
    )
    assert {origin_of(RELAY), origin_of(WORKER)} >= {o for _, o in found}
