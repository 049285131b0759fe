"""Scenarios 6 and 7: a flood of malformed messages on the relay's and a worker's queue; and
publishes that must be refused, or must wait for a worker that does not exist yet."""

from __future__ import annotations

import asyncio
import json
import sys
import time
import uuid
from typing import Any

import aio_pika

from tacoq.model.wire import UPDATES_CONTENT_TYPE

from .harness import (
    HERE,
    KIND,
    Scene,
    check_outcome,
    eventually,
    never,
    queue_counts,
    record,
    wait_completed,
)

ROUNDS = 10
BIG = b"x" * (2 * 1024 * 1024 + 1)


def assign_headers(task_id: str, **override: Any) -> dict[str, Any]:
    """Headers of a well-formed assignment of ``work`` (``override`` changes or, with None,
    removes some)."""
    headers: dict[str, Any] = {
        "tacoq-version": "1",
        "tacoq-event": "assign",
        "tacoq-id": task_id,
        "tacoq-task-kind": "work",
        "tacoq-worker-kind": KIND,
        "tacoq-attempt": "1",
        "tacoq-priority": "0",
        "tacoq-ttl": "3600",
        "tacoq-created-at": "2030-01-01T00:00:00.000000Z",
    }
    for name, value in override.items():
        name = f"tacoq-{name.replace('_', '-')}"
        if value is None:
            headers.pop(name)
        else:
            headers[name] = value
    return headers


UPDATES = {"tacoq-version": "1", "tacoq-event": "updates", "tacoq-count": "1"}
GOOD_EVENT = {"id": "", "attempt": 1, "phase": "running", "task_kind": "work",
              "worker_kind": KIND, "ttl": 5, "executed_by": "x", "started_at": None}  # fmt: skip


def relay_poison() -> list[tuple[str, dict[str, Any], str, bytes]]:
    """(label, headers, content type, body) of messages the relay must dead-letter."""
    wrong_type = dict(GOOD_EVENT, id=str(uuid.uuid4()), attempt="one")
    return [
        ("garbage body", UPDATES, UPDATES_CONTENT_TYPE, b"\x00\xffnot json at all"),
        ("missing headers", {}, "application/json", b"[]"),
        ("wrong types", UPDATES, UPDATES_CONTENT_TYPE, json.dumps([wrong_type]).encode()),
        (
            "bad header",
            assign_headers(str(uuid.uuid4()), priority="high"),
            "application/json",
            b'{"n": 1}',
        ),
        ("oversized", assign_headers(str(uuid.uuid4())), "application/json", BIG),
    ]


def worker_poison() -> list[tuple[str, dict[str, Any], str, bytes, str | None]]:
    """(label, headers, content type, body, expected error type of the task or None) of messages
    a worker must set aside (dead-letter) or fail cleanly."""
    ids = [str(uuid.uuid4()) for _ in range(4)]
    return [
        ("garbage body", {}, "application/octet-stream", b"\x00\x01\x02", None),
        (
            "missing headers",
            assign_headers(str(uuid.uuid4()), id=None),
            "application/json",
            b'{"n": 1}',
            None,
        ),
        ("bad uuid", assign_headers("not-a-uuid"), "application/json", b'{"n": 1}', None),
        ("oversized", assign_headers(ids[0]), "application/json", BIG, "DeadLettered"),
        (
            "wrong input type",
            assign_headers(ids[1]),
            "application/json",
            b'{"n": "many"}',
            "InvalidInput",
        ),
        ("not json", assign_headers(ids[2]), "application/json", b"{{{", "InvalidInput"),
        (
            "unknown kind",
            assign_headers(ids[3], task_kind="nope"),
            "application/json",
            b'{"n": 1}',
            "DeadLettered",
        ),
    ]


