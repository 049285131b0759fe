"""The drain baselines: a raw consumer of a queue at a prefetch, acking every message, written
with aio-pika's consumer API (the baseline) or with aiormq, the transport under aio-pika that
tacoq-rabbit talks to directly.

``python -m bench.rabbit_consumer --url U --queue Q --prefetch 100 --count N [--library
aiormq]`` consumes until it acked N messages, then prints a JSON summary with ``end_wall``
(``time.time()`` of the last ack) so the driver measures it exactly as it measures a TacoQ worker.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time


async def consume(url: str, queue_name: str, prefetch: int, count: int) -> dict[str, float]:
    """Ack ``count`` messages of ``queue_name``, one ack per message."""
    import aio_pika

    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=prefetch)
        queue = await channel.get_queue(queue_name, ensure=True)
        done = asyncio.Event()
        acked = 0
        first = 0.0

        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            nonlocal acked, first
            if not first:
                first = time.time()
            await message.ack()
            acked += 1
            if acked >= count:
                done.set()

        await queue.consume(on_message)
        await done.wait()
        end = time.time()
    return {"acked": acked, "first_wall": first, "end_wall": end}


async def consume_aiormq(url: str, queue_name: str, prefetch: int, count: int) -> dict[str, float]:
    """:func:`consume` with aiormq: one ``basic.ack`` per message, no message objects."""
    import aiormq
    import aiormq.abc

    connection = await aiormq.connect(url)
    try:
        channel = await connection.channel()
        await channel.basic_qos(prefetch_count=prefetch)
        done = asyncio.Event()
        acked = 0
        first = 0.0

        async def on_message(message: aiormq.abc.DeliveredMessage) -> None:
            nonlocal acked, first
            if not first:
                first = time.time()
            await channel.basic_ack(message.delivery_tag or 0)
            acked += 1
            if acked >= count:
                done.set()

        await channel.basic_consume(queue_name, on_message)
        await done.wait()
        end = time.time()
    finally:
        await connection.close()
    return {"acked": acked, "first_wall": first, "end_wall": end}


def main(argv: list[str] | None = None) -> int:
    """Consume and print the JSON summary."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--url", required=True)
    parser.add_argument("--queue", required=True)
    parser.add_argument("--prefetch", type=int, default=100)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--library", choices=("aio-pika", "aiormq"), default="aio-pika")
    args = parser.parse_args(argv)
    run = consume_aiormq if args.library == "aiormq" else consume
    print(json.dumps(asyncio.run(run(args.url, args.queue, args.prefetch, args.count))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
