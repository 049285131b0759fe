"""The drain baseline: raw aio-pika consuming a queue at a prefetch, acking every message.

``python -m bench.rabbit_consumer --url U --queue Q --prefetch 100 --count N`` consumes until it
acked N messages, then prints a JSON summary with ``end_wall`` (``time.time()`` of the last
ack) so the driver measures it exactly as it measures a TacoQ worker.
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


def main(argv: list[str] | None = None) -> int:
    """Consume and print the JSON summary."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--url", required=True)
    parser.add_argument("--queue", required=True)
    parser.add_argument("--prefetch", type=int, default=100)
    parser.add_argument("--count", type=int, required=True)
    args = parser.parse_args(argv)
    print(json.dumps(asyncio.run(consume(args.url, args.queue, args.prefetch, args.count))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
