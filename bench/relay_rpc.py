"""The relay-latency baseline's server: a raw aio-pika RPC consumer.

``python -m bench.relay_rpc --url U --queue Q`` consumes Q (prefetch 1) and, for each message,
publishes ``{"finished": time.time()}`` to its ``reply_to`` queue with its ``correlation_id``,
then acks it; it runs until SIGTERM or SIGINT. The stamp is taken where TacoQ's handler takes
it: when the "work" (nothing) is done, before anything is sent back.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import time


async def serve(url: str, queue_name: str) -> None:
    """Answer every request on ``queue_name`` until a signal arrives."""
    import aio_pika

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=1)
        queue = await channel.get_queue(queue_name, ensure=True)

        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            finished = time.time()
            reply = aio_pika.Message(
                json.dumps({"finished": finished}).encode(),
                correlation_id=message.correlation_id,
                content_type="application/json",
            )
            await channel.default_exchange.publish(reply, routing_key=message.reply_to or "")
            await message.ack()

        await queue.consume(on_message)
        await stop.wait()


def main(argv: list[str] | None = None) -> int:
    """Serve until a signal arrives."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--url", required=True)
    parser.add_argument("--queue", required=True)
    args = parser.parse_args(argv)
    asyncio.run(serve(args.url, args.queue))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
