"""Publish N no-op tasks at full speed with a system's own client:
``python -m bench.peers.publish tacoq|celery|dramatiq --tasks N`` (settings from the
``BENCH_PEER_*`` environment, see :mod:`bench.peers.systems`). Prints a JSON line: ``start_wall``
(``time.time()`` before the first publish), ``end_wall`` and ``cpu_s`` (this process's CPU time
while publishing).

- TacoQ: ``Publisher.publish("noop", i)`` by name from 100 coroutines, so 100 publisher confirms
  are in flight at once (TacoQ always waits for confirms);
- Celery: ``noop.apply_async((i,))`` in a loop (kombu publishes without confirms by default);
- Dramatiq: ``noop.send(i)`` in a loop (``RabbitmqBroker`` without ``confirm_delivery``, its
  default).

The peers publish without confirms, so each closes its connection before the clock stops: a
process that exits with its connection open may lose what the socket had not sent yet (a
steady-state run once finished only 9,933 of 10,000 Dramatiq tasks).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import os
import time

#: TacoQ publishes awaiting this many confirms at once.
IN_FLIGHT = 100
#: What each system's publisher imports.
APP_MODULES = {
    "tacoq": "tacoq.publisher",
    "celery": "bench.peers.celery_app",
    "dramatiq": "bench.peers.dramatiq_app",
}


async def publish_tacoq(tasks: int) -> None:
    """TacoQ's async publisher, ``IN_FLIGHT`` publishes in flight."""
    from bench.peers.tacoq_app import KIND
    from tacoq.publisher import Publisher

    url, namespace = os.environ["BENCH_PEER_AMQP"], os.environ["BENCH_PEER_NAMESPACE"]
    async with Publisher(url, namespace=namespace) as pub:

        async def lane(start: int) -> None:
            for index in range(start, tasks, IN_FLIGHT):
                await pub.publish("noop", index, worker_kind=KIND)

        await asyncio.gather(*(lane(i) for i in range(min(IN_FLIGHT, tasks))))


def publish_celery(tasks: int) -> None:
    """Celery's ``apply_async`` in a loop."""
    from bench.peers.celery_app import noop

    for index in range(tasks):
        noop.apply_async((index,))
    noop.app.close()  # closes the pooled broker connection cleanly


def publish_dramatiq(tasks: int) -> None:
    """Dramatiq's ``send`` in a loop."""
    from bench.peers.dramatiq_app import noop

    for index in range(tasks):
        noop.send(index)
    noop.broker.close()  # closes its connections cleanly


def main(argv: list[str] | None = None) -> int:
    """Publish and print the JSON summary."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("system", choices=("tacoq", "celery", "dramatiq"))
    parser.add_argument("--tasks", type=int, required=True)
    args = parser.parse_args(argv)
    importlib.import_module(APP_MODULES[args.system])  # import before the clock starts
    cpu, start = time.process_time(), time.time()
    if args.system == "tacoq":
        asyncio.run(publish_tacoq(args.tasks))
    elif args.system == "celery":
        publish_celery(args.tasks)
    else:
        publish_dramatiq(args.tasks)
    summary = {"start_wall": start, "end_wall": time.time(), "cpu_s": time.process_time() - cpu}
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
