"""Scenarios 1 and 2: a worker SIGKILLed in the middle of long tasks, a worker SIGTERMed under
load."""

from __future__ import annotations

import asyncio
import signal
import time

from .harness import (
    Execution,
    Scene,
    check_outcome,
    executions,
    never,
    queue_counts,
    record,
    wait_completed,
)


async def test_sigkilled_worker_tasks_are_redelivered_and_complete_once(scene: Scene) -> None:
    """Scenario 1. Two workers share long tasks; one is SIGKILLed while it runs several.

    At-least-once allows exactly this re-execution: a task the killed worker had started (and,
    dying, never acknowledged) runs again on the survivor. Nothing the survivor ran may run
    twice. The killed worker's runs never finished, so no task finished twice and the relay must
    count no conflicting completion; the stored output is the survivor's run.
    """
    relay = scene.relay()
    victim = scene.worker("victim", "--concurrency", "4", "--prefetch", "6")
    survivor = scene.worker("survivor", "--concurrency", "4", "--prefetch", "6")
    began = time.monotonic()
    pub = scene.publisher(40, sleep=1.5)
    assert pub.wait(60) == 0, pub.output

    def victim_running() -> list[Execution]:
        return [
            e for runs in executions(scene.trace()).values() for e in runs
            if e.pid == victim.pid and not e.finished
        ]  # fmt: skip

    deadline = time.monotonic() + 30
    while len(victim_running()) < 3:
        assert time.monotonic() < deadline, victim.tail
        await asyncio.sleep(0.05)
    victim.signal(signal.SIGKILL)
    assert victim.wait(10) == -signal.SIGKILL
    killed_mid_run = {e.task for e in victim_running()}

    confirmed = scene.confirmed()
    assert len(confirmed) == 40
    rows = await wait_completed(scene, list(confirmed), timeout=90)
    stats = relay.stats()

    def may_rerun(runs: list[Execution]) -> bool:
        # a task the victim ran (and, killed, never acknowledged) runs again on the survivor:
        # at most once on each
        on_victim = [e for e in runs if e.pid == victim.pid]
        return len(on_victim) == 1 and len(runs) == 2

    outcome = check_outcome(scene, confirmed, rows, stats, may_rerun=may_rerun)
    runs = executions(scene.trace())
    for task in killed_mid_run:  # every task the kill interrupted ran again and completed
        assert any(e.pid == survivor.pid and e.finished for e in runs[task]), runs[task]
        assert rows[task]["executed_by"] == "survivor"
    assert survivor.alive()
    assert relay.alive()
    counts = await queue_counts(scene.amqp_url, scene.namespace, ["faults"])
    assert counts["worker:faults"] == 0
    assert counts["dead-letter"] == 0
    record(
        "1-worker-sigkill",
        injected="SIGKILL of one of two workers (concurrency 4, prefetch 6) running 1.5 s tasks",
        killed_mid_run=len(killed_mid_run),
        redelivered_and_rerun=len(outcome.reexecuted),
        dead_lettered=counts["dead-letter"],
        relay=stats,
        seconds=round(time.monotonic() - began, 1),
        **outcome.counts(),
    )


async def test_sigterm_under_load_finishes_in_flight_and_hands_back_the_rest(
    scene: Scene,
) -> None:
    """Scenario 2. A worker is SIGTERMed under load with ``--grace 10``.

    It finishes every task it had started within the grace (each of its runs in the trace
    finished) and hands its held, unstarted ones back; the other worker runs those. A graceful
    stop acknowledges what it finished, so at-least-once needs no re-execution here: every task
    runs exactly once and the relay counts no duplicate or conflicting completion.
    """
    relay = scene.relay()
    leaving = scene.worker("leaving", "--concurrency", "4", "--prefetch", "12", "--grace", "10")
    staying = scene.worker("staying", "--concurrency", "4", "--prefetch", "4")
    began = time.monotonic()
    pub = scene.publisher(80, sleep=0.4)
    assert pub.wait(60) == 0, pub.output

    deadline = time.monotonic() + 30
    while sum(e.pid == leaving.pid for r in executions(scene.trace()).values() for e in r) < 6:
        assert time.monotonic() < deadline, leaving.tail
        await asyncio.sleep(0.05)
    sent = time.monotonic()
    leaving.signal(signal.SIGTERM)
    assert leaving.wait(30) == 0, leaving.tail
    took = time.monotonic() - sent
    assert took < 10 + 6, f"stopping took {took:.1f}s"
    assert "grace ran out" not in leaving.output

    confirmed = scene.confirmed()
    assert len(confirmed) == 80
    rows = await wait_completed(scene, list(confirmed), timeout=90)
    stats = relay.stats()
    outcome = check_outcome(scene, confirmed, rows, stats, may_rerun=never)
    leaving_runs = [
        e for r in executions(scene.trace()).values() for e in r if e.pid == leaving.pid
    ]
    assert leaving_runs
    assert all(e.finished for e in leaving_runs)
    for run in leaving_runs:
        assert rows[run.task]["executed_by"] == "leaving"
    assert stats["duplicate_completions"] == 0
    assert stats["conflicting_completions"] == 0
    handed = next((line for line in leaving.lines if "handed back to the queue" in line), "")
    counts = await queue_counts(scene.amqp_url, scene.namespace, ["faults"])
    assert counts["worker:faults"] == 0
    assert counts["dead-letter"] == 0
    assert staying.alive()
    assert relay.alive()
    record(
        "2-worker-sigterm",
        injected="SIGTERM of one of two workers (concurrency 4, prefetch 12, grace 10 s) "
        "while 80 tasks of 0.4 s were queued",
        stop_seconds=round(took, 2),
        ran_on_stopped_worker=len(leaving_runs),
        shutdown_line=handed.strip().split("tacoq.worker: ", 1)[-1],
        dead_lettered=counts["dead-letter"],
        relay=stats,
        seconds=round(time.monotonic() - began, 1),
        **outcome.counts(),
    )
