"""Scenarios 3 and 4: RabbitMQ restarted while tasks are published and consumed; Postgres
restarted while the relay writes and clients wait for results."""

from __future__ import annotations

import asyncio
import time

import tacoq
from tacoq.testing import eventually

from .harness import (
    Execution,
    Scene,
    check_outcome,
    never,
    output_of,
    postgres_restart,
    queue_counts,
    rabbit_outage,
    record,
    sum_stats,
    wait_completed,
)

#: Seconds RabbitMQ stays stopped (other people's tests share this broker: keep it short).
RABBIT_DOWN = 4.0


async def test_rabbitmq_restart_loses_no_confirmed_task(scene: Scene) -> None:
    """Scenario 3. ``rabbitmqctl stop_app`` for a few seconds, then ``start_app``, while a
    publisher publishes (``publish_timeout=2``, so it sees ``PublishError`` and retries with
    the same id), two workers run tasks and two relays store them.

    Nobody is restarted: every process must reconnect by itself. At-least-once allows a task
    to run again when the outage cut a worker's channel before its ack and another worker
    receives it; the same worker answers such a redelivery from its run of the task (confirmed,
    still being sent, or still running) instead of running it again. A publish retried after a
    ``PublishError`` may have been delivered twice: such a task may run once per worker per
    publish. Every confirmed publish completes; its stored output is one finished run.
    Every confirmed publish completes; its stored output is one finished run.
    """
    relays = [scene.relay("relay-a"), scene.relay("relay-b")]
    workers = [
        scene.worker(name, "--concurrency", "8", "--prefetch", "8") for name in ("w-a", "w-b")
    ]
    began = time.monotonic()
    publisher = scene.publisher(
        240, rate=30, sleep=0.2, broker=f"{scene.amqp_url.rstrip('/')}/?publish_timeout=2"
    )
    await asyncio.sleep(2.5)  # publishing and consuming are in full swing
    with rabbit_outage(scene.amqp_url, RABBIT_DOWN) as timing:
        pass
    assert publisher.wait(120) == 0, publisher.tail
    summary = publisher.lines[-1]

    confirmed = scene.confirmed()
    assert len(confirmed) >= 200, summary  # only publishes given up on 60 s are missing
    rows = await wait_completed(scene, list(confirmed), timeout=120)
    for proc in [*relays, *workers]:
        assert proc.alive(), f"{proc.name} died:\n{proc.tail}"
        assert proc.count("reconnected to RabbitMQ") >= 1, f"{proc.name}:\n{proc.tail}"
    stats = [relay.stats() for relay in relays]
    total = sum_stats(stats)

    tries = scene.tries()

    def may_rerun(runs: list[Execution]) -> bool:
        # once per worker process and publish: a worker answers a redelivery of a task it ran
        # (or is running) from that run; only a second publish of the id is a new message
        per_pid = max(sum(e.pid == pid for e in runs) for pid in {e.pid for e in runs})
        return per_pid <= tries[runs[0].task]

    outcome = check_outcome(scene, confirmed, rows, total, may_rerun=may_rerun)
    counts = await queue_counts(scene.amqp_url, scene.namespace, ["faults"])
    assert counts["worker:faults"] == 0
    assert counts["dead-letter"] == 0
    cache_answers = sum(w.count("redeliver") for w in workers)
    record(
        "3-rabbitmq-restart",
        injected=f"rabbitmqctl stop_app, {RABBIT_DOWN:g} s, start_app, while publishing at "
        "30/s, 2 workers (concurrency 8) and 2 relays running",
        outage_seconds=round(timing["outage"], 1),
        publisher=summary.strip(),
        worker_log_lines_about_redelivery=cache_answers,
        dead_lettered=counts["dead-letter"],
        relay=total,
        seconds=round(time.monotonic() - began, 1),
        **outcome.counts(),
    )