async def test_poison_messages_are_dead_lettered_and_valid_tasks_complete(scene: Scene) -> None:
    """Scenario 6. ``ROUNDS`` rounds of malformed messages, published raw to the physical
    relay and worker queues, interleaved with valid tasks from the publisher script.

    Every message the relay cannot decode (garbage, missing or ill-typed headers or fields, an
    assignment over the payload limit) is dead-lettered by the relay with a reason and counted
    in ``dead_lettered``. On the worker queue, messages with no usable task id are dead-lettered
    with a reason; an assignment over the payload limit and one of an unknown task kind are
    completed with ``DeadLettered`` (so nobody waits forever) and dead-lettered; invalid input
    completes with ``InvalidInput``. The valid tasks all complete, each once; no process dies.
    """
    relay = scene.relay()
    worker = scene.worker("w-a", "--concurrency", "8")
    began = time.monotonic()
    publisher = scene.publisher(200, rate=100)
    topology_relay = f"{scene.namespace}.relay"
    topology_worker = f"{scene.namespace}.worker.{KIND}"
    expected_errors: dict[str, str] = {}
    sent_relay = sent_worker = 0
    connection = await aio_pika.connect(scene.amqp_url)
    try:
        channel = await connection.channel(publisher_confirms=True)
        for _ in range(ROUNDS):
            for _label, headers, ctype, body in relay_poison():
                message = aio_pika.Message(body, headers=headers, content_type=ctype)
                await channel.default_exchange.publish(message, routing_key=topology_relay)
                sent_relay += 1
            for _label, headers, ctype, body, error in worker_poison():
                message = aio_pika.Message(body, headers=headers, content_type=ctype)
                await channel.default_exchange.publish(message, routing_key=topology_worker)
                sent_worker += 1
                if error is not None:
                    expected_errors[headers["tacoq-id"]] = error
            await asyncio.sleep(0.1)
    finally:
        await connection.close()
    assert publisher.wait(60) == 0, publisher.tail
    confirmed = scene.confirmed()
    assert len(confirmed) == 200
    rows = await wait_completed(scene, [*confirmed, *expected_errors], timeout=90)
    for task_id, error in expected_errors.items():
        assert rows[task_id]["is_error"], rows[task_id]
        assert rows[task_id]["error_type"] == error, rows[task_id]
    worker_dead = sum(e == "DeadLettered" for e in expected_errors.values())
    worker_dead += sum(e is None for *_, e in worker_poison()) * ROUNDS
    relay_dead = len(relay_poison()) * ROUNDS

    letters = await eventually(
        scene.dead_letters,
        lambda found: len(found) >= relay_dead + worker_dead,
        60,
        f"{relay_dead + worker_dead} dead letters in the store",
    )
    stats = relay.stats()
    by_origin: dict[str, int] = {}
    for letter in letters:
        by_origin[letter["origin"]] = by_origin.get(letter["origin"], 0) + 1
        assert letter["reason"], letter
    assert by_origin == {"relay": relay_dead, f"worker:{KIND}": worker_dead}, by_origin
    assert stats["dead_lettered"] == relay_dead
    reasons = sorted({letter["reason"][:70] for letter in letters})
    assert any("over the limit" in r for r in reasons), reasons
    outcome = check_outcome(scene, confirmed, rows, stats, may_rerun=never)
    assert relay.alive(), relay.tail
    assert worker.alive(), worker.tail
    assert "Traceback" not in worker.output, worker.tail
    counts = await queue_counts(scene.amqp_url, scene.namespace, [KIND])
    assert counts["worker:faults"] == 0
    assert counts["relay"] == 0
    assert counts["dead-letter"] == 0  # all taken into the store
    record(
        "6-poison",
        injected=f"{sent_relay} malformed messages on the relay queue and {sent_worker} on the "
        f"worker queue ({ROUNDS} rounds: garbage bodies, missing headers, wrong types, 2 MiB "
        "payloads, unknown kind), interleaved with 200 valid tasks",
        poison_relay=sent_relay,
        poison_worker=sent_worker,
        dead_lettered=len(letters),
        dead_lettered_by_origin=by_origin,
        failed_cleanly={
            e: sum(v == e for v in expected_errors.values())
            for e in sorted(set(expected_errors.values()))
        },
        reasons=reasons,
        relay=stats,
        seconds=round(time.monotonic() - began, 1),
        **outcome.counts(),
    )


async def test_bad_publishes_are_refused_and_a_late_worker_gets_its_task(scene: Scene) -> None:
    """Scenario 7. An oversized input and a typed input failing validation are refused by the
    publisher with a clear error (nothing is sent). A task for a worker kind no worker has
    started waits in that kind's queue (the publisher declares it) and runs when a worker of
    that kind starts."""
    relay = scene.relay()
    began = time.monotonic()
    bad = scene.spawn(
        "bad-publisher",
        [sys.executable, str(HERE / "publisher.py"), "bad", "--broker", scene.amqp_url,
         "--namespace", scene.namespace],
    )  # fmt: skip
    assert bad.wait(60) == 0, bad.output
    refused = json.loads(bad.lines[-1])
    assert refused["oversized"]["error"] == "PayloadTooLarge", refused
    assert "over the limit of 1,048,576 bytes" in refused["oversized"]["message"]
    assert refused["invalid"]["error"] == "SerializationError", refused
    assert "n" in refused["invalid"]["message"]
    assert "sleep" in refused["invalid"]["message"]

    late = "faults-late"
    publisher = scene.publisher(5, kind=late)
    assert publisher.wait(60) == 0, publisher.tail
    confirmed = scene.confirmed()
    assert len(confirmed) == 5
    await asyncio.sleep(3)  # nobody consumes: the tasks wait, visible as PENDING
    counts = await queue_counts(scene.amqp_url, scene.namespace, [late])
    assert counts[f"worker:{late}"] == 5, counts
    rows = scene.rows()
    assert all(rows[i]["status"] == "PENDING" for i in confirmed), rows

    scene.worker("late-worker", kind=late)
    rows = await wait_completed(scene, list(confirmed), timeout=60)
    stats = relay.stats()
    outcome = check_outcome(scene, confirmed, rows, stats, may_rerun=never)
    assert all(rows[i]["worker_kind"] == late for i in confirmed)
    record(
        "7-bad-publishes",
        injected="a 2 MiB input, a typed input failing validation, and 5 tasks for a worker "
        "kind with no worker (started 3 s later)",
        refused={k: v["error"] for k, v in refused.items()},
        refused_messages={k: v["message"][:160] for k, v in refused.items()},
        waited_in_queue=counts[f"worker:{late}"],
        dead_lettered=0,
        relay=stats,
        seconds=round(time.monotonic() - began, 1),
        **outcome.counts(),
    )
