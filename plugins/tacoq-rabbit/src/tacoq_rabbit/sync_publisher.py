"""``SyncRabbitPublisher``: publish TacoQ tasks to RabbitMQ from code without an event loop.

For Flask, Django, scripts and threads: built on pika's ``BlockingConnection``, speaking the same
wire format as the async broker (``tacoq.model.wire.encode_assignment`` + :mod:`tacoq_rabbit.codec`,
which also says where each message goes) and declaring the same topology
(:mod:`tacoq_rabbit.topology`). It is AMQP transport only: validation, serialization and every
task option are core's submission kernel (:mod:`tacoq.publishing.kernel`), so a publish fails in
the caller exactly as with the async publisher.

- **One connection per thread** (``threading.local``): pika connections are not thread-safe.
- **Heartbeats**: a ``BlockingConnection`` answers heartbeats only while the program calls into
  it. Each publish first calls ``process_data_events(0)``, which answers pending heartbeats and
  notices a connection the broker closed while the program was idle (it is then reopened before
  the publish, silently). An idle publisher misses heartbeats and RabbitMQ closes its connection
  after about two intervals; that costs one reconnect on the next publish, nothing else.
  ``heartbeat=0`` turns heartbeats off (an idle connection then stays open until TCP notices a
  dead peer); ``heartbeat=N`` asks for N seconds; ``None`` takes the server's (60 s by default).
- **Confirms**: every publish returns once RabbitMQ confirmed it; :meth:`publish_many` keeps
  ``window`` confirms in flight (see :mod:`tacoq_rabbit.pika_link` for how, with pika).
- **Reconnect and retry once**: when the connection breaks during a publish, the publisher
  reconnects and publishes the same message again (same task id) once; a second failure raises
  :class:`~tacoq.errors.PublishError`. A task may thus arrive twice — TacoQ is at-least-once and
  the relay's merge rule makes a duplicate assignment harmless.
- **Delays** (``countdown``/``eta``) go through the async broker's delay ladder: a delayed
  assignment goes to ``ns.delay`` with ``expiration`` and ``tacoq-delay``, plus an immediate copy
  to the relay, exactly as :class:`~tacoq_rabbit.broker.RabbitBroker` does.

Credentials never appear in logs or errors (only the redacted URL).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self, Unpack

import pika

from tacoq.config import resolve_broker_url, resolve_namespace
from tacoq.contracts.broker import priority_level
from tacoq.contracts.lifecycle import LifecycleEvent, LifecycleKind
from tacoq.errors import ConfigError, PublishError
from tacoq.logfields import task_fields
from tacoq.model.options import PublishOptions, TaskOptions
from tacoq.model.task import DEFAULT_TTL_SECONDS, Task, TaskEvent, pending_task
from tacoq.model.wire import encode_assignment
from tacoq.plugins import PluginHost, get_plugin_host
from tacoq.publishing.kernel import Submission, TypedTask, submission
from tacoq.serialization import DEFAULT_MAX_PAYLOAD_BYTES
from tacoq_rabbit.codec import outgoing, property_fields
from tacoq_rabbit.pika_link import (
    PIKA_CONNECTION_ERRORS,
    ConfirmChannel,
    ConfirmsLost,
    Message,
    apply_declarations,
    describe,
    open_connection,
)
from tacoq_rabbit.settings import parse_url
from tacoq_rabbit.topology import Topology

__all__ = ["DEFAULT_WINDOW", "SyncRabbitPublisher"]

log = logging.getLogger("tacoq.rabbit")

#: How many confirms :meth:`SyncRabbitPublisher.publish_many` keeps in flight by default.
DEFAULT_WINDOW = 100

_RETRYABLE: tuple[type[BaseException], ...] = (ConfirmsLost, *PIKA_CONNECTION_ERRORS)


@dataclass
class _ThreadLink:
    """One thread's connection, its confirm channel and what it declared."""

    confirm: ConfirmChannel
    kinds: set[str] = field(default_factory=set)
    rungs: set[int] = field(default_factory=set)


