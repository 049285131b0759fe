"""Round trips, one task at a time, publish -> result in the caller's hands:
``python -m bench.peers.latency tacoq|tacoq-relay|celery|dramatiq --count N [--relay-url URL]``
(settings
from the ``BENCH_PEER_*`` environment). Ten warm-up round trips are not counted. Prints a JSON
line: ``p50_ms``, ``p99_ms``, ``mean_ms``, ``cpu_s`` (this process's CPU time while measuring).

- TacoQ: ``Publisher.call``: publish with a direct reply and wait for it (the reply can end the
  call before the broker's confirm, which is still collected); the relay still stores every
  state in Postgres;
- TacoQ via the relay (``tacoq-relay``): ``Publisher.publish``, then ``RelayClient.wait`` (a
  long-poll the relay answers once the completion is committed to Postgres);
- Celery: ``apply_async`` then ``AsyncResult.get`` from the Postgres backend, which polls; every
  ``CELERY_POLL_S`` (its default is 0.5 s: we give it a hundred times less);
- Dramatiq: ``send`` then ``message.get_result(block=True)`` of the bench's Postgres backend,
  which LISTENs for the write.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
from collections.abc import Awaitable, Callable

#: Celery's result polling interval in this benchmark (seconds).
CELERY_POLL_S = 0.005
#: Round trips before the measured ones.
WARM_UP = 10
#: Longest wait for one result (seconds).
TIMEOUT_S = 10.0


async def tacoq_trips(count: int) -> list[float]:
    """TacoQ: ``Publisher.call``: publish with a direct reply and wait for it."""
    from bench.peers.tacoq_app import KIND
    from tacoq.publisher import Publisher

    url, namespace = os.environ["BENCH_PEER_AMQP"], os.environ["BENCH_PEER_NAMESPACE"]
    async with Publisher(url, namespace=namespace) as pub:

        async def trip(index: int) -> None:
            done = await pub.call("noop", index, worker_kind=KIND, timeout=TIMEOUT_S)
            if not done.is_completed or done.is_error:
                raise RuntimeError(f"task {done.id} did not complete: {done!r}")

        return await measure_async(trip, count)


async def tacoq_relay_trips(count: int, relay_url: str) -> list[float]:
    """TacoQ: publish, then wait on the relay."""
    from bench.peers.tacoq_app import KIND
    from tacoq.client import RelayClient
    from tacoq.publisher import Publisher

    url, namespace = os.environ["BENCH_PEER_AMQP"], os.environ["BENCH_PEER_NAMESPACE"]
    async with Publisher(url, namespace=namespace) as pub, RelayClient(relay_url) as relay:

        async def trip(index: int) -> None:
            task = await pub.publish("noop", index, worker_kind=KIND)
            done = await relay.wait(task.id, timeout=TIMEOUT_S)
            if not done.is_completed:
                raise RuntimeError(f"task {task.id} did not complete in {TIMEOUT_S}s")

        return await measure_async(trip, count)


async def measure_async(trip: Callable[[int], Awaitable[None]], count: int) -> list[float]:
    """Time ``count`` awaited round trips after the warm-up."""
    times = []
    for index in range(WARM_UP + count):
        started = time.perf_counter()
        await trip(index)
        if index >= WARM_UP:
            times.append(time.perf_counter() - started)
    return times


def measure(trip: Callable[[int], None], count: int) -> list[float]:
    """Time ``count`` round trips after the warm-up."""
    times = []
    for index in range(WARM_UP + count):
        started = time.perf_counter()
        trip(index)
        if index >= WARM_UP:
            times.append(time.perf_counter() - started)
    return times


def celery_trips(count: int) -> list[float]:
    """Celery: ``apply_async(...).get(interval=CELERY_POLL_S)``."""
    from bench.peers.celery_app import noop

    def trip(index: int) -> None:
        noop.apply_async((index,)).get(timeout=TIMEOUT_S, interval=CELERY_POLL_S)

    return measure(trip, count)


def dramatiq_trips(count: int) -> list[float]:
    """Dramatiq: ``send(...).get_result(block=True)``."""
    from bench.peers.dramatiq_app import noop

    def trip(index: int) -> None:
        noop.send(index).get_result(block=True, timeout=int(TIMEOUT_S * 1000))

    return measure(trip, count)


def main(argv: list[str] | None = None) -> int:
    """Measure and print the JSON summary."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("system", choices=("tacoq", "tacoq-relay", "celery", "dramatiq"))
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--relay-url", default="")
    args = parser.parse_args(argv)
    cpu = time.process_time()
    if args.system == "tacoq":
        times = asyncio.run(tacoq_trips(args.count))
    elif args.system == "tacoq-relay":
        times = asyncio.run(tacoq_relay_trips(args.count, args.relay_url))
    elif args.system == "celery":
        times = celery_trips(args.count)
    else:
        times = dramatiq_trips(args.count)
    cut = statistics.quantiles(times, n=100, method="inclusive")
    summary = {
        "p50_ms": statistics.median(times) * 1000,
        "p99_ms": cut[98] * 1000,
        "mean_ms": statistics.fmean(times) * 1000,
        "cpu_s": time.process_time() - cpu,
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
