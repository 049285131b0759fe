"""Namespace maintenance on a one-off connection: a queue's consumers, deleting a namespace.

Both work without a :class:`~tacoq_rabbit.link.Link` (which declares the topology when it
connects) and create nothing: every question is a passive ``queue.declare`` or
``exchange.declare``, and a missing entity (404) closes only the channel, so the next question
gets a fresh one. AMQP cannot list queues without RabbitMQ's management plugin, so deleting a
namespace deletes the queues :class:`~tacoq_rabbit.topology.Topology` can name: the relay's, the
dead-letter queue, the control queue, the 26 delay rungs and the worker queue of each kind it is
given. Reply
queues are not named here; RabbitMQ deletes each a minute after its publisher is gone
(:data:`~tacoq_rabbit.topology.REPLY_QUEUE_EXPIRES_MS`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable

import aiormq
import aiormq.abc
from aiormq.exceptions import ChannelNotFoundEntity

from tacoq_rabbit.link import RETRYABLE_ERRORS, RabbitUnavailable, describe
from tacoq_rabbit.settings import RabbitSettings, parse_url
from tacoq_rabbit.topology import Topology

__all__ = ["Probe", "consumer_count", "delete_namespace", "probe", "settings_for"]


class Probe:
    """Passive questions on one connection; a fresh channel after each 404."""

    def __init__(self, connection: aiormq.abc.AbstractConnection) -> None:
        self.connection = connection
        self._channel: aiormq.abc.AbstractChannel | None = None

    async def channel(self) -> aiormq.abc.AbstractChannel:
        """An open channel (a 404 closed the last one)."""
        if self._channel is None or self._channel.is_closed:
            self._channel = await self.connection.channel(publisher_confirms=False)
        return self._channel

    async def consumers(self, queue: str) -> int | None:
        """The consumers of physical ``queue``, or ``None`` when it does not exist."""
        channel = await self.channel()
        try:
            ok = await channel.queue_declare(queue, passive=True)
        except ChannelNotFoundEntity:
            return None
        return int(ok.consumer_count or 0)

    async def exchange_exists(self, exchange: str) -> bool:
        """Whether ``exchange`` exists."""
        channel = await self.channel()
        try:
            await channel.exchange_declare(exchange, passive=True)
        except ChannelNotFoundEntity:
            return False
        return True


@contextlib.asynccontextmanager
async def probe(settings: RabbitSettings) -> AsyncIterator[Probe]:
    """A :class:`Probe` on a connection of its own, closed afterwards; an unreachable broker
    raises :class:`~tacoq_rabbit.link.RabbitUnavailable` (no password in the message)."""
    try:
        async with asyncio.timeout(settings.connect_timeout):
            connection = await aiormq.connect(settings.client_url)
    except RETRYABLE_ERRORS as exc:
        raise RabbitUnavailable(
            f"cannot connect to RabbitMQ at {settings.display_url}: {describe(exc)}"
        ) from None
    try:
        yield Probe(connection)
    finally:
        with contextlib.suppress(Exception):
            await connection.close()


async def consumer_count(settings: RabbitSettings, queue: str) -> int | None:
    """The consumers of physical ``queue`` (``None`` when it does not exist)."""
    async with probe(settings) as asking:
        return await asking.consumers(queue)


async def delete_namespace(
    settings: RabbitSettings, namespace: str, worker_kinds: Iterable[str] = ()
) -> list[str]:
    """Delete every queue and exchange of ``namespace`` that exists (see the module doc);
    what was deleted, as ``"queue NAME"`` and ``"exchange NAME"``."""
    topology = Topology(namespace)
    deleted: list[str] = []
    async with probe(settings) as asking:
        for queue in dict.fromkeys(topology.all_queues(list(worker_kinds))):
            if await asking.consumers(queue) is not None:
                await (await asking.channel()).queue_delete(queue)
                deleted.append(f"queue {queue}")
        for exchange in topology.all_exchanges():
            if await asking.exchange_exists(exchange):
                await (await asking.channel()).exchange_delete(exchange)
                deleted.append(f"exchange {exchange}")
    return deleted


def settings_for(url: str, namespace: str) -> RabbitSettings:
    """The settings of a maintenance connection to ``url`` (named after ``namespace``)."""
    return parse_url(url, connection_name=f"tacoq maintenance {namespace}")
