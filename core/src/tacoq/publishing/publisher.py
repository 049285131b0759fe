"""Publishing tasks: ``Publisher`` (async) and ``SyncPublisher`` (for code without a loop).

Both are adapters over the submission kernel (:mod:`tacoq.publishing.kernel`), which validates
the options and serializes the input before anything is sent: a typed publish (by
:class:`~tacoq.worker.TaskDef`) fails in the caller on a bad input; a by-name publish serializes
the value as it is and the worker validates it.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
from collections.abc import Coroutine
from concurrent.futures import Future
from types import TracebackType
from typing import Any, Self, TypeVar, Unpack
from uuid import UUID

from tacoq.bus import EventBus
from tacoq.config import resolve_broker_url, resolve_namespace
from tacoq.contracts.broker import Broker
from tacoq.contracts.lifecycle import LifecycleEvent, LifecycleKind
from tacoq.errors import TacoqError
from tacoq.model.options import PublishOptions, TaskOptions
from tacoq.model.task import DEFAULT_TTL_SECONDS, Task, TaskEvent, pending_task
from tacoq.model.wire import encode_assignment
from tacoq.plugins import PluginHost, get_plugin_host
from tacoq.publishing.kernel import Submission, TypedTask, submission
from tacoq.publishing.replies import DEFAULT_MAX_PENDING_REPLIES, Replies, not_expected
from tacoq.serialization import DEFAULT_MAX_PAYLOAD_BYTES, SerializerRegistry

__all__ = ["CLOSE_CONFIRM_WAIT", "Publisher", "SyncPublisher"]

log = logging.getLogger("tacoq.publisher")

#: Longest :meth:`Publisher.close` waits for the confirms :meth:`Publisher.call` left (s).
CLOSE_CONFIRM_WAIT = 5.0

T = TypeVar("T")


class Publisher:
    """Publishes tasks to a broker. Use as ``async with Publisher(broker=URL) as pub``.

    ``broker`` and ``namespace`` are resolved at connect (argument > ``TACOQ_BROKER_URL`` /
    ``TACOQ_NAMESPACE`` > default). ``broker_instance`` shares an already-made broker (a worker's
    context publisher does this); the publisher then does not close it.

    ``publish(..., reply=True)`` asks for a direct reply, which :meth:`wait` returns: see
    :mod:`tacoq.publishing.replies` (``max_pending_replies`` bounds the replies expected at once).
    ``plugins`` is the plugin host that makes the broker, serializes inputs published by name
    and receives the lifecycle events (default: the process's, :func:`~tacoq.get_plugin_host`).
    """

    def __init__(
        self,
        broker: str | None = None,
        *,
        namespace: str | None = None,
        max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
        default_ttl: int = DEFAULT_TTL_SECONDS,
        broker_instance: Broker | None = None,
        max_pending_replies: int = DEFAULT_MAX_PENDING_REPLIES,
        plugins: PluginHost | None = None,
    ) -> None:
        self._url = broker
        self._plugins = plugins
        self._serializers: SerializerRegistry | None = None
        self._bus: EventBus | None = None
        self._namespace = namespace
        self.max_payload_bytes = max_payload_bytes
        self.default_ttl = default_ttl
        self._broker = broker_instance
        self._owns_broker = broker_instance is None
        self._declared: set[str] = set()
        self._connected = broker_instance is not None
        self.max_pending_replies = max_pending_replies
        self._replies: Replies | None = None
        self._opening_replies = asyncio.Lock()
        self._confirming: set[asyncio.Future[Task]] = set()

    @property
    def broker(self) -> Broker:
        """The broker this publisher sends to (connects on first publish if needed)."""
        if self._broker is None:
            raise TacoqError("the publisher is not connected; use `async with Publisher(...)`")
        return self._broker

    async def connect(self) -> None:
        """Create and connect the broker (idempotent)."""
        if self._connected:
            return
        url = resolve_broker_url(self._url)
        self._broker = self._host().create_broker(url, namespace=resolve_namespace(self._namespace))
        await self._broker.connect()
        self._connected = True

    async def close(self) -> None:
        """Close the reply queue, and the broker connection if this publisher made it.

        First collects the confirms still outstanding: :meth:`call` returns on the reply,
        which may come before the broker's confirm. Waits at most
        :data:`CLOSE_CONFIRM_WAIT` seconds for them; a publish still unconfirmed then is
        logged as failed when the connection closes.
        """
        if self._confirming:
            _, late = await asyncio.wait(set(self._confirming), timeout=CLOSE_CONFIRM_WAIT)
            if late:
                log.warning(
                    "closing the publisher with %d publishes of call() still unconfirmed after %gs",
                    len(late),
                    CLOSE_CONFIRM_WAIT,
                )
        replies, self._replies = self._replies, None
        if replies is not None:
            await replies.close()
        if self._owns_broker and self._broker is not None:
            await self._broker.close()
            self._broker = None
            self._connected = False

    async def __aenter__(self) -> Self:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

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
        """Validate and serialize a publish into what to send (nothing is sent): the
        submission kernel (:func:`tacoq.publishing.kernel.submission`) with this publisher's
        serializers, payload limit and default ttl."""
        if self._serializers is None:
            self._serializers = self._host().serializers
        return submission(
            task,
            input,
            TaskOptions.of(options, overrides),
            serializers=self._serializers,
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
        """The ASSIGNED event of a publish to send at once (nothing is sent); a delay
        (``countdown``, ``eta``) is refused here: :meth:`submission` returns it with one."""
        return self.submission(task, input, options=options, **overrides).at_once()

    async def publish(
        self,
        task: TypedTask | str,
        input: Any = None,
        *,
        reply: bool = False,
        options: TaskOptions | None = None,
        **overrides: Unpack[PublishOptions],
    ) -> Task:
        """Publish one task and return it (``PENDING``) once the broker confirmed it.

        ``task`` is a :class:`~tacoq.worker.TaskDef` (typed: the input is validated here) or a
        task kind name (then ``worker_kind`` is required). The task options
        (:class:`~tacoq.model.options.TaskOptions`) are keyword arguments, an ``options``
        object, or both (the keywords win): ``worker_kind``, ``priority`` 0–255 (higher runs
        first), ``ttl`` seconds the record lives after completion, ``id`` to choose the UUID,
        ``countdown`` seconds or ``eta`` to run it later. ``reply=True`` asks the worker to
        send the completion straight back to this publisher: :meth:`wait` returns it.
        """
        made = self.submission(task, input, options=options, **overrides)
        return await self.publish_event(made.event, delay=made.delay, reply=reply)

    async def publish_event(
        self, event: TaskEvent, *, delay: float | None = None, reply: bool = False
    ) -> Task:
        """Publish an ASSIGNED event made by :meth:`build` (or by the relay's REST publish).

        Declares the worker queue once, returns the ``PENDING`` task once the broker confirmed.
        """
        if not self._connected:
            await self.connect()
        broker = self.broker
        if event.worker_kind not in self._declared:
            await broker.declare_worker_queue(event.worker_kind)
            self._declared.add(event.worker_kind)
        task = pending_task(event)
        reply_to = None
        if reply:
            replies = await self._open_replies()
            replies.expect(task)  # before publishing: the reply may beat the confirm
            reply_to = replies.address
        try:
            await broker.publish(
                encode_assignment(event, reply_to=reply_to), priority=event.priority, delay=delay
            )
        except BaseException as exc:
            if self._replies is not None and reply:
                reason = (
                    exc if isinstance(exc, Exception) else TacoqError("the publish was cancelled")
                )
                self._replies.forget(event.id, reason)
            raise
        await self._notify(event)
        return task

    async def call(
        self,
        task: TypedTask | str,
        input: Any = None,
        *,
        timeout: float = 30.0,
        options: TaskOptions | None = None,
        **overrides: Unpack[PublishOptions],
    ) -> Task:
        """Publish a task with a direct reply and return it completed: one call, like RPC.

        The same as :meth:`publish` with ``reply=True`` then :meth:`wait` (the same task
        options), except that the reply may end the call before the broker's confirm arrives
        (a reply proves the broker routed the task; the confirm is still collected). Raises
        :class:`~tacoq.errors.PublishError` if the publish failed and no reply came,
        :class:`TimeoutError` if no reply came within ``timeout`` seconds (the relay still has
        the task's state). A task that failed comes back completed with ``is_error`` set:
        ``task.result(...)`` raises :class:`~tacoq.errors.TaskFailed`.
        """
        made = self.submission(task, input, options=options, **overrides)
        event = made.event
        if not self._connected:
            await self.connect()
        replies = await self._open_replies()
        replies.expect(pending_task(event))
        # The publish runs beside the wait. A publish that fails hands its error to the wait,
        # so the wait alone decides the outcome, and the caller's task wakes once, when the
        # reply (or that error) arrives.
        publishing = asyncio.ensure_future(self.publish_event(event, delay=made.delay, reply=True))
        publishing.add_done_callback(functools.partial(_fail_the_wait, replies, event.id))
        try:
            answered = await replies.wait(event.id, timeout)
        except BaseException:
            if not publishing.done():
                self._collect(publishing)
            elif not publishing.cancelled():
                publishing.exception()  # the error just raised, through the wait
            raise
        self._collect(publishing)  # answered first: the confirm is collected in the background
        return answered

    def _collect(self, publishing: asyncio.Future[Task]) -> None:
        if publishing.done():
            self._confirmed(publishing)
        else:
            self._confirming.add(publishing)
            publishing.add_done_callback(self._confirmed)

    def _confirmed(self, publishing: asyncio.Future[Task]) -> None:
        self._confirming.discard(publishing)
        if not publishing.cancelled() and publishing.exception() is not None:
            log.warning(
                "a task was answered, but its publish then failed: %s", publishing.exception()
            )

    async def wait(self, task_id: UUID, *, timeout: float = 30.0) -> Task:
        """The completed task, from the direct reply of a task published with ``reply=True``.

        Returns as soon as the worker's reply arrives (typically before the relay has stored
        the completion). Raises :class:`~tacoq.errors.UnknownTaskError` for a task this
        publisher did not publish with ``reply=True``, and :class:`TimeoutError` when no reply
        came in time: a reply is a best-effort copy (see :mod:`tacoq.publishing.replies`), so the
        relay (``RelayClient.wait``) remains the durable way to wait.
        """
        if self._replies is None:
            raise not_expected(task_id)
        return await self._replies.wait(task_id, timeout)

    async def _open_replies(self) -> Replies:
        async with self._opening_replies:
            if self._replies is None:
                replies = Replies(self.broker, max_pending=self.max_pending_replies)
                await replies.open()
                self._replies = replies
            return self._replies

    async def _notify(self, event: TaskEvent) -> None:
        if self._bus is None:
            self._bus = self._host().bus
        bus = self._bus
        if bus.listeners:  # the task is already published: a failing listener cannot say otherwise
            note = LifecycleEvent(
                LifecycleKind.PUBLISHED, event.id, event.task_kind, event.worker_kind, event.attempt
            )
            pending = bus.emit(note)
            if pending is not None:
                await pending


class SyncPublisher:
    """A blocking twin of :class:`Publisher` for code without an event loop (Flask, Django).

    It runs a private event loop in a daemon thread; every call waits for the broker's confirm
    (at most ``timeout`` seconds). Use as a context manager, or call :meth:`close`.
    """

    def __init__(self, broker: str | None = None, *, timeout: float = 30.0, **options: Any) -> None:
        self.timeout = timeout
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="tacoq-sync-publisher", daemon=True
        )
        self._thread.start()
        self._publisher = Publisher(broker, **options)
        try:
            self._call(self._publisher.connect())
        except BaseException:
            self._stop_loop()
            raise

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        future: Future[T] = asyncio.run_coroutine_threadsafe(coro, self._loop)
        return future.result(self.timeout)

    def publish(
        self,
        task: TypedTask | str,
        input: Any = None,
        *,
        reply: bool = False,
        options: TaskOptions | None = None,
        **overrides: Unpack[PublishOptions],
    ) -> Task:
        """Publish one task and return it once confirmed; the options of ``Publisher.publish``."""
        made = self._publisher.submission(task, input, options=options, **overrides)
        return self._call(self._publisher.publish_event(made.event, delay=made.delay, reply=reply))

    def wait(self, task_id: UUID, *, timeout: float = 30.0) -> Task:
        """The direct reply of a task published with ``reply=True`` (see ``Publisher.wait``)."""
        future: Future[Task] = asyncio.run_coroutine_threadsafe(
            self._publisher.wait(task_id, timeout=timeout), self._loop
        )
        return future.result(timeout + self.timeout)

    def close(self) -> None:
        """Close the broker connection and stop the private loop."""
        if self._thread.is_alive():
            try:
                self._call(self._publisher.close())
            finally:
                self._stop_loop()

    def _stop_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(self.timeout)
        self._loop.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _fail_the_wait(replies: Replies, task_id: UUID, publishing: asyncio.Future[Task]) -> None:
    """A failed publish ends the wait for its reply with the publish's error (a no-op once the
    reply came)."""
    if publishing.cancelled():
        replies.forget(task_id, TacoqError("the publish was cancelled"))
    elif (exc := publishing.exception()) is not None:
        replies.forget(task_id, exc if isinstance(exc, Exception) else TacoqError(repr(exc)))
