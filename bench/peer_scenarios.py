"""TacoQ beside Celery 5 and Dramatiq (issue 7): drain, steady state, latency, fan-in.

Every scenario measures, interleaved in each repeat, TacoQ (the reference) and its peers on the
same RabbitMQ and Postgres, each system in its own queues and schema (deleted afterwards). The
ratio column is TacoQ ÷ the peer (for latency, a ratio below 1 means TacoQ answers faster).
Side numbers: ``CPU s/task``, CPU-seconds per task summed over every process of the system
(workers and children, TacoQ's relay, the publisher in the steady state, the caller in the
latency scenario; the RabbitMQ and Postgres servers are not counted) and ``peak RSS MiB``, the
peak RSS (``VmHWM``) of the largest process of one worker after the drain. Processes are not
pinned: the fan-in needs both cores, and TacoQ's relay is a process of its own.

A measurement a vanished service broke (a fault suite may restart RabbitMQ or Postgres on this
shared machine) is retried once, after the services answer again.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Sequence
from typing import Any

from bench.harness import MeasurementError, Sample, Scenario, Settings, Variant
from bench.peers import systems
from bench.peers.common import (
    Proc,
    Rabbit,
    ServiceVanished,
    postgres_url,
    processes,
    require_postgres,
    wait_until,
)
from bench.peers.systems import System, SystemFactory, free_port
from bench.rabbit_common import amqp_url, require_rabbitmq

#: The drain and fan-in always use at least this many tasks (issue 7: N >= 10,000).
MIN_DRAIN_TASKS = 10_000
#: Round trips per latency sample (issue 7: at least 300).
LATENCY_TRIPS = 300
#: Seconds to wait for a vanished service before the one retry.
SERVICE_WAIT_S = 60.0

CPU = "CPU s/task"
RSS = "peak RSS MiB"


def drain_tasks(settings: Settings, quick_floor: int = MIN_DRAIN_TASKS) -> int:
    """Tasks per drain sample: ``max(N, 10,000)``; ``--quick`` (N < 10,000) uses N."""
    return (
        settings.tasks
        if settings.tasks < quick_floor and settings.quick
        else max(settings.tasks, quick_floor)
    )


def _json_line(proc: Proc) -> dict[str, Any]:
    for line in reversed(proc.output().splitlines()):
        if line.startswith("{"):
            with contextlib.suppress(ValueError):
                return dict(json.loads(line))
    raise MeasurementError(f"{proc.name} printed no JSON summary: {proc.tail()}")


def _wait_finished(system: System, tasks: int, timeout: float, alive: Sequence[Proc]) -> float:
    """Poll :meth:`System.finished` until it reaches ``tasks``; return the time of the poll
    that saw it (taken just before the poll, so the end is never later than the truth plus one
    poll interval). Polls every 5 ms near the end, less often before."""
    deadline = time.monotonic() + timeout
    last_time, last_count, rate = time.time(), 0, 0.0
    while True:
        now = time.time()
        count = system.finished()
        if count >= tasks:
            return now
        for proc in alive:
            proc.check_alive()
        if time.monotonic() > deadline:
            raise MeasurementError(f"{count} of {tasks} tasks finished within {timeout:g}s")
        if now > last_time and count > last_count:
            rate = (count - last_count) / (now - last_time)
        last_time, last_count = now, count
        pause = 0.5 * (tasks - count) / rate if rate else 0.02
        time.sleep(min(0.25, max(0.005, pause)))


def _cpu(procs: Sequence[Proc]) -> float:
    return sum(proc.cpu_s() for proc in procs)


def _start(
    procs: list[Proc], env: dict[str, str], specs: list[tuple[str, list[str]]]
) -> list[Proc]:
    started = [Proc(argv, env, name) for name, argv in specs]
    procs.extend(started)
    return started


def _preload(system: System, rabbit: Rabbit, procs: list[Proc], tasks: int, timeout: float) -> None:
    publisher = _start(procs, system.env(), [("publisher", system.publish_argv(tasks))])[0]
    if publisher.wait(timeout) != 0:
        raise MeasurementError(f"the publisher failed: {publisher.tail()}")
    wait_until(lambda: system.loaded(rabbit, tasks), "pre-load", timeout, poll=0.05)


def _stop_and_check(system: System, rabbit: Rabbit, workers: Sequence[Proc]) -> None:
    """Stop the workers; the queue must then hold no message and no consumer (nothing was left
    unacknowledged: RabbitMQ requeues what a closed channel held)."""
    for proc in workers:
        proc.stop()
    ready, consumers = rabbit.depth(system.queue)
    if ready or consumers:
        raise MeasurementError(
            f"after the run the queue holds {ready} ready, {consumers} consumers"
        )


@contextlib.contextmanager
def _run(factory: SystemFactory) -> Any:
    """A fresh system, a RabbitMQ connection and a process list; all cleaned up afterwards."""
    amqp, pg = amqp_url(), postgres_url()
    require_rabbitmq(amqp)
    require_postgres(pg)
    system = factory(amqp, pg)
    rabbit = Rabbit(amqp)
    try:
        system.prepare()
        with processes() as procs:
            yield system, rabbit, procs
    finally:
        system.cleanup(rabbit)
        rabbit.close()


def measure_drain(factory: SystemFactory, settings: Settings, workers: int) -> Sample:
    """Pre-load N tasks (TacoQ: with its relay running, until the relay stored them all), start
    ``workers`` worker processes, time from the first consumer to the end condition."""
    with _run(factory) as (system, rabbit, procs):
        tasks = min(drain_tasks(settings), system.max_tasks)
        env, limit = system.env(), settings.timeout_s
        helpers = _start(procs, env, system.helpers())
        wait_until(lambda: system.helpers_ready(rabbit), "helpers start", limit, alive=helpers)
        _preload(system, rabbit, procs, tasks, limit)
        running = _start(procs, env, system.workers(workers))
        everyone = [*running, *helpers]
        start = wait_until(
            lambda: rabbit.depth(system.queue)[1] > 0, "a worker starts", limit, alive=everyone
        )
        cpu = _cpu(everyone)
        end = _wait_finished(system, tasks, limit, everyone)
        cpu = _cpu(everyone) - cpu
        rss = max(proc.peak_rss_mib() for proc in running)
        _stop_and_check(system, rabbit, running)
    return Sample(tasks / (end - start), {CPU: cpu / tasks, RSS: rss})


def measure_steady(factory: SystemFactory, settings: Settings) -> Sample:
    """One worker consuming (TacoQ: and its relay); publish N at full speed; time from the first
    publish to the end condition of the last task."""
    with _run(factory) as (system, rabbit, procs):
        tasks = min(drain_tasks(settings), system.max_tasks)
        env, limit = system.env(), settings.timeout_s
        helpers = _start(procs, env, system.helpers())
        wait_until(lambda: system.helpers_ready(rabbit), "helpers start", limit, alive=helpers)
        running = _start(procs, env, system.workers(1))
        everyone = [*running, *helpers]
        wait_until(
            lambda: rabbit.depth(system.queue)[1] > 0, "a worker starts", limit, alive=everyone
        )
        cpu = _cpu(everyone)
        publisher = _start(procs, env, [("publisher", system.publish_argv(tasks))])[0]
        end = _wait_finished(system, tasks, limit, everyone)
        cpu = _cpu(everyone) - cpu
        if publisher.wait(limit) != 0:
            raise MeasurementError(f"the publisher failed: {publisher.tail()}")
        published = _json_line(publisher)
        _stop_and_check(system, rabbit, running)
    cpu += float(published["cpu_s"])
    return Sample(tasks / (end - float(published["start_wall"])), {CPU: cpu / tasks})


def measure_latency(factory: SystemFactory, settings: Settings) -> Sample:
    """One worker (TacoQ: and its relay with HTTP); 300 round trips one at a time; the p50."""
    with _run(factory) as (system, rabbit, procs):
        env, limit = system.env(), settings.timeout_s
        port = free_port()
        helpers = _start(procs, env, system.helpers(http_port=port))
        wait_until(lambda: system.helpers_ready(rabbit), "helpers start", limit, alive=helpers)
        running = _start(procs, env, system.workers(1))
        everyone = [*running, *helpers]
        wait_until(
            lambda: rabbit.depth(system.queue)[1] > 0, "a worker starts", limit, alive=everyone
        )
        cpu = _cpu(everyone)
        relay_url = f"http://127.0.0.1:{port}" if helpers else ""
        caller = _start(procs, env, [("caller", system.latency_argv(LATENCY_TRIPS, relay_url))])
        if caller[0].wait(limit) != 0:
            raise MeasurementError(f"the caller failed: {caller[0].tail()}")
        cpu = _cpu(everyone) - cpu
        trips = _json_line(caller[0])
        _stop_and_check(system, rabbit, running)
    cpu += float(trips["cpu_s"])
    notes = {"p99 ms": float(trips["p99_ms"]), CPU: cpu / (LATENCY_TRIPS + 10)}
    return Sample(float(trips["p50_ms"]), notes)


def _retrying(measure: Callable[[Settings], Sample]) -> Callable[[Settings], Sample]:
    """Retry once a measurement a vanished service broke, when the services are back."""

    def run(settings: Settings) -> Sample:
        try:
            return measure(settings)
        except ServiceVanished:
            deadline = time.monotonic() + SERVICE_WAIT_S
            while time.monotonic() < deadline:
                try:
                    require_rabbitmq(amqp_url())
                    require_postgres(postgres_url())
                    break
                except MeasurementError:
                    time.sleep(2)
            time.sleep(2)
            return measure(settings)

    return run


def _drain(factory: SystemFactory, workers: int = 1) -> Callable[[Settings], Sample]:
    return _retrying(lambda settings: measure_drain(factory, settings, workers))


def _steady(factory: SystemFactory) -> Callable[[Settings], Sample]:
    return _retrying(lambda settings: measure_steady(factory, settings))


def _latency(factory: SystemFactory) -> Callable[[Settings], Sample]:
    return _retrying(lambda settings: measure_latency(factory, settings))


TACOQ = "TacoQ (worker concurrency 100, prefetch 400 + relay, every state in Postgres)"
CELERY_PG = (
    "Celery (prefork 1 child, acks_late, track_started, prefetch 1, Postgres backend; "
    f"throughput samples: {systems.CELERY_PG_TASKS:,} tasks)"
)
CELERY_FAST = "Celery fastest (solo, no result backend, early ack, prefetch 100)"
DRAMATIQ_PG = "Dramatiq (8 threads, Postgres results)"
TACOQ_DIRECT = (
    "TacoQ (worker concurrency 100, prefetch 400 + relay, every state in Postgres; "
    "caller: Publisher.call, a direct reply)"
)
TACOQ_RELAY_WAIT = (
    "TacoQ, caller waiting on the relay instead (RelayClient.wait: HTTP long-poll, "
    "answered once Postgres has the completion)"
)
DRAMATIQ_FAST = "Dramatiq (8 threads, no results)"

END_CONDITIONS = (
    "End: TacoQ, N rows COMPLETED in its Postgres `tasks` table (its relay, `tacoq relay`, "
    "runs throughout and its CPU counts); Celery with the Postgres backend, N SUCCESS rows in "
    "`celery_taskmeta`; Dramatiq with results, N rows in the bench backend's table; a peer "
    "without results, the N-th task finished (a one-byte append per task to a tally file), "
    "then after the workers stop a passive declare shows 0 messages and 0 consumers (nothing "
    "was left unacknowledged). Ends are polled every 5 ms near the end."
)


def _throughput_variants(
    measure: Callable[[SystemFactory], Callable[[Settings], Sample]],
) -> tuple[tuple[Variant, ...], Variant]:
    peers = (
        Variant(CELERY_PG, measure(systems.celery_pg)),
        Variant(CELERY_FAST, measure(systems.celery_fast)),
        Variant(DRAMATIQ_PG, measure(systems.dramatiq_pg)),
        Variant(DRAMATIQ_FAST, measure(systems.dramatiq_fast)),
    )
    return peers, Variant(TACOQ, measure(systems.tacoq), tacoq=True)


def _fan_in(workers: int) -> Scenario:
    peers, tacoq = _throughput_variants(lambda factory: _drain(factory, workers))
    return Scenario(
        name=f"peers-fan-in-{workers}",
        description=(
            f"The drain with {workers} worker processes (TacoQ: {workers} `tacoq worker` and "
            f"one relay; Celery: {workers} solo workers; Dramatiq: `--processes {workers}`), "
            "timed from the first consumer. The machine has 2 cores, so 4 processes share "
            "them (with RabbitMQ and Postgres); fan-in 1 is the drain scenario."
        ),
        unit="tasks/s",
        candidates=peers,
        baseline=tacoq,
        peers=True,
    )


_drain_peers, _drain_tacoq = _throughput_variants(_drain)
PEERS_DRAIN = Scenario(
    name="peers-drain",
    description=(
        "Pre-load max(N, 10,000) no-op tasks (`--quick`: N), then start ONE worker process and "
        "measure tasks/s from its first consumer to the end. " + END_CONDITIONS
    ),
    unit="tasks/s",
    candidates=_drain_peers,
    baseline=_drain_tacoq,
    peers=True,
)

_steady_peers, _steady_tacoq = _throughput_variants(_steady)
PEERS_STEADY = Scenario(
    name="peers-steady",
    description=(
        "One worker process consuming, then a publisher process publishes max(N, 10,000) "
        "tasks (`--quick`: N) at full speed with the system's own client (TacoQ: "
        "`Publisher.publish` with 100 confirms in flight; Celery: `apply_async` in a loop; "
        "Dramatiq: `send` in a loop; the peers publish without confirms); tasks/s from the "
        "first publish to the end condition of all of them. CPU includes the publisher."
    ),
    unit="tasks/s",
    candidates=_steady_peers,
    baseline=_steady_tacoq,
    peers=True,
)

PEERS_LATENCY = Scenario(
    name="peers-latency",
    description=(
        f"One worker process; one task at a time, {LATENCY_TRIPS} round trips after 10 warm-up "
        "ones, publish -> result in the caller's hands; the value is the p50, p99 beside it. "
        "TacoQ (the reference): `Publisher.call` (publish with a direct reply and wait for it: "
        "the worker's completion reaches the caller in a copy of the updates message the relay "
        "gets; the broker's confirm is still collected), while the relay (with HTTP) stores "
        "every state in Postgres as always; the second TacoQ row waits on the relay instead "
        "(`Publisher.publish` then `RelayClient.wait`, a long-poll answered once the completion "
        "is committed; its ratio is reference ÷ that row); Celery: "
        "`apply_async(...).get(interval=0.005)` from the Postgres backend (it polls; its "
        "default interval is 0.5 s); Dramatiq: "
        "`get_result(block=True)` from the bench backend (LISTEN/NOTIFY). CPU is per round trip "
        "(warm-up included), caller included."
    ),
    unit="ms",
    candidates=(
        Variant(CELERY_PG, _latency(systems.celery_pg)),
        Variant(DRAMATIQ_PG, _latency(systems.dramatiq_pg)),
        Variant(TACOQ_RELAY_WAIT, _latency(systems.tacoq_relay_wait), tacoq=True),
    ),
    baseline=Variant(TACOQ_DIRECT, _latency(systems.tacoq), tacoq=True),
    peers=True,
)

PEER_SCENARIOS: list[Scenario] = [
    PEERS_DRAIN,
    PEERS_STEADY,
    PEERS_LATENCY,
    _fan_in(2),
    _fan_in(4),
]
"""The peer scenarios, in the order they run."""
