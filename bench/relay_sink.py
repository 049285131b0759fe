"""The relay-throughput baseline: a raw aio-pika consumer writing rows with raw psycopg.

``python -m bench.relay_sink --amqp U --queue Q --postgres P --schema S --prefetch 2000 --batch
1000`` consumes the relay queue at the relay's prefetch, gathers a batch like the relay does
(the first delivery, then whatever else has already arrived, up to ``--batch`` messages),
writes it in one transaction with two ``executemany`` statements (an insert of the assignments'
rows, an upsert of the updates' status columns that never moves a COMPLETED row back), commits,
then acks the batch with one ``multiple`` ack. It runs until SIGTERM or SIGINT. This is the
least the job needs: decode, write the latest status, ack after the commit.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import signal
from datetime import datetime, timedelta
from typing import Any

INSERT = (
    "INSERT INTO {t} (id, task_kind, worker_kind, status, priority, attempt, ttl, is_error, "
    "input_type, input_data, created_at) VALUES (%s, %s, %s, 'PENDING', %s, %s, %s, false, %s, "
    "%s, %s) ON CONFLICT (id) DO UPDATE SET priority = EXCLUDED.priority, "
    "input_type = EXCLUDED.input_type, input_data = EXCLUDED.input_data, "
    "created_at = EXCLUDED.created_at"
)
UPSERT = (
    "INSERT INTO {t} AS t (id, task_kind, worker_kind, status, priority, attempt, ttl, is_error, "
    "started_at, completed_at, executed_by, output_type, output_data, expires_at) VALUES (%s, %s, "
    "%s, %s, 0, %s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (id) DO UPDATE SET "
    "status = EXCLUDED.status, started_at = EXCLUDED.started_at, "
    "completed_at = EXCLUDED.completed_at, executed_by = EXCLUDED.executed_by, "
    "is_error = EXCLUDED.is_error, output_type = EXCLUDED.output_type, "
    "output_data = EXCLUDED.output_data, expires_at = EXCLUDED.expires_at "
    "WHERE t.status <> 'COMPLETED'"
)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes | bytearray) else str(value)


def _time(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def rows_of(message: Any, inserts: list[tuple[Any, ...]], upserts: list[tuple[Any, ...]]) -> None:
    """Append the rows one relay-queue message carries."""
    headers = {key: _text(value) for key, value in (message.headers or {}).items()}
    if headers.get("tacoq-event") == "assign":
        inserts.append((
            headers["tacoq-id"], headers["tacoq-task-kind"], headers["tacoq-worker-kind"],
            int(headers["tacoq-priority"]), int(headers["tacoq-attempt"]),
            int(headers["tacoq-ttl"]), message.content_type, message.body,
            datetime.fromisoformat(headers["tacoq-created-at"]),
        ))  # fmt: skip
        return
    for event in json.loads(message.body):
        done = event["phase"] == "completed"
        output = event.get("output") if done else None
        data = None
        if output is not None:
            raw = output["data"]
            data = raw.encode() if output["encoding"] == "text" else base64.b64decode(raw)
        completed_at = _time(event.get("completed_at"))
        upserts.append((
            event["id"], event["task_kind"], event["worker_kind"],
            "COMPLETED" if done else "RUNNING", event["attempt"], event["ttl"],
            bool(event.get("is_error", False)), _time(event.get("started_at")), completed_at,
            event.get("executed_by"), output["content_type"] if output else None, data,
            completed_at + timedelta(seconds=event["ttl"]) if completed_at else None,
        ))  # fmt: skip


async def sink(
    amqp: str, queue_name: str, postgres: str, schema: str, prefetch: int, batch: int
) -> None:
    """Consume, write and ack until a signal arrives."""
    import aio_pika
    import psycopg
    from psycopg import sql

    table = sql.Identifier(schema, "tasks").as_string(None)
    insert, upsert = INSERT.format(t=table), UPSERT.format(t=table)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    received: asyncio.Queue[Any] = asyncio.Queue()
    db = await psycopg.AsyncConnection.connect(postgres)
    connection = await aio_pika.connect(amqp)
    async with connection, db:
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
            messages = [getting.result()]
            while len(messages) < batch and not received.empty():
                messages.append(received.get_nowait())
            inserts: list[tuple[Any, ...]] = []
            upserts: list[tuple[Any, ...]] = []
            for message in messages:
                rows_of(message, inserts, upserts)
            async with db.transaction():
                cur = db.cursor()
                if inserts:
                    await cur.executemany(insert, inserts)
                if upserts:
                    await cur.executemany(upsert, upserts)
            await messages[-1].ack(multiple=True)


def main(argv: list[str] | None = None) -> int:
    """Run the sink until a signal arrives."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--amqp", required=True)
    parser.add_argument("--queue", required=True)
    parser.add_argument("--postgres", required=True, help="a libpq connection string or URL")
    parser.add_argument("--schema", required=True)
    parser.add_argument("--prefetch", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=1000)
    args = parser.parse_args(argv)
    asyncio.run(sink(args.amqp, args.queue, args.postgres, args.schema, args.prefetch, args.batch))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
