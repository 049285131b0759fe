"""One publish measurement, run as ``python -m bench.rabbit_publish MODE --tasks N --url U
--namespace NS``; prints a JSON summary (``tasks``, ``elapsed_s``, ``throughput``).

Modes:

- ``tacoq``: the plugin's async ``Publisher.publish`` by name (serialization included), with
  ``IN_FLIGHT`` (100) coroutines, so 100 confirms are in flight all the time;
- ``aio-pika``: the baseline: raw aio-pika publishing persistent messages of the same size (same
  body, same headers and properties) to the same topology, 100 in flight the same way;
- ``pika-wnd``: ``SyncRabbitPublisher.publish_many`` with a window of 100 confirms;
- ``pika-single``: ``SyncRabbitPublisher.publish``, one confirm at a time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

from bench.rabbit_common import BENCH_KIND, IN_FLIGHT

MODES = ("tacoq", "aio-pika", "pika-wnd", "pika-single")


def payload(index: int) -> dict[str, Any]:
    """A small JSON input, like the demo's."""
    return {"index": index, "name": f"task-{index}", "priority": index % 256}


async def tacoq_publish(url: str, namespace: str, tasks: int) -> float:
    """The plugin's async publisher, ``IN_FLIGHT`` publishes awaiting confirms at once."""
    from tacoq.publisher import Publisher

    async with Publisher(url, namespace=namespace) as pub:
        await pub.publish("noop", payload(0), worker_kind=BENCH_KIND)  # declare, warm up

        async def lane(start: int) -> None:
            for index in range(start, tasks, IN_FLIGHT):
                await pub.publish("noop", payload(index), worker_kind=BENCH_KIND, priority=5)

        started = time.perf_counter()
        await asyncio.gather(*(lane(i) for i in range(IN_FLIGHT)))
        return time.perf_counter() - started


async def aio_pika_publish(url: str, namespace: str, tasks: int) -> float:
    """Raw aio-pika: the same messages, routed by the same topology, ``IN_FLIGHT`` in flight."""
    import aio_pika

    from tacoq.publisher import Publisher
    from tacoq.wire import encode_assignment
    from tacoq_rabbit.topology import Topology

    topology = Topology(namespace)
    template = encode_assignment(
        Publisher(url).build("noop", payload(tasks), worker_kind=BENCH_KIND, priority=5)
    )
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.declare_exchange(topology.tasks_exchange, "direct", durable=True)
        relay = await channel.declare_queue(topology.relay_queue, durable=True)
        queue = await channel.declare_queue(
            topology.worker_queue(BENCH_KIND), durable=True, arguments={"x-max-priority": 10}
        )
        key = topology.worker_routing_key(BENCH_KIND)
        await queue.bind(exchange, key)
        await relay.bind(exchange, key)

        async def lane(start: int) -> None:
            for _ in range(start, tasks, IN_FLIGHT):
                message = aio_pika.Message(
                    template.body,
                    headers=dict(template.headers),
                    content_type=template.content_type,
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                    priority=0,
                    message_id=template.task_id,
                )
                await exchange.publish(message, routing_key=key)

        started = time.perf_counter()
        await asyncio.gather(*(lane(i) for i in range(IN_FLIGHT)))
        return time.perf_counter() - started


def pika_publish(url: str, namespace: str, tasks: int, *, window: bool) -> float:
    """``SyncRabbitPublisher``: ``publish_many`` (window of ``IN_FLIGHT``) or one by one."""
    from tacoq_rabbit import SyncRabbitPublisher

    with SyncRabbitPublisher(url, namespace=namespace) as pub:
        pub.publish("noop", payload(0), worker_kind=BENCH_KIND)  # connect, declare, warm up
        started = time.perf_counter()
        if window:
            items = [("noop", payload(index)) for index in range(tasks)]
            pub.publish_many(items, worker_kind=BENCH_KIND, priority=5, window=IN_FLIGHT)
        else:
            for index in range(tasks):
                pub.publish("noop", payload(index), worker_kind=BENCH_KIND, priority=5)
        return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    """Measure one mode and print its JSON summary."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("mode", choices=MODES)
    parser.add_argument("--tasks", type=int, required=True)
    parser.add_argument("--url", required=True)
    parser.add_argument("--namespace", required=True)
    args = parser.parse_args(argv)
    if args.mode == "tacoq":
        elapsed = asyncio.run(tacoq_publish(args.url, args.namespace, args.tasks))
    elif args.mode == "aio-pika":
        elapsed = asyncio.run(aio_pika_publish(args.url, args.namespace, args.tasks))
    else:
        window = args.mode == "pika-wnd"
        elapsed = pika_publish(args.url, args.namespace, args.tasks, window=window)
    print(
        json.dumps({"tasks": args.tasks, "elapsed_s": elapsed, "throughput": args.tasks / elapsed})
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
