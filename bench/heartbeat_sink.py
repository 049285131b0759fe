"""The relay-heartbeats baseline: a raw aio-pika consumer keeping workers' rows with raw psycopg.

``python -m bench.heartbeat_sink --amqp U --queue Q --postgres P --schema S --prefetch 100``
consumes the control queue at the relay's control prefetch, one message at a time as the relay
does: it reads the JSON body for the worker's name, writes the row on an autocommit connection
(an announcement: one ``INSERT ... ON CONFLICT (name) DO UPDATE``; a heartbeat: one ``UPDATE
... SET heartbeat = ..., seen_at = ... WHERE name = ...``; a goodbye: one ``DELETE``), then
acks it. It runs until SIGTERM or SIGINT. This is the least the job needs: find the worker,
write its row, ack after the write. No validation.

The table is TacoQ's ``workers`` table when its migrations made one in the schema; otherwise
one of the same shape (name, worker kind, announcement and heartbeat as JSON text, ``seen_at``
with its index) is created there.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
from datetime import UTC, datetime
from typing import Any

TABLE = (
    'CREATE TABLE IF NOT EXISTS {t} (name text COLLATE "C" PRIMARY KEY, '
    'worker_kind text COLLATE "C" NOT NULL, announcement json, heartbeat json, '
    "seen_at timestamptz NOT NULL)"
)
INDEX = "CREATE INDEX IF NOT EXISTS workers_seen ON {t} (seen_at)"
SAVE = (
    "INSERT INTO {t} (name, worker_kind, announcement, heartbeat, seen_at) "
    "VALUES (%s, %s, %s::json, NULL, %s) ON CONFLICT (name) DO UPDATE SET "
    "worker_kind = EXCLUDED.worker_kind, announcement = EXCLUDED.announcement, "
    "heartbeat = NULL, seen_at = EXCLUDED.seen_at"
)
TOUCH = "UPDATE {t} SET heartbeat = %s::json, seen_at = %s WHERE name = %s"
REMOVE = "DELETE FROM {t} WHERE name = %s"


async def sink(amqp: str, queue_name: str, postgres: str, schema: str, prefetch: int) -> None:
    """Consume, write and ack until a signal arrives."""
    import aio_pika
    import psycopg
    from psycopg import sql

    table = sql.Identifier(schema, "workers").as_string(None)
    save, touch, remove = SAVE.format(t=table), TOUCH.format(t=table), REMOVE.format(t=table)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    received: asyncio.Queue[Any] = asyncio.Queue()
    db = await psycopg.AsyncConnection.connect(postgres, autocommit=True)
    connection = await aio_pika.connect(amqp)
    async with connection, db:
        await db.execute(TABLE.format(t=table))
        await db.execute(INDEX.format(t=table))
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=prefetch)
        queue = await channel.get_queue(queue_name, ensure=True)

        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            received.put_nowait(message)

        await queue.consume(on_message)
        stopping = asyncio.ensure_future(stop.wait())
        while not stop.is_set():
            getting = asyncio.ensure_future(received.get())
            await asyncio.wait({getting, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if not getting.done():
                getting.cancel()
                break
            message = getting.result()
            body = message.body.decode()
            fields = json.loads(body)
            now = datetime.now(UTC)
            kind = fields.get("type")
            if kind == "heartbeat":
                await db.execute(touch, (body, now, fields["name"]))
            elif kind == "announce":
                await db.execute(save, (fields["name"], fields["worker_kind"], body, now))
            elif kind == "goodbye":
                await db.execute(remove, (fields["name"],))
            await message.ack()


def main(argv: list[str] | None = None) -> int:
    """Run the sink until a signal arrives."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--amqp", required=True)
    parser.add_argument("--queue", required=True)
    parser.add_argument("--postgres", required=True, help="a libpq connection string or URL")
    parser.add_argument("--schema", required=True)
    parser.add_argument("--prefetch", type=int, default=100)
    args = parser.parse_args(argv)
    asyncio.run(sink(args.amqp, args.queue, args.postgres, args.schema, args.prefetch))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
