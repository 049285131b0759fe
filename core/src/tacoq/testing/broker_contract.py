"""The broker contract suite: every broker plugin inherits :class:`BrokerContract`.

Override ``broker_url`` (and optionally the timing attributes) in a subclass::

    class TestMyBroker(BrokerContract):
        @pytest.fixture
        def broker_url(self) -> str:
            return "mybroker://localhost"

The suite is written for real, asynchronous brokers: every wait is bounded (``timeout`` for what
must arrive, ``quiet`` for what must not), nothing sleeps a fixed time to let things settle, and
each test runs in a fresh namespace so tests never see each other's messages.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from uuid import uuid4

import pytest
import pytest_asyncio

from tacoq.contracts.broker import (
    CONTROL_QUEUE,
    RELAY_QUEUE,
    Broker,
    Consumer,
    Delivery,
    priority_level,
    worker_queue,
)
from tacoq.errors import TacoqError, WireFormatError
from tacoq.model.task import Payload, Phase, TaskEvent, utcnow
from tacoq.model.wire import (
    HEADER_PREFIX,
    Envelope,
    encode_assignment,
    encode_control,
    encode_updates,
)
from tacoq.model.workers import Goodbye, Heartbeat
from tacoq.plugins import get_plugin_host
from tacoq.testing.eventually import eventually, fresh_namespace

__all__ = [
    "BrokerContract",
    "ConnectBroker",
    "make_assignment",
    "make_goodbye",
    "make_heartbeat",
    "make_update",
    "tacoq_headers",
]

#: The ``connect_broker`` fixture: a connected broker in the test's namespace (or another one).
ConnectBroker = Callable[..., Awaitable[Broker]]

KIND = "contract"


def make_assignment(
    worker_kind: str = KIND, *, priority: int = 0, body: bytes | None = None
) -> Envelope:
    """An ``assign`` envelope for a new task id (the body defaults to a small JSON object)."""
    task_id = uuid4()
    event = TaskEvent(
        id=task_id,
        attempt=1,
        phase=Phase.ASSIGNED,
        task_kind="echo",
        worker_kind=worker_kind,
        priority=priority,
        created_at=utcnow(),
        input=Payload("application/json", body or f'{{"task": "{task_id}"}}'.encode()),
    )
    return encode_assignment(event)


def make_update(worker_kind: str = KIND) -> Envelope:
    """An ``updates`` envelope with one RUNNING event for a new task id."""
    event = TaskEvent(
        id=uuid4(),
        attempt=1,
        phase=Phase.RUNNING,
        task_kind="echo",
        worker_kind=worker_kind,
        executed_by="contract-worker",
        started_at=utcnow(),
    )
    return encode_updates([event])


def make_heartbeat(name: str | None = None, worker_kind: str = KIND) -> Envelope:
    """A ``heartbeat`` control envelope of a worker ``name`` (default: a new unique name)."""
    heartbeat = Heartbeat(
        name=name or f"contract-{uuid4().hex}",
        worker_kind=worker_kind,
        running=0,
        succeeded=0,
        failed=0,
        retried=0,
        heartbeat_interval=5.0,
        sent_at=utcnow(),
    )
    return encode_control(heartbeat)


def make_goodbye(name: str | None = None, worker_kind: str = KIND) -> Envelope:
    """A ``goodbye`` control envelope of a worker ``name`` (default: a new unique name)."""
    goodbye = Goodbye(
        name=name or f"contract-{uuid4().hex}", worker_kind=worker_kind, sent_at=utcnow()
    )
    return encode_control(goodbye)


def tacoq_headers(envelope: Envelope) -> dict[str, str]:
    """The ``tacoq-*`` headers of an envelope (a real broker may add headers of its own)."""
    return {k: v for k, v in envelope.headers.items() if k.startswith(HEADER_PREFIX)}


class BrokerContract:
    """The behaviour every broker must show (docs/architecture.md, "Contracts" and "The flow of
    one task"). Override ``broker_url``."""

    #: Upper bound (seconds) for anything that must arrive.
    timeout: float = 10.0
    #: How long (seconds) to watch for something that must *not* arrive.
    quiet: float = 0.5
    #: The delay (seconds) used by the delayed-publish test.
    delay: float = 0.6
    #: The ``ttl`` (seconds) of the expiring control messages; the tests wait three times it.
    control_ttl: float = 0.2
    #: A ``ttl`` (seconds) long enough for a control message to be received and requeued
    #: before it expires.
    control_hold_ttl: float = 1.0

    # -- fixtures a plugin overrides or reuses -----------------------------------------------

    @pytest.fixture
    def broker_url(self) -> str:
        """The URL of the broker under test: a subclass must override this fixture."""
        pytest.fail(
            f"{type(self).__name__} inherits BrokerContract but does not override the "
            "broker_url fixture; return your broker's URL from it"
        )

    @pytest.fixture
    def namespace(self) -> str:
        """A fresh namespace per test."""
        return fresh_namespace("contract")

    @pytest_asyncio.fixture
    async def broker(self, broker_url: str, namespace: str) -> AsyncIterator[Broker]:
        """A connected broker in the test's namespace, closed afterwards."""
        broker = get_plugin_host().create_broker(broker_url, namespace=namespace)
        await broker.connect()
        try:
            yield broker
        finally:
            await broker.close()

    @pytest_asyncio.fixture
    async def connect_broker(self, broker_url: str, namespace: str) -> AsyncIterator[ConnectBroker]:
        """A factory for more clients: ``await connect_broker(namespace=None)``."""
        opened: list[Broker] = []

        async def connect(namespace_: str | None = None) -> Broker:
            other = get_plugin_host().create_broker(broker_url, namespace=namespace_ or namespace)
            await other.connect()
            opened.append(other)
            return other

        try:
            yield connect
        finally:
            for other in reversed(opened):
                await other.close()

    # -- helpers -------------------------------------------------------------------------------

    async def receive(self, consumer: Consumer) -> Delivery:
        """The next delivery, failing after ``timeout`` seconds."""
        try:
            return await asyncio.wait_for(consumer.get(), self.timeout)
        except TimeoutError:
            pytest.fail(f"no delivery within {self.timeout}s from {consumer!r}")

    async def expect_nothing(self, consumer: Consumer, wait: float | None = None) -> None:
        """Fail if ``consumer`` receives anything within ``wait`` (default ``quiet``) seconds."""
        try:
            delivery = await asyncio.wait_for(consumer.get(), wait or self.quiet)
        except TimeoutError:
            return
        pytest.fail(f"unexpected delivery: {tacoq_headers(delivery.envelope)}")

    # -- routing ---------------------------------------------------------------------------------

    async def test_assign_reaches_worker_queue_and_relay(self, broker: Broker) -> None:
        """An assignment goes to its worker queue and a byte-identical copy to the relay."""
        await broker.declare_worker_queue(KIND)
        sent = make_assignment()
        await broker.publish(sent, priority=7)
        async with (
            await broker.consume(worker_queue(KIND), prefetch=1) as work,
            await broker.consume(RELAY_QUEUE, prefetch=1) as relay,
        ):
            for consumer in (work, relay):
                delivery = await self.receive(consumer)
                got = delivery.envelope
                assert tacoq_headers(got) == dict(sent.headers)
                assert got.content_type == sent.content_type
                assert got.body == sent.body
                assert delivery.delivery_count == 1
                assert not delivery.redelivered
                await delivery.ack()

    async def test_updates_reach_only_the_relay(self, broker: Broker) -> None:
        """An updates message reaches the relay's queue and no worker queue."""
        await broker.declare_worker_queue(KIND)
        sent = make_update()
        await broker.publish(sent)
        async with (
            await broker.consume(worker_queue(KIND), prefetch=1) as work,
            await broker.consume(RELAY_QUEUE, prefetch=1) as relay,
        ):
            delivery = await self.receive(relay)
            assert delivery.envelope.body == sent.body
            assert tacoq_headers(delivery.envelope) == dict(sent.headers)
            await delivery.ack()
            await self.expect_nothing(work)

    async def test_priority_order(self, broker: Broker) -> None:
        """Queued tasks come out highest level first, FIFO within one level."""
        await broker.declare_worker_queue(KIND)
        priorities = [0, 255, 100, 255, 0, 30, 200, 110, 5]
        sent = [make_assignment(priority=p) for p in priorities]
        for envelope, priority in zip(sent, priorities, strict=True):
            await broker.publish(envelope, priority=priority)
        order = sorted(range(len(sent)), key=lambda i: (-priority_level(priorities[i]), i))
        expected = [sent[i].task_id for i in order]
        received = []
        async with await broker.consume(worker_queue(KIND), prefetch=1) as work:
            for _ in sent:
                delivery = await self.receive(work)
                received.append(delivery.envelope.task_id)
                await delivery.ack()
        assert received == expected

    # -- consuming -------------------------------------------------------------------------------

    async def test_competing_consumers_share_a_queue(self, broker: Broker) -> None:
        """Two consumers of one queue each receive some of its messages, none twice."""
        await broker.declare_worker_queue(KIND)
        sent = [make_assignment() for _ in range(6)]
        for envelope in sent:
            await broker.publish(envelope)
        first = await broker.consume(worker_queue(KIND), prefetch=1)
        async with first, await broker.consume(worker_queue(KIND), prefetch=1) as second:
            one, two = await self.receive(first), await self.receive(second)
            assert one.envelope.task_id != two.envelope.task_id
            await one.ack()
            await two.ack()
            seen = [one.envelope.task_id, two.envelope.task_id]
            await second.close()
            for _ in range(len(sent) - 2):
                delivery = await self.receive(first)
                seen.append(delivery.envelope.task_id)
                await delivery.ack()
        assert sorted(map(str, seen)) == sorted(str(e.task_id) for e in sent)

    async def test_prefetch_bounds_unsettled_deliveries(self, broker: Broker) -> None:
        """A consumer holds at most ``prefetch`` unsettled deliveries."""
        await broker.declare_worker_queue(KIND)
        for _ in range(3):
            await broker.publish(make_assignment())
        async with await broker.consume(worker_queue(KIND), prefetch=2) as work:
            held = [await self.receive(work), await self.receive(work)]
            await self.expect_nothing(work)
            assert work.get_nowait() is None
            await held[0].ack()
            third = await self.receive(work)
            await held[1].ack()
            await third.ack()

    async def test_ack_removes_the_message(self, broker: Broker) -> None:
        """An acknowledged message is not delivered again."""
        await broker.publish(make_update())
        async with await broker.consume(RELAY_QUEUE, prefetch=1) as relay:
            await (await self.receive(relay)).ack()
        async with await broker.consume(RELAY_QUEUE, prefetch=1) as again:
            await self.expect_nothing(again)

    async def test_unacked_delivery_of_closed_consumer_is_redelivered(self, broker: Broker) -> None:
        """Work a dead consumer held comes back, marked redelivered, counted twice."""
        await broker.declare_worker_queue(KIND)
        sent = make_assignment()
        await broker.publish(sent)
        first = await broker.consume(worker_queue(KIND), prefetch=1)
        delivery = await self.receive(first)
        assert (delivery.delivery_count, delivery.redelivered) == (1, False)
        await first.close()
        async with await broker.consume(worker_queue(KIND), prefetch=1) as second:
            again = await self.receive(second)
            assert again.envelope.task_id == sent.task_id
            assert again.redelivered
            assert again.delivery_count == 2
            await again.ack()

    async def test_requeue_redelivers(self, broker: Broker) -> None:
        """A requeued message is delivered again, marked redelivered."""
        await broker.declare_worker_queue(KIND)
        sent = make_assignment()
        await broker.publish(sent)
        async with await broker.consume(worker_queue(KIND), prefetch=1) as work:
            await (await self.receive(work)).requeue()
            again = await self.receive(work)
            assert again.envelope.task_id == sent.task_id
            assert again.redelivered
            assert again.delivery_count == 2
            await again.ack()

    async def test_dead_letter(self, broker: Broker) -> None:
        """A dead-lettered message is kept with its reason and not delivered again."""
        await broker.declare_worker_queue(KIND)
        sent = make_assignment()
        await broker.publish(sent)
        async with await broker.consume(worker_queue(KIND), prefetch=1) as work:
            await (await self.receive(work)).dead_letter("contract: cannot decode")
            await self.expect_nothing(work)

        async def letters() -> list[str]:
            found = await broker.dead_letters(limit=100)
            return [d.reason for d in found if d.envelope.task_id == sent.task_id]

        assert await eventually(letters, timeout=self.timeout, message="dead letter") == [
            "contract: cannot decode"
        ]
        (letter,) = [d for d in await broker.dead_letters() if d.envelope.task_id == sent.task_id]
        assert letter.queue == worker_queue(KIND)
        assert letter.envelope.body == sent.body

    async def test_get_nowait_on_empty_queue(self, broker: Broker) -> None:
        """``get_nowait`` returns ``None`` when nothing waits, and a delivery once one does."""
        async with await broker.consume(RELAY_QUEUE, prefetch=1) as relay:
            assert relay.get_nowait() is None
            sent = make_update()
            await broker.publish(sent)

            async def poll() -> Delivery | None:
                return relay.get_nowait()

            delivery = await eventually(poll, timeout=self.timeout, message="get_nowait")
            assert delivery is not None
            assert delivery.envelope.body == sent.body
            await delivery.ack()

    # -- publishing ------------------------------------------------------------------------------

    async def test_delayed_publish(self, broker: Broker) -> None:
        """A delayed message arrives after its delay, and not before."""
        sent = make_update()
        async with await broker.consume(RELAY_QUEUE, prefetch=1) as relay:
            start = time.monotonic()
            await broker.publish(sent, delay=self.delay)
            await self.expect_nothing(relay, wait=self.delay / 2)
            delivery = await self.receive(relay)
            elapsed = time.monotonic() - start
            assert delivery.envelope.body == sent.body
            assert elapsed >= self.delay - 0.01, f"arrived after {elapsed:.3f}s"
            await delivery.ack()

    async def test_publish_many_delivers_all(self, broker: Broker) -> None:
        """Every message of ``publish_many`` reaches the relay."""
        sent = [make_update() for _ in range(25)]
        await broker.publish_many([(envelope, 0) for envelope in sent])
        bodies = []
        async with await broker.consume(RELAY_QUEUE, prefetch=10) as relay:
            for _ in sent:
                delivery = await self.receive(relay)
                bodies.append(delivery.envelope.body)
                await delivery.ack()
        assert sorted(bodies) == sorted(e.body for e in sent)

    async def test_declared_queue_keeps_tasks_until_a_worker_comes(
        self, broker: Broker, connect_broker: ConnectBroker
    ) -> None:
        """A task published before any worker waits and goes to the first worker."""
        await broker.declare_worker_queue("late")
        sent = make_assignment("late")
        await broker.publish(sent)
        worker = await connect_broker()
        async with await worker.consume(worker_queue("late"), prefetch=1) as work:
            delivery = await self.receive(work)
            assert delivery.envelope.task_id == sent.task_id
            await delivery.ack()

    async def test_namespaces_are_isolated(
        self, broker: Broker, connect_broker: ConnectBroker
    ) -> None:
        """Two namespaces never see each other's messages."""
        other = await connect_broker(fresh_namespace("contract"))
        sent = make_update()
        await other.publish(sent)
        async with await broker.consume(RELAY_QUEUE, prefetch=1) as mine:
            await self.expect_nothing(mine)
        async with await other.consume(RELAY_QUEUE, prefetch=1) as theirs:
            delivery = await self.receive(theirs)
            assert delivery.envelope.body == sent.body
            await delivery.ack()

    async def test_health(self, broker: Broker) -> None:
        """A connected broker reports healthy."""
        health = await broker.health()
        assert health.ok, health.detail

    # -- namespace maintenance --------------------------------------------------------------------

    def unconnected(self, broker_url: str, namespace: str) -> Broker:
        """A broker of ``namespace`` that is not connected, for namespace maintenance."""
        return get_plugin_host().create_broker(broker_url, namespace=namespace)

    async def test_consumer_count_sees_a_relay(
        self, broker: Broker, broker_url: str, namespace: str
    ) -> None:
        """``consumer_count`` counts the consumers of a queue, connected or not; a queue that
        does not exist has ``None``."""
        probe = self.unconnected(broker_url, namespace)
        assert await probe.consumer_count(worker_queue("nobody")) is None
        assert await broker.consumer_count(RELAY_QUEUE) == 0
        async with await broker.consume(RELAY_QUEUE, prefetch=1):
            assert await probe.consumer_count(RELAY_QUEUE) == 1

        async def count() -> int | None:
            return await probe.consumer_count(RELAY_QUEUE)

        await eventually(count, until=lambda n: n == 0, timeout=self.timeout, message="0")

    async def test_delete_namespace_removes_it_and_only_it(
        self, broker: Broker, connect_broker: ConnectBroker, broker_url: str, namespace: str
    ) -> None:
        """Deleting a namespace removes its queues (with what waits in them) and reports
        them; another namespace keeps its own; the deleted one works again from scratch;
        deleting it again deletes nothing."""
        await broker.declare_worker_queue(KIND)
        await broker.publish(make_assignment())
        await broker.publish(make_update(), delay=3600)
        other_namespace = fresh_namespace("contract")
        other = await connect_broker(other_namespace)
        await other.declare_worker_queue(KIND)
        kept = make_assignment()
        await other.publish(kept)
        await broker.close()

        deleted = await self.unconnected(broker_url, namespace).delete_namespace([KIND])
        assert deleted, "deleting a namespace with queues reported nothing"
        assert all(what.startswith(("queue ", "exchange ")) for what in deleted), deleted
        assert all(namespace in what for what in deleted), deleted
        probe = self.unconnected(broker_url, namespace)
        assert await probe.consumer_count(RELAY_QUEUE) is None
        assert await probe.consumer_count(worker_queue(KIND)) is None
        assert await probe.delete_namespace([KIND]) == []

        async with await other.consume(worker_queue(KIND), prefetch=1) as work:
            delivery = await self.receive(work)
            assert delivery.envelope.task_id == kept.task_id
            await delivery.ack()
        again = await connect_broker(namespace)
        async with await again.consume(worker_queue(KIND), prefetch=1) as work:
            await self.expect_nothing(work)
            sent = make_assignment()
            await again.publish(sent)
            delivery = await self.receive(work)
            assert delivery.envelope.task_id == sent.task_id
            await delivery.ack()

    async def test_an_unknown_namespace_has_nothing_to_delete(self, broker_url: str) -> None:
        """A namespace the broker never held has no relay queue and deletes nothing."""
        unknown = self.unconnected(broker_url, fresh_namespace("unknown"))
        assert await unknown.consumer_count(RELAY_QUEUE) is None
        assert await unknown.delete_namespace([KIND]) == []

    async def test_a_connected_broker_does_not_delete_its_namespace(self, broker: Broker) -> None:
        """A connected broker refuses: it may declare again what would be deleted."""
        with pytest.raises(TacoqError, match="close it before deleting its namespace"):
            await broker.delete_namespace([KIND])

    # -- direct replies (brokers with ``supports_replies``) --------------------------------------

    def require_replies(self, broker: Broker) -> None:
        """Skip a direct-reply test for a broker that does not offer them."""
        if not broker.supports_replies:
            pytest.skip(f"{type(broker).__name__} does not support direct replies")

    async def test_updates_with_reply_to_reach_relay_and_reply_queue(
        self, broker: Broker, connect_broker: ConnectBroker
    ) -> None:
        """An updates message published with ``reply_to`` reaches the relay's queue and the
        reply queue of that address, unchanged; another publisher's reply queue gets nothing."""
        self.require_replies(broker)
        caller = await connect_broker()
        mine, other = uuid4().hex, uuid4().hex
        async with (
            await caller.open_replies(mine) as replies,
            await caller.open_replies(other) as bystander,
            await broker.consume(RELAY_QUEUE, prefetch=1) as relay,
        ):
            sent = make_update()
            await broker.publish(sent, reply_to=[mine])
            for consumer in (replies, relay):
                delivery = await self.receive(consumer)
                assert delivery.envelope.body == sent.body
                assert tacoq_headers(delivery.envelope) == dict(sent.headers)
                await delivery.ack()
            await self.expect_nothing(bystander)

    async def test_reply_to_a_missing_queue_is_dropped(self, broker: Broker) -> None:
        """A reply address nobody listens on does not fail the publish or the relay's copy."""
        self.require_replies(broker)
        sent = make_update()
        await broker.publish(sent, reply_to=[uuid4().hex])
        async with await broker.consume(RELAY_QUEUE, prefetch=1) as relay:
            delivery = await self.receive(relay)
            assert delivery.envelope.body == sent.body
            await delivery.ack()

    async def test_open_replies_rejects_a_malformed_address(self, broker: Broker) -> None:
        """A reply address outside ``[A-Za-z0-9_-]{1,64}`` is refused, naming the address."""
        self.require_replies(broker)
        with pytest.raises(WireFormatError, match="not a/b"):
            await broker.open_replies("not a/b")

    # -- control messages (brokers with ``supports_control``) ------------------------------------

    def require_control(self, broker: Broker) -> None:
        """Skip a control-message test for a broker that does not carry them."""
        if not broker.supports_control:
            pytest.skip(f"{type(broker).__name__} does not carry control messages")

    async def control_bodies_until(self, broker: Broker, marker: Envelope) -> list[bytes]:
        """Send the persistent ``marker``, then consume the control queue up to it (all within
        ``timeout``): the bodies of what came before it, each acked (expected: none)."""
        await broker.send_control(marker)
        before: list[bytes] = []
        async with await broker.consume(CONTROL_QUEUE, prefetch=100) as control:
            while True:
                delivery = await self.receive(control)
                await delivery.ack()
                if delivery.envelope.body == marker.body:
                    break
                before.append(delivery.envelope.body)
            await self.expect_nothing(control)
        return before

    async def test_persistent_control_message_reaches_the_control_queue(
        self, broker: Broker
    ) -> None:
        """A control message without ``ttl`` is consumed from :data:`CONTROL_QUEUE` with its
        headers, content type and body intact, once."""
        self.require_control(broker)
        sent = make_goodbye()
        await broker.send_control(sent)
        async with await broker.consume(CONTROL_QUEUE, prefetch=1) as control:
            delivery = await self.receive(control)
            got = delivery.envelope
            assert tacoq_headers(got) == dict(sent.headers)
            assert got.content_type == sent.content_type
            assert got.body == sent.body
            assert (delivery.delivery_count, delivery.redelivered) == (1, False)
            await delivery.ack()
            await self.expect_nothing(control)

    async def test_control_message_with_ttl_is_delivered_in_time(self, broker: Broker) -> None:
        """A control message with a ``ttl`` that a consumer takes in time arrives intact."""
        self.require_control(broker)
        async with await broker.consume(CONTROL_QUEUE, prefetch=1) as control:
            sent = make_heartbeat()
            await broker.send_control(sent, ttl=self.timeout * 3)
            delivery = await self.receive(control)
            assert tacoq_headers(delivery.envelope) == dict(sent.headers)
            assert delivery.envelope.content_type == sent.content_type
            assert delivery.envelope.body == sent.body
            await delivery.ack()

    async def test_expired_control_message_is_never_delivered(self, broker: Broker) -> None:
        """A message with ``ttl`` that nobody consumed in time is dropped unread; a persistent
        one sent after it is still delivered."""
        self.require_control(broker)
        await broker.send_control(make_heartbeat(), ttl=self.control_ttl)
        await asyncio.sleep(self.control_ttl * 3)
        assert await self.control_bodies_until(broker, make_goodbye()) == []

    async def test_expired_heartbeats_leave_nothing(self, broker: Broker) -> None:
        """Many heartbeats with a short ``ttl`` sent while nobody consumes: once they expired,
        not one is delivered (no backlog for a relay that was down)."""
        self.require_control(broker)
        count, window = 500, 50
        for start in range(0, count, window):
            await asyncio.gather(
                *(
                    broker.send_control(make_heartbeat(), ttl=self.control_ttl)
                    for _ in range(min(window, count - start))
                )
            )
        await asyncio.sleep(self.control_ttl * 3)
        left = await self.control_bodies_until(broker, make_goodbye())
        assert len(left) == 0, f"{len(left)} of {count} expired heartbeats were delivered"

    async def test_requeued_or_returned_heartbeat_still_expires(self, broker: Broker) -> None:
        """A heartbeat a consumer requeued, and one it held when it closed, are dropped unread
        once their ``ttl`` passed (a requeued copy may start its ``ttl`` again): a requeue
        never makes a heartbeat persistent."""
        self.require_control(broker)
        ttl = self.control_hold_ttl
        for _ in range(2):
            await broker.send_control(make_heartbeat(), ttl=ttl)
        control = await broker.consume(CONTROL_QUEUE, prefetch=2)
        async with control:
            requeued, held = await self.receive(control), await self.receive(control)
            assert requeued.envelope.body != held.envelope.body
            await control.cancel()
            await requeued.requeue()
        await asyncio.sleep(ttl * 3)
        assert await self.control_bodies_until(broker, make_goodbye()) == []

    async def test_control_messages_never_reach_relay_or_worker_queues(
        self, broker: Broker
    ) -> None:
        """Control messages, persistent or not, go to the control queue only."""
        self.require_control(broker)
        await broker.declare_worker_queue(KIND)
        persistent, expiring = make_goodbye(), make_heartbeat()
        await broker.send_control(persistent)
        await broker.send_control(expiring, ttl=self.timeout * 3)
        async with (
            await broker.consume(worker_queue(KIND), prefetch=10) as work,
            await broker.consume(RELAY_QUEUE, prefetch=10) as relay,
        ):
            await self.expect_nothing(work)
            assert relay.get_nowait() is None
        async with await broker.consume(CONTROL_QUEUE, prefetch=10) as control:
            bodies = []
            for _ in range(2):
                delivery = await self.receive(control)
                bodies.append(delivery.envelope.body)
                await delivery.ack()
        assert bodies == [persistent.body, expiring.body]

    async def test_updates_never_reach_the_control_queue(self, broker: Broker) -> None:
        """Assignments and updates never land in the control queue."""
        self.require_control(broker)
        await broker.declare_worker_queue(KIND)
        await broker.publish(make_assignment())
        await broker.publish(make_update())
        async with await broker.consume(CONTROL_QUEUE, prefetch=10) as control:
            await self.expect_nothing(control)

    async def test_control_queue_consumers_are_counted(
        self, broker: Broker, broker_url: str, namespace: str
    ) -> None:
        """The control queue exists once a broker connected; ``consumer_count`` sees its
        consumer, connected or not."""
        self.require_control(broker)
        probe = self.unconnected(broker_url, namespace)
        assert await probe.consumer_count(CONTROL_QUEUE) == 0
        async with await broker.consume(CONTROL_QUEUE, prefetch=1):
            assert await probe.consumer_count(CONTROL_QUEUE) == 1

        async def count() -> int | None:
            return await probe.consumer_count(CONTROL_QUEUE)

        await eventually(count, until=lambda n: n == 0, timeout=self.timeout, message="0")

    async def test_delete_namespace_removes_the_control_queue(
        self, broker: Broker, connect_broker: ConnectBroker, broker_url: str, namespace: str
    ) -> None:
        """Deleting a namespace deletes its control queue with the messages in it."""
        self.require_control(broker)
        await broker.send_control(make_goodbye())
        await broker.close()
        assert await self.unconnected(broker_url, namespace).delete_namespace([KIND])
        assert await self.unconnected(broker_url, namespace).consumer_count(CONTROL_QUEUE) is None
        again = await connect_broker(namespace)
        async with await again.consume(CONTROL_QUEUE, prefetch=1) as control:
            await self.expect_nothing(control)
