"""Blocking (pika) plumbing shared by the sync publisher and the ``tacoq rabbit`` CLI.

pika ships no type information, so every pika object is ``Any`` here and nowhere else: the rest
of the plugin talks to :class:`ConfirmChannel` and the functions below.

**Windowed confirms with a BlockingConnection.** pika's ``BlockingChannel.confirm_delivery()``
makes every ``basic_publish`` wait for its own ``basic.ack`` — one round trip per message, and
pika 1.x offers no public way to keep several confirms in flight on a blocking channel. So
:class:`ConfirmChannel` switches the channel's underlying implementation into confirm mode
with its own ack/nack callback (``channel._impl.confirm_delivery``, pika's asynchronous channel
API, which BlockingChannel wraps), publishes through the blocking channel's *non-confirming*
path (which writes the frames and returns at once), and tracks delivery tags itself (RabbitMQ
numbers the publishes of a confirm-mode channel 1, 2, 3, ...; an ack or nack may cover every
tag up to its own with ``multiple``). Waiting for confirms is ``process_data_events``; the ack
callback wakes it with ``add_callback_threadsafe`` as soon as the awaited confirms are in, so a
single publish costs one round trip and a window of N publishes costs about one too.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pika
import pika.exceptions

from tacoq.errors import ConfigError, PublishError, TacoqError
from tacoq_rabbit.settings import RabbitSettings
from tacoq_rabbit.topology import BindingSpec, Declaration, ExchangeSpec, QueueSpec

__all__ = [
    "PIKA_CONNECTION_ERRORS",
    "ConfirmChannel",
    "ConfirmsLost",
    "Message",
    "RabbitUnreachable",
    "apply_declarations",
    "open_connection",
    "pika_parameters",
]

log = logging.getLogger("tacoq.rabbit")

#: Errors meaning "this connection or channel is gone" (reconnect, maybe retry).
PIKA_CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    pika.exceptions.AMQPConnectionError,
    pika.exceptions.AMQPChannelError,
    pika.exceptions.ConnectionWrongStateError,
    pika.exceptions.ChannelWrongStateError,
    pika.exceptions.StreamLostError,
    ConnectionError,
    OSError,
)

#: One AMQP message to publish: exchange, routing key, body, pika ``BasicProperties``.
Message = tuple[str, str, bytes, Any]


class RabbitUnreachable(TacoqError):
    """RabbitMQ could not be reached or refused the login (the message hides the password)."""


class ConfirmsLost(Exception):
    """The connection broke while publishes awaited confirms.

    ``unconfirmed`` lists the positions (in the sequence given to ``publish_window``) whose
    confirm never arrived: they may or may not have been routed, so a retry republishes them.
    """

    def __init__(self, unconfirmed: list[int], cause: BaseException) -> None:
        super().__init__(f"{len(unconfirmed)} publishes unconfirmed: {describe(cause)}")
        self.unconfirmed = unconfirmed
        self.cause = cause


def describe(exc: BaseException) -> str:
    """A short, credential-free description of a pika error."""
    text = str(exc) or (repr(exc.args) if exc.args else "") or "no details"
    return f"{type(exc).__name__}: {text}"[:300]


def pika_parameters(
    settings: RabbitSettings, *, heartbeat: int | None = None, connect_timeout: float = 10.0
) -> Any:
    """pika ``URLParameters`` for ``settings.client_url``.

    The ``name`` query parameter becomes the connection's ``connection_name`` client property;
    query parameters pika does not know (aio-pika's own) are dropped. ``heartbeat`` (seconds,
    0 = off) wins over the URL's.
    """
    parts = urlsplit(settings.client_url)
    query, name = [], None
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key == "name":
            name = value
        elif hasattr(pika.URLParameters, f"_set_url_{key}"):
            query.append((key, value))
        else:
            log.debug("pika ignores the URL parameter %r", key)
    url = urlunsplit(parts._replace(query=urlencode(query)))
    try:
        parameters = pika.URLParameters(url)
    except ValueError as exc:
        raise ConfigError(f"bad RabbitMQ URL {settings.display_url!r}: {exc}") from None
    if heartbeat is not None:
        parameters.heartbeat = heartbeat
    if name:
        parameters.client_properties = {"connection_name": name}
    parameters.socket_timeout = connect_timeout
    parameters.stack_timeout = connect_timeout
    parameters.blocked_connection_timeout = settings.publish_timeout
    return parameters


def open_connection(
    settings: RabbitSettings, *, heartbeat: int | None = None, attempts: int = 1
) -> Any:
    """A pika ``BlockingConnection``; raises :class:`RabbitUnreachable` (no password)."""
    parameters = pika_parameters(
        settings, heartbeat=heartbeat, connect_timeout=settings.connect_timeout
    )
    last: BaseException | None = None
    for attempt in range(max(1, attempts)):
        if attempt:
            time.sleep(min(0.1 * 2**attempt, settings.max_backoff))
        try:
            return pika.BlockingConnection(parameters)
        except pika.exceptions.ProbableAuthenticationError:
            raise RabbitUnreachable(
                f"RabbitMQ at {settings.display_url} refused the login (check user and password)"
            ) from None
        except pika.exceptions.ProbableAccessDeniedError:
            raise RabbitUnreachable(
                f"RabbitMQ at {settings.display_url} denied access to the virtual host"
            ) from None
        except (pika.exceptions.AMQPError, OSError) as exc:
            last = exc
    reason = describe(last) if last is not None else "unknown error"
    if "IncompatibleProtocolError" in reason or "StreamLostError" in reason:
        reason += " (is it an AMQP port?)"
    raise RabbitUnreachable(f"cannot connect to RabbitMQ at {settings.display_url}: {reason}")


def apply_declarations(channel: Any, declarations: Iterable[Declaration]) -> None:
    """Declare exchanges, queues and bindings (all durable) on a pika channel, in order."""
    for item in declarations:
        if isinstance(item, ExchangeSpec):
            channel.exchange_declare(item.name, exchange_type=item.type, durable=True)
        elif isinstance(item, QueueSpec):
            channel.queue_declare(item.name, durable=True, arguments=item.arguments or None)
        elif isinstance(item, BindingSpec):
            channel.queue_bind(
                item.queue,
                item.exchange,
                routing_key=item.routing_key,
                arguments=item.arguments or None,
            )


def _noop() -> None:
    """Nothing: scheduling it wakes ``process_data_events``."""


class ConfirmChannel:
    """A pika channel in confirm mode that keeps a window of confirms in flight (module doc)."""

    def __init__(self, connection: Any, timeout: float) -> None:
        self.connection = connection
        self.timeout = timeout
        self.channel = connection.channel()
        self._outstanding: dict[int, None] = {}  # tags awaiting a confirm, in publish order
        self._nacked: set[int] = set()
        self._last_tag = 0
        self._until: Callable[[], bool] | None = None
        self._selected = False
        self.channel._impl.confirm_delivery(
            ack_nack_callback=self._on_confirm, callback=self._on_select_ok
        )
        self._wait(lambda: self._selected, "confirm.select")

    def _on_select_ok(self, _frame: Any) -> None:
        self._selected = True
        self._wake()

    def _on_confirm(self, frame: Any) -> None:
        method = frame.method
        tag, multiple = method.delivery_tag, method.multiple
        nack = isinstance(method, pika.spec.Basic.Nack)
        if multiple:
            for pending in list(self._outstanding):
                if pending > tag:
                    break
                del self._outstanding[pending]
                if nack:
                    self._nacked.add(pending)
        elif self._outstanding.pop(tag, 0) is None and nack:
            self._nacked.add(tag)
        self._wake()

    def _wake(self) -> None:
        if self._until is not None and self._until():
            self._until = None
            self.connection.add_callback_threadsafe(_noop)

    def _wait(self, until: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + self.timeout
        while not until():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise PublishError(
                    f"RabbitMQ did not answer {what} within {self.timeout:g}s "
                    f"({len(self._outstanding)} confirms outstanding)"
                )
            self._until = until
            try:
                self.connection.process_data_events(time_limit=remaining)
            finally:
                self._until = None

    @property
    def in_flight(self) -> int:
        """How many publishes await their confirm."""
        return len(self._outstanding)

    def publish(self, message: Message) -> int:
        """Send one message without waiting; returns its delivery tag."""
        exchange, routing_key, body, properties = message
        # Count the tag first: basic_publish polls the socket while it writes, so the confirm
        # of this very message may be processed before basic_publish returns.
        self._last_tag += 1
        self._outstanding[self._last_tag] = None
        self.channel.basic_publish(exchange, routing_key, body, properties)
        return self._last_tag

    def wait_all(self) -> None:
        """Wait until every publish so far is confirmed; :class:`PublishError` on a nack."""
        self._wait(lambda: not self._outstanding, "the publish confirms")
        if self._nacked:
            count, self._nacked = len(self._nacked), set()
            raise PublishError(f"RabbitMQ refused {count} publish(es) (basic.nack)")

    def publish_window(self, messages: Sequence[Message], window: int) -> None:
        """Publish ``messages`` keeping at most ``window`` confirms in flight, then wait for all.

        Raises :class:`ConfirmsLost` (with the unconfirmed positions) when the connection
        breaks, :class:`PublishError` on nacks or when confirms do not come in time.
        """
        tags: list[int] = []
        try:
            for message in messages:
                if len(self._outstanding) >= window:
                    self._wait(lambda: len(self._outstanding) < window, "the publish confirms")
                tags.append(self.publish(message))
            self.wait_all()
        except PIKA_CONNECTION_ERRORS as exc:
            done = {
                position
                for position, tag in enumerate(tags)
                if tag not in self._outstanding and tag not in self._nacked
            }
            lost = [i for i in range(len(messages)) if i not in done]
            raise ConfirmsLost(lost, exc) from None

    def heartbeat(self) -> None:
        """Process pending I/O now (answers heartbeats; raises if the connection died)."""
        self.connection.process_data_events(0)

    def close(self) -> None:
        """Close the connection, ignoring errors (it may already be gone)."""
        try:
            if self.connection.is_open:
                self.connection.close()
        except Exception as exc:  # already closed or broken: nothing left to release
            log.debug("closing a pika connection failed: %s", describe(exc))
