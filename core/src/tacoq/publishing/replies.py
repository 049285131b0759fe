"""Direct replies: a publisher's private queue for the results of the tasks it publishes.

A task published with ``reply=True`` carries the publisher's reply address
(``tacoq-reply-to``). The worker that completes it sends its COMPLETED event there too, at
once, besides the copy it sends the relay; :meth:`Replies.wait` resolves from that message,
so a caller has its result one broker hop after the worker finished, without waiting for the
relay to store it and a store notification to come back.

A reply is a copy, never the record. The relay still stores every state, and
``RelayClient.wait`` is the durable way to wait: a reply can be lost (the reply queue is
transient and does not survive a broker restart; a worker that cannot send it only logs), and
then :meth:`Replies.wait` times out while the relay has the task. At-least-once applies here
too: a task that is run again after a crash can reply twice; the first reply wins.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import OrderedDict
from uuid import UUID

from tacoq.contracts.broker import Broker, Consumer
from tacoq.errors import TacoqError, UnknownTaskError, WireFormatError
from tacoq.model.merge import merge
from tacoq.model.task import Phase, Task
from tacoq.model.wire import Envelope, decode_updates

__all__ = ["DEFAULT_MAX_PENDING_REPLIES", "Replies", "not_expected"]

log = logging.getLogger("tacoq.publisher")

#: Most replies a publisher keeps expecting; beyond it the oldest expectation is dropped.
DEFAULT_MAX_PENDING_REPLIES = 10_000


class Replies:
    """One publisher's reply queue, and the tasks whose replies it expects."""

    def __init__(self, broker: Broker, *, max_pending: int = DEFAULT_MAX_PENDING_REPLIES) -> None:
        self.broker = broker
        #: This publisher's reply address (the ``tacoq-reply-to`` its tasks carry).
        self.address = uuid.uuid4().hex
        self.max_pending = max_pending
        self._expected: OrderedDict[UUID, tuple[Task, asyncio.Future[Task]]] = OrderedDict()
        # the last ids dropped for max_pending, so waiting for one names the reason
        self._dropped: OrderedDict[UUID, None] = OrderedDict()
        self._consumer: Consumer | None = None
        self._reader: asyncio.Task[None] | None = None

    async def open(self) -> None:
        """Create the reply queue and start reading it (idempotent)."""
        if self._consumer is not None:
            return
        self._consumer = await self.broker.open_replies(self.address)
        self._reader = asyncio.create_task(self._read(self._consumer), name="tacoq-replies")

    def expect(self, task: Task) -> None:
        """Expect the reply of ``task`` (call before publishing it, so no reply is missed)."""
        if task.id in self._expected:
            return
        future: asyncio.Future[Task] = asyncio.get_running_loop().create_future()
        self._expected[task.id] = (task, future)
        while len(self._expected) > self.max_pending:
            dropped, (_, old) = self._expected.popitem(last=False)
            self._dropped[dropped] = None
            if len(self._dropped) > self.max_pending:
                self._dropped.popitem(last=False)
            _fail(old, self._too_many(dropped))

    def forget(self, task_id: UUID, reason: Exception) -> None:
        """Stop expecting a reply (its publish failed with ``reason``): a waiter gets it."""
        expected = self._expected.pop(task_id, None)
        if expected is not None:
            _fail(expected[1], reason)

    async def wait(self, task_id: UUID, timeout: float) -> Task:
        """The completed task from its direct reply.

        Raises :class:`UnknownTaskError` if this publisher did not publish ``task_id`` with
        ``reply=True`` (or already returned its reply), and :class:`TimeoutError` if no reply
        came within ``timeout`` seconds (the relay then still has the task's state).
        """
        expected = self._expected.get(task_id)
        if expected is None:
            if task_id in self._dropped:
                raise self._too_many(task_id)
            raise not_expected(task_id)
        future = expected[1]
        try:
            async with asyncio.timeout(timeout):
                return await asyncio.shield(future)
        except TimeoutError:
            raise TimeoutError(
                f"no direct reply for task {task_id} within {timeout:g}s; the relay has its "
                "state (RelayClient.wait)"
            ) from None
        finally:
            if future.done():
                self._expected.pop(task_id, None)

    def _too_many(self, task_id: UUID) -> TacoqError:
        return TacoqError(
            f"stopped waiting for the reply of task {task_id}: more than {self.max_pending:,} "
            "replies were expected at once (max_pending_replies); wait for it on the relay"
        )

    async def _read(self, consumer: Consumer) -> None:
        try:
            while True:
                delivery = await consumer.get()
                self._resolve(delivery.envelope)
                await delivery.ack()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the consumer broke: say so to every waiter at once
            log.error("the reply queue %s stopped: %s", self.address, exc)
            self._fail(TacoqError(f"the publisher's reply queue stopped: {exc}"))

    def _resolve(self, envelope: Envelope) -> None:
        try:
            events = decode_updates(envelope)
        except WireFormatError as exc:
            log.warning("ignoring a malformed reply: %s", exc)
            return
        for event in events:
            expected = self._expected.get(event.id)
            if expected is None or event.phase is not Phase.COMPLETED:
                continue  # another task's event in the same message, or a second reply
            snapshot, future = expected
            if not future.done():
                future.set_result(merge(snapshot, event)[0])

    def _fail(self, error: TacoqError) -> None:
        for _, future in self._expected.values():
            _fail(future, error)

    async def close(self) -> None:
        """Stop reading and remove the reply queue; waiters get :class:`TacoqError`."""
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            with contextlib.suppress(Exception):
                await consumer.close()
        self._fail(TacoqError("the publisher closed before the reply came"))
        self._expected.clear()


def not_expected(task_id: UUID) -> UnknownTaskError:
    """The error of waiting for a reply nobody asked for (or that was already returned)."""
    return UnknownTaskError(
        f"task {task_id} was not published with reply=True by this publisher "
        "(or its reply was already returned); wait for it on the relay instead"
    )


def _fail(future: asyncio.Future[Task], error: Exception) -> None:
    if not future.done():
        future.set_exception(error)
        future.exception()  # nobody may be waiting; do not warn about it
