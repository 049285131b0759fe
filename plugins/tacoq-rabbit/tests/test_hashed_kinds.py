"""A worker kind that is not a plain queue name (spaces, non-ASCII, very long) still works end
to end over the async client: its queue name is hashed into characters AMQP accepts."""

from __future__ import annotations

import asyncio

import pytest

from tacoq.publishing.publisher import Publisher
from tacoq.relay.engine import RelayEngine
from tacoq.testing import fresh_namespace
from tacoq.worker import WorkerApp
from tacoq_rabbit.link import delete_namespace
from tacoq_rabbit.topology import safe_name

KINDS = ["thumbnails ünïcode", "k" * 180]


@pytest.mark.parametrize("kind", KINDS)
async def test_a_hashed_worker_kind_runs_end_to_end(amqp_url: str, kind: str) -> None:
    assert safe_name(kind) != kind
    ns = fresh_namespace("hashed")
    app = WorkerApp(kind, name="hashed-worker")

    @app.task
    async def echo(text: str) -> str:
        return text.upper()

    relay = RelayEngine(amqp_url, f"memory://{ns}", namespace=ns, cleanup=False)
    stop = asyncio.Event()
    jobs = [
        asyncio.create_task(relay.run(stop)),
        asyncio.create_task(app.serve(stop, broker_url=amqp_url, namespace=ns)),
    ]
    try:
        await asyncio.wait_for(relay.ready.wait(), 15)
        async with Publisher(amqp_url, namespace=ns) as pub:
            task = await pub.publish(echo, "hi")
        row = await relay.store.wait(task.id, 15)
        assert row is not None
        assert row.result(str) == "HI"
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*jobs), 15)
        await delete_namespace(amqp_url, ns, [kind])