async def test_postgres_restart_while_the_relay_writes(scene: Scene) -> None:
    """Scenario 4. The Postgres cluster restarts while the relay applies updates and clients
    long-poll for results (``RelayClient.wait`` and ``GET /tasks/{id}?wait=``).

    The relay must count store errors, hold its batch unacknowledged, reconnect and apply
    everything; waiters blocked across the restart get their results after recovery. No worker
    is disturbed, so no task runs twice, and the relay's re-applied batches change nothing.
    """
    relay = scene.relay()
    scene.worker("w-a", "--concurrency", "16")
    began = time.monotonic()
    publisher = scene.publisher(200, rate=40, sleep=0.05)
    await asyncio.sleep(1.0)
    early = list(scene.confirmed())[:10]
    assert len(early) == 10

    async def wait_all() -> list[tacoq.Task]:
        async with tacoq.RelayClient(relay.url, token=relay.token) as client:
            return list(
                await asyncio.gather(*(client.wait(task_id, timeout=90) for task_id in early))
            )

    waiters = asyncio.create_task(wait_all())
    await asyncio.sleep(1.0)
    restart = await asyncio.to_thread(postgres_restart, scene.postgres_url)
    assert publisher.wait(60) == 0, publisher.tail
    confirmed = scene.confirmed()
    assert len(confirmed) == 200
    # one more long-poll over plain HTTP for the last task
    last = list(confirmed)[-1]
    async with tacoq.RelayClient(relay.url, token=relay.token) as client:
        polled = await client.wait(last, timeout=90)
    waited = await asyncio.wait_for(waiters, 120)
    assert all(task.status is tacoq.TaskStatus.COMPLETED for task in [*waited, polled])
    for task in waited:
        assert task.result()["n"] == confirmed[str(task.id)]

    rows = await wait_completed(scene, list(confirmed), timeout=90)
    stats = relay.stats()
    outcome = check_outcome(scene, confirmed, rows, stats, may_rerun=never)
    assert relay.alive(), relay.tail
    assert stats["store_errors"] >= 1, "the relay never saw the store down"
    assert stats["conflicting_completions"] == 0
    counts = await queue_counts(scene.amqp_url, scene.namespace, ["faults"])
    assert counts["relay"] == 0
    assert counts["dead-letter"] == 0
    record(
        "4-postgres-restart",
        injected="pg_ctlcluster restart while publishing at 40/s, one worker, one relay, "
        "10 RelayClient.wait long-polls pending",
        restart_seconds=round(restart, 1),
        store_errors=stats["store_errors"],
        waiters_answered=len(waited) + 1,
        dead_lettered=counts["dead-letter"],
        relay=stats,
        seconds=round(time.monotonic() - began, 1),
        **outcome.counts(),
    )


async def test_direct_replies_resume_after_a_rabbitmq_restart(scene: Scene) -> None:
    """Scenario 3b. A caller keeps calling (``Publisher.call``, direct replies) through a
    RabbitMQ restart. Calls cut by the outage fail (``PublishError`` or ``TimeoutError``; a reply
    is best effort); once RabbitMQ is back, the publisher's consumer declares its reply queue
    again and every call is answered; each answer is the stored row's completion; every task
    that got an answer is COMPLETED in the store."""
    scene.relay("relay")
    scene.worker("w-reply", "--concurrency", "4")
    answered: dict[str, int] = {}
    failures: list[str] = []
    stop = asyncio.Event()

    async def caller(pub: tacoq.Publisher) -> None:
        n = 0
        while not stop.is_set():
            n += 1
            try:
                done = await pub.call("work", {"n": n}, worker_kind="faults", timeout=3)
            except (tacoq.PublishError, TimeoutError) as exc:
                failures.append(type(exc).__name__)
                await asyncio.sleep(0.2)
                continue
            assert done.is_completed, done
            assert not done.is_error, done
            assert done.result(dict)["n"] == n
            answered[str(done.id)] = n
            await asyncio.sleep(0.02)

    broker = f"{scene.amqp_url.rstrip('/')}/?publish_timeout=2"
    async with tacoq.Publisher(broker, namespace=scene.namespace) as pub:
        calling = asyncio.create_task(caller(pub))
        await asyncio.sleep(2.0)
        before = len(answered)
        await asyncio.to_thread(_outage, scene.amqp_url)
        after_outage = len(answered)
        # the worker, the relay and this publisher reconnect by themselves (backoff up to 5 s)
        await eventually(
            lambda: _value(len(answered)),
            until=lambda count: count >= after_outage + 5,
            timeout=60,
            message="calls answered again after the outage",
        )
        stop.set()
        await asyncio.wait_for(calling, 30)
    assert before >= 5, f"only {before} calls answered before the outage"
    rows = await wait_completed(scene, list(answered), timeout=60)
    for task_id, n in answered.items():
        assert output_of(rows[task_id])["n"] == n
    record(
        "3b-direct-replies-rabbitmq-restart",
        injected=f"rabbitmqctl stop_app, {RABBIT_DOWN:g} s, start_app, while one caller calls",
        answered=len(answered),
        answered_before_outage=before,
        calls_failed_by_the_outage=len(failures),
        failures=sorted(set(failures)),
    )


def _outage(amqp_url: str) -> None:
    with rabbit_outage(amqp_url, RABBIT_DOWN):
        pass


async def _value(value: int) -> int:
    return value
