"""One supervised AMQP connection: connect, declare, publish with confirms, reconnect.

A :class:`Link` owns an aiormq connection (the transport under aio-pika) and a publishing
channel in confirm mode. Many publishes may await their confirms at once on that channel (a
window, not one round trip per message). When the connection or the channel is lost, a
supervisor reconnects with exponential backoff (0.1 s doubling to ``max_backoff``, jittered)
and declares again everything this client declared, then sets :attr:`ready`; consumers watch
their own channels and resubscribe once the link is ready again (:mod:`tacoq_rabbit.consumer`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

import aiormq
import aiormq.abc
from aiormq.exceptions import AMQPError, ChannelPreconditionFailed
from pamqp import commands as spec

from tacoq.errors import ConfigError, PublishError, TacoqError
from tacoq_rabbit import tolerant
from tacoq_rabbit.settings import RabbitSettings
from tacoq_rabbit.topology import BindingSpec, Declaration, ExchangeSpec, QueueSpec, Topology

# Before any frame is read: a message with odd properties must not drop the connection.
tolerant.install()

__all__ = [
    "CONNECTION_ERRORS",
    "RETRYABLE_ERRORS",
    "Link",
    "RabbitUnavailable",
    "apply_declarations",
    "describe",
]

log = logging.getLogger("tacoq.rabbit")
T = TypeVar("T")

#: Errors that mean "the connection or channel is gone": wait for the link and try again.
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    AMQPError,
    ConnectionError,
    OSError,
    aiormq.exceptions.ChannelInvalidStateError,
)
#: The same, plus a timeout.
RETRYABLE_ERRORS: tuple[type[BaseException], ...] = (*CONNECTION_ERRORS, TimeoutError)


class RabbitUnavailable(TacoqError):
    """RabbitMQ could not be reached (the message names the redacted URL and the cause)."""


def describe(exc: BaseException) -> str:
    """A short, credential-free description of a client error."""
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:300]


async def apply_declarations(
    channel: aiormq.abc.AbstractChannel, declarations: Iterable[Declaration]
) -> None:
    """Declare exchanges, queues and bindings (all durable) on ``channel``, in order."""
    for item in declarations:
        if isinstance(item, ExchangeSpec):
            await channel.exchange_declare(item.name, exchange_type=item.type, durable=True)
        elif isinstance(item, QueueSpec):
            await channel.queue_declare(item.name, durable=True, arguments=item.arguments or None)
        elif isinstance(item, BindingSpec):
            await channel.queue_bind(
                item.queue, item.exchange, routing_key=item.routing_key, arguments=item.arguments
            )


def _cancelled_by_caller() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


class Link:
    """A supervised connection with a confirm-mode publishing channel, for one namespace."""

    def __init__(self, settings: RabbitSettings, topology: Topology) -> None:
        self.settings = settings
        self.topology = topology
        self.display = settings.display_url
        self.ready = asyncio.Event()
        self.last_error = ""
        self.generation = 0
        self.kinds: set[str] = set()
        self.rungs: set[int] = set()
        self._connection: aiormq.abc.AbstractConnection | None = None
        self._channel: aiormq.abc.AbstractChannel | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._declare_lock = asyncio.Lock()
        self._closed = False
        # set by close(): wakes whoever waits for the connection, so they fail at once
        self._closing = asyncio.Event()

    # -- lifecycle ---------------------------------------------------------------------------

    async def open(self) -> None:
        """Connect (retrying with backoff up to ``connect_timeout``), declare, supervise."""
        if self._supervisor is not None:
            return
        self._closed = False
        self._closing.clear()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.connect_timeout
        delay = 0.1
        while True:
            try:
                await self._connect(deadline - loop.time())
                break
            except ConfigError:
                raise
            except RETRYABLE_ERRORS as exc:
                self.last_error = describe(exc)
                if loop.time() + delay >= deadline:
                    raise RabbitUnavailable(
                        f"cannot connect to RabbitMQ at {self.display} within "
                        f"{self.settings.connect_timeout:g}s: {self.last_error}"
                    ) from None
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.settings.max_backoff)
        self._supervisor = asyncio.create_task(self._supervise(), name="tacoq-rabbit-link")

    async def _connect(self, timeout: float) -> None:
        async with asyncio.timeout(max(timeout, 0.1)):
            connection = await aiormq.connect(self.settings.client_url)
            try:
                channel = await connection.channel(publisher_confirms=True)
                await self._declare_everything(channel)
            except BaseException:
                await connection.close()
                raise
        self._connection, self._channel = connection, channel
        self.generation += 1
        self.last_error = ""
        self.ready.set()

    async def _declare_everything(self, channel: aiormq.abc.AbstractChannel) -> None:
        topology = self.topology
        declarations = topology.base()
        for kind in sorted(self.kinds):
            declarations += topology.worker(kind)
        for rung in sorted(self.rungs):
            declarations += topology.rung(rung)
        await apply_declarations(channel, declarations)

    async def _supervise(self) -> None:
        while not self._closed:
            connection, channel = self._connection, self._channel
            assert connection is not None
            assert channel is not None
            watch = [connection.closing, channel.closing]
            try:
                await asyncio.wait(watch, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for future in watch:
                    future.cancel()
            if self.closed:
                return
            self.ready.clear()
            log.warning("lost the connection to RabbitMQ at %s; reconnecting", self.display)
            with contextlib.suppress(Exception):
                await connection.close()
            delay = 0.1
            while not self._closed:
                await asyncio.sleep(delay * random.uniform(0.5, 1.0))
                try:
                    await self._connect(self.settings.connect_timeout)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    self.last_error = describe(exc)
                    log.warning(
                        "reconnecting to RabbitMQ at %s failed (%s); retrying",
                        self.display,
                        self.last_error,
                    )
                    delay = min(delay * 2, self.settings.max_backoff)
                else:
                    log.info("reconnected to RabbitMQ at %s", self.display)
                    break

    async def close(self) -> None:
        """Stop supervising and close the connection."""
        self._closed = True
        self._closing.set()
        self.ready.clear()
        if self._supervisor is not None:
            self._supervisor.cancel()
            await asyncio.gather(self._supervisor, return_exceptions=True)
            self._supervisor = None
        if self._connection is not None:
            with contextlib.suppress(Exception):
                await self._connection.close()
            self._connection = self._channel = None

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return self._closed

    # -- waiting for the connection ------------------------------------------------------------

    async def connection(self, timeout: float | None = None) -> aiormq.abc.AbstractConnection:
        """The current connection, waiting up to ``timeout`` (default: publish timeout)."""
        await self._wait_ready(self.settings.publish_timeout if timeout is None else timeout)
        assert self._connection is not None
        return self._connection

    async def _wait_ready(self, timeout: float) -> None:
        if not self._closed and self.ready.is_set():
            return
        if not self._closed:  # wait for the connection, or for close()
            waits = {
                asyncio.ensure_future(self.ready.wait()),
                asyncio.ensure_future(self._closing.wait()),
            }
            try:
                await asyncio.wait(
                    waits, timeout=max(timeout, 0.0), return_when=asyncio.FIRST_COMPLETED
                )
            finally:
                for waiting in waits:
                    waiting.cancel()
        if self._closed:
            raise RabbitUnavailable(f"the RabbitMQ client for {self.display} is closed")
        if not self.ready.is_set():
            raise RabbitUnavailable(
                f"RabbitMQ at {self.display} is unreachable ({self.last_error or 'reconnecting'})"
            )

    async def retrying(
        self, operation: Callable[[aiormq.abc.AbstractChannel], Awaitable[T]], what: str
    ) -> T:
        """Run ``operation`` on the publishing channel, across reconnections, within the
        publish timeout; raises :class:`PublishError` when it cannot succeed in time."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.publish_timeout
        while True:
            channel = self._channel
            if self.ready.is_set() and channel is not None and not channel.is_closed:
                try:
                    return await operation(channel)
                except ChannelPreconditionFailed as exc:
                    raise ConfigError(f"{what} refused by RabbitMQ: {describe(exc)}") from None
                except asyncio.CancelledError:
                    if _cancelled_by_caller():
                        raise
                    self.last_error = "channel closed"
                except CONNECTION_ERRORS as exc:
                    self.last_error = describe(exc)
            if self._closed:
                raise PublishError(
                    f"{what} failed: the connection to RabbitMQ at {self.display} was closed "
                    "before RabbitMQ answered"
                )
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise PublishError(
                    f"{what} failed: RabbitMQ at {self.display} did not answer within "
                    f"{self.settings.publish_timeout:g}s ({self.last_error or 'reconnecting'})"
                )
            try:
                await self._wait_ready(remaining)
            except RabbitUnavailable as exc:
                raise PublishError(f"{what} failed: {exc}") from None
            if channel is self._channel:  # still the broken channel: let the supervisor see it
                await asyncio.sleep(min(0.05, max(remaining, 0.0)))

    # -- publishing and declaring --------------------------------------------------------------

    async def publish(
        self, exchange: str, routing_key: str, body: bytes, properties: spec.Basic.Properties
    ) -> None:
        """Publish and return once RabbitMQ confirmed; retried across a reconnection."""
        channel = self._channel
        if self.ready.is_set() and channel is not None and not channel.is_closed:
            try:  # the fast path: no closure, no deadline bookkeeping
                confirm = await channel.basic_publish(
                    body,
                    exchange=exchange,
                    routing_key=routing_key,
                    properties=properties,
                    timeout=self.settings.publish_timeout,
                )
            except TimeoutError:
                raise PublishError(
                    f"RabbitMQ at {self.display} did not confirm a publish within "
                    f"{self.settings.publish_timeout:g}s"
                ) from None
            except asyncio.CancelledError:
                if _cancelled_by_caller():
                    raise
            except CONNECTION_ERRORS as exc:
                self.last_error = describe(exc)
            else:
                _check_confirm(confirm, self.display)
                return

        async def attempt(channel: aiormq.abc.AbstractChannel) -> Any:
            return await channel.basic_publish(
                body,
                exchange=exchange,
                routing_key=routing_key,
                properties=properties,
                timeout=self.settings.publish_timeout,
            )

        try:
            confirm = await self.retrying(attempt, "publish")
        except TimeoutError:
            raise PublishError(f"RabbitMQ at {self.display} did not confirm in time") from None
        _check_confirm(confirm, self.display)

    async def declare_worker(self, worker_kind: str) -> None:
        """Declare the queue of ``worker_kind`` and bind the relay to it (once per client)."""
        if worker_kind in self.kinds:
            return
        async with self._declare_lock:
            if worker_kind in self.kinds:
                return

            async def declare(channel: aiormq.abc.AbstractChannel) -> None:
                await apply_declarations(channel, self.topology.worker(worker_kind))

            await self.retrying(declare, f"declaring the queue of worker kind {worker_kind!r}")
            self.kinds.add(worker_kind)

    async def declare_rung(self, rung_ms: int) -> None:
        """Declare one delay rung (once per client)."""
        if rung_ms in self.rungs:
            return
        async with self._declare_lock:
            if rung_ms in self.rungs:
                return

            async def declare(channel: aiormq.abc.AbstractChannel) -> None:
                await apply_declarations(channel, self.topology.rung(rung_ms))

            await self.retrying(declare, f"declaring the {rung_ms} ms delay queue")
            self.rungs.add(rung_ms)


def _check_confirm(confirm: object, display: str) -> None:
    if isinstance(confirm, spec.Basic.Nack):
        raise PublishError(f"RabbitMQ at {display} refused a publish (basic.nack)")


async def delete_namespace(url: str, namespace: str, worker_kinds: Iterable[str] = ()) -> list[str]:
    """Delete every queue and exchange of ``namespace`` that exists (the given worker kinds'
    queues, the relay's, the dead-letter queue, the control queue, every delay rung, the
    exchanges); what was deleted. For tests and tooling
    (:func:`tacoq_rabbit.namespace.delete_namespace`, which ``RabbitBroker.delete_namespace``
    uses); RabbitMQ offers no listing without its management plugin, hence ``worker_kinds``."""
    from tacoq_rabbit import namespace as maintenance

    settings = maintenance.settings_for(url, namespace)
    return await maintenance.delete_namespace(settings, namespace, worker_kinds)
