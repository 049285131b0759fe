"""``Consumer.cancel``: a stopping worker receives nothing more, yet settles what it holds."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from tacoq.contracts.broker import worker_queue
from tacoq.plugins import get_plugin_host
from tacoq.testing import eventually
from tacoq.testing.broker_contract import make_assignment

NewNamespace = Callable[..., str]
TIMEOUT = 15.0


async def test_cancel_stops_deliveries_but_held_ones_can_still_be_acked(
    amqp_url: str, namespaces: NewNamespace
) -> None:
    ns = namespaces("cancel")
    broker = get_plugin_host().create_broker(amqp_url, namespace=ns)
    await broker.connect()
    try:
        await broker.declare_worker_queue("work")
        await broker.publish_many([(make_assignment(worker_kind="work"), 0) for _ in range(5)])
        consumer = await broker.consume(worker_queue("work"), prefetch=1)
        held = await asyncio.wait_for(consumer.get(), TIMEOUT)
        await consumer.cancel()
        await held.ack()  # the channel is still there for the delivery it holds
        await asyncio.sleep(0.3)
        assert consumer.get_nowait() is None  # nothing more arrives after cancel
        await consumer.close()

        # The other four stayed in the queue for the next consumer; the acked one is gone.
        again = await broker.consume(worker_queue("work"), prefetch=10)
        received = []

        async def drain() -> int:
            while (delivery := again.get_nowait()) is not None:
                received.append(delivery)
                await delivery.ack()
            return len(received)

        await eventually(drain, until=lambda n: n == 4, timeout=TIMEOUT, message="4 left")
        await asyncio.sleep(0.3)
        assert await drain() == 4
        assert all(d.envelope.task_id != held.envelope.task_id for d in received)
        await again.close()
    finally:
        await broker.close()