class SyncRabbitPublisher:
    """A blocking RabbitMQ publisher (pika): ``with SyncRabbitPublisher(url) as pub: ...``.

    ``url`` defaults to ``TACOQ_BROKER_URL``, ``namespace`` to ``TACOQ_NAMESPACE`` (then
    ``tacoq``). The URL's ``publish_timeout`` / ``connect_timeout`` options apply as for the
    async broker; ``heartbeat`` is described in the module doc. Connections open lazily, one per
    thread; :meth:`close` closes them all (call it when no thread is publishing any more).
    ``plugins`` serializes inputs published by name and receives the lifecycle events (default:
    the process's plugin host).
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        namespace: str | None = None,
        heartbeat: int | None = None,
        max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
        default_ttl: int = DEFAULT_TTL_SECONDS,
        connection_name: str | None = None,
        plugins: PluginHost | None = None,
    ) -> None:
        self.namespace = resolve_namespace(namespace)
        self.settings = parse_url(
            resolve_broker_url(url),
            connection_name=connection_name or f"tacoq sync {self.namespace}",
        )
        self.topology = Topology(self.namespace)
        self.heartbeat = heartbeat
        self.max_payload_bytes = max_payload_bytes
        self.default_ttl = default_ttl
        self._plugins = plugins
        self._local = threading.local()
        self._links: list[_ThreadLink] = []
        self._lock = threading.Lock()
        self._closed = False

    def __repr__(self) -> str:
        return f"SyncRabbitPublisher({self.settings.display_url!r}, namespace={self.namespace!r})"

    # -- connections -------------------------------------------------------------------------

    def _open(self) -> _ThreadLink:
        if self._closed:
            raise PublishError(f"{self!r} is closed")
        connection = open_connection(self.settings, heartbeat=self.heartbeat, attempts=3)
        try:
            confirm = ConfirmChannel(connection, self.settings.publish_timeout)
            apply_declarations(confirm.channel, self.topology.base())
        except BaseException:
            connection.close()
            raise
        link = _ThreadLink(confirm)
        with self._lock:
            self._links.append(link)
        self._local.link = link
        return link

    def _drop(self) -> None:
        link: _ThreadLink | None = getattr(self._local, "link", None)
        self._local.link = None
        if link is not None:
            link.confirm.close()
            with self._lock:
                if link in self._links:
                    self._links.remove(link)

    def _link(self) -> _ThreadLink:
        """This thread's live connection: heartbeats answered, reopened if it died idle."""
        link: _ThreadLink | None = getattr(self._local, "link", None)
        if link is None:
            return self._open()
        try:
            link.confirm.heartbeat()
        except PIKA_CONNECTION_ERRORS as exc:
            log.info("the idle RabbitMQ connection was lost (%s); reconnecting", describe(exc))
            self._drop()
            return self._open()
        return link

    def _declare(self, link: _ThreadLink, kinds: Iterable[str], rung: int | None = None) -> None:
        for kind in kinds:
            if kind not in link.kinds:
                apply_declarations(link.confirm.channel, self.topology.worker(kind))
                link.kinds.add(kind)
        if rung is not None and rung not in link.rungs:
            apply_declarations(link.confirm.channel, self.topology.rung(rung))
            link.rungs.add(rung)

    # -- building messages -------------------------------------------------------------------

    def _host(self) -> PluginHost:
        if self._plugins is None:
            self._plugins = get_plugin_host()
        return self._plugins

    def submission(
        self,
        task: TypedTask | str,
        input: Any = None,
        *,
        options: TaskOptions | None = None,
        **overrides: Unpack[PublishOptions],
    ) -> Submission:
        """Validate and serialize a publish into what to send (core's submission kernel)."""
        return submission(
            task,
            input,
            TaskOptions.of(options, overrides),
            serializers=self._host().serializers,
            max_payload_bytes=self.max_payload_bytes,
            default_ttl=self.default_ttl,
        )

    def build(
        self,
        task: TypedTask | str,
        input: Any = None,
        *,
        options: TaskOptions | None = None,
        **overrides: Unpack[PublishOptions],
    ) -> TaskEvent:
        """The ASSIGNED event of a publish to send at once, for :meth:`publish_events` (a
        delay is refused here: :meth:`submission` returns it with one)."""
        return self.submission(task, input, options=options, **overrides).at_once()

    def messages(self, event: TaskEvent, delay: float | None = None) -> list[Message]:
        """The AMQP messages of an assignment: one, or two when delayed (the rung + the relay)."""
        return self._messages(event, delay)[0]

    def _messages(self, event: TaskEvent, delay: float | None) -> tuple[list[Message], int | None]:
        envelope = encode_assignment(event)
        fields = property_fields(envelope, priority_level(event.priority))
        key = self.topology.worker_routing_key(event.worker_kind)
        found, rung = outgoing(self.topology, key, fields, delay=delay, relay_copy=True)
        # pamqp (under aiormq) writes table keys sorted; pika writes them in dict order.
        # Sorting here makes both clients' messages byte-for-byte identical.
        messages: list[Message] = []
        for m in found:
            headers = dict(sorted(m.fields["headers"].items()))
            properties = pika.BasicProperties(**dict(m.fields, headers=headers))
            messages.append((m.exchange, m.routing_key, envelope.body, properties))
        return messages, rung

    # -- publishing --------------------------------------------------------------------------

    def publish(
        self,
        task: TypedTask | str,
        input: Any = None,
        *,
        options: TaskOptions | None = None,
        **overrides: Unpack[PublishOptions],
    ) -> Task:
        """Publish one task; return it (``PENDING``) once RabbitMQ confirmed it.

        The task options of :meth:`tacoq.Publisher.publish` (keywords, an ``options`` object or
        both): a ``TaskDef`` (typed, validated here) or a task kind name with ``worker_kind``;
        ``priority`` 0-255; ``ttl``; ``id``; ``countdown`` seconds or an aware ``eta``.
        """
        made = self.submission(task, input, options=options, **overrides)
        return self.publish_event(made.event, delay=made.delay)

    def publish_event(self, event: TaskEvent, *, delay: float | None = None) -> Task:
        """Publish an ASSIGNED event made by :meth:`build`; reconnect and retry once."""
        messages, rung = self._messages(event, delay)
        for attempt in (1, 2):
            try:
                link = self._link()
                self._declare(link, [event.worker_kind], rung)
                link.confirm.publish_window(messages, len(messages))
                break
            except _RETRYABLE as exc:
                self._drop()
                cause = exc.cause if isinstance(exc, ConfirmsLost) else exc
                if attempt == 2:
                    raise PublishError(
                        f"publishing task {event.id} to RabbitMQ at {self.settings.display_url} "
                        f"failed twice: {describe(cause)}"
                    ) from None
                log.warning(
                    "publishing task %s failed (%s); reconnecting and retrying once",
                    event.id,
                    describe(cause),
                    extra=task_fields(event.id, event.task_kind, event.attempt),
                )
        self._notify([event])
        return pending_task(event)

    def publish_many(
        self,
        items: Iterable[tuple[TypedTask | str, Any]],
        *,
        window: int = DEFAULT_WINDOW,
        options: TaskOptions | None = None,
        **overrides: Unpack[PublishOptions],
    ) -> list[Task]:
        """Publish ``(task, input)`` pairs, all with the same options, with up to ``window``
        confirms in flight.

        Every item is built (validated) before anything is sent, so a bad input publishes
        nothing. Returns the tasks, in order, once all are confirmed. An ``id`` (which names
        one task) and a delay are refused here; for per-item options, :meth:`build` the events
        yourself and call :meth:`publish_events`.
        """
        shared = TaskOptions.of(options, overrides)
        if shared.id is not None:
            raise ConfigError("publish_many() publishes many tasks: an id names one")
        events = [self.build(task, value, options=shared) for task, value in items]
        return self.publish_events(events, window=window)

    def publish_events(
        self, events: Sequence[TaskEvent], *, window: int = DEFAULT_WINDOW
    ) -> list[Task]:
        """Publish ASSIGNED events with up to ``window`` confirms in flight.

        When the connection breaks, the publisher reconnects once and republishes every event
        whose confirm had not arrived (same ids); a second break raises ``PublishError``.
        """
        if window < 1:
            raise ValueError(f"window must be at least 1, got {window!r}")
        pending = list(range(len(events)))
        messages = [self.messages(event)[0] for event in events]
        kinds = sorted({event.worker_kind for event in events})
        for attempt in (1, 2):
            try:
                link = self._link()
                self._declare(link, kinds)
                link.confirm.publish_window([messages[i] for i in pending], window)
                break
            except ConfirmsLost as exc:
                pending = [pending[i] for i in exc.unconfirmed]
                cause: BaseException = exc.cause
            except PIKA_CONNECTION_ERRORS as exc:
                cause = exc
            self._drop()
            if attempt == 2:
                raise PublishError(
                    f"publishing {len(pending)} of {len(events)} tasks to RabbitMQ at "
                    f"{self.settings.display_url} failed twice: {describe(cause)}"
                )
            log.warning(
                "publishing %d tasks failed (%s); reconnecting and retrying them once",
                len(pending),
                describe(cause),
            )
        self._notify(events)
        return [pending_task(event) for event in events]

    def _notify(self, events: Sequence[TaskEvent]) -> None:
        bus = self._host().bus
        if not bus:
            return
        for event in events:  # published already: a failing listener cannot say otherwise
            note = LifecycleEvent(
                LifecycleKind.PUBLISHED, event.id, event.task_kind, event.worker_kind, event.attempt
            )
            pending = bus.emit(note)
            if pending is not None:
                asyncio.run(_awaited(pending))

    # -- lifecycle ---------------------------------------------------------------------------

    def close(self) -> None:
        """Close every connection this publisher opened (in any thread)."""
        self._closed = True
        with self._lock:
            links, self._links = list(self._links), []
        for link in links:
            link.confirm.close()
        self._local = threading.local()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


async def _awaited(awaitable: Any) -> None:
    await awaitable
