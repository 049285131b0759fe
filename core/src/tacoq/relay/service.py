"""The relay as a service: the engine's update consumer, the HTTP API and the cleanup job.

:class:`RelayService` wraps the one :class:`~tacoq.relay.engine.RelayEngine` (it never consumes
anything itself) and adds what the HTTP API needs: the REST publish path (idempotent by id,
through :meth:`~tacoq.contracts.store.Store.insert_if_absent`), health and counters, and a uvicorn
server on a socket it binds itself (so ``port=0`` works and the bound port is known at once). Each
part can be switched off: ``consume``, ``http``, ``cleanup``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import socket
import time
from collections.abc import Callable, Coroutine, Iterable, Iterator
from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from tacoq.contracts.broker import Broker, Health
from tacoq.contracts.store import Store
from tacoq.errors import (
    ConfigError,
    InputRefused,
    PublishConflict,
    PublishFailed,
    PublishRefused,
    StoreUnavailable,
    TacoqError,
)
from tacoq.logfields import task_fields
from tacoq.model.task import DEFAULT_TTL_SECONDS, TaskEvent, utcnow
from tacoq.model.wire import MAX_HEADER_VALUE_LENGTH, quoted
from tacoq.model.workers import WorkerRecord
from tacoq.plugins import PluginHost
from tacoq.publishing.kernel import submission
from tacoq.publishing.publisher import Publisher
from tacoq.relay.api_models import HealthOut, PartHealth, PublishIn
from tacoq.relay.engine import (
    DEFAULT_ASSIGNMENT_LINGER,
    DEFAULT_BATCH_SIZE,
    DEFAULT_MAX_BATCH_WAIT,
    RelayEngine,
)
from tacoq.relay.workers_online import WorkersView, check_input, kinds_of
from tacoq.serialization import DEFAULT_MAX_PAYLOAD_BYTES

__all__ = [
    "ANNOUNCED",
    "DEFAULT_BODY_TIMEOUT",
    "DEFAULT_HEADER_TIMEOUT",
    "DEFAULT_MAX_WAIT",
    "PublishConflict",
    "PublishFailed",
    "PublishRefused",
    "RelayService",
    "check_worker_kinds",
]

log = logging.getLogger("tacoq.relay")

#: The longest a single ``GET /tasks/{id}?wait=`` holds the request (longer waits are capped).
DEFAULT_MAX_WAIT = 60.0
#: Seconds a request's line and headers may take to arrive (then: 408, and the connection closes).
DEFAULT_HEADER_TIMEOUT = 10.0
#: Seconds a request's body may take to arrive after its headers.
DEFAULT_BODY_TIMEOUT = 30.0
#: How long a health probe of the store or broker may take before it counts as failing.
HEALTH_TIMEOUT = 5.0
#: How many times a REST publish tries again after a concurrent winner's publish failed.
_PUBLISH_ROUNDS = 3


class _Server:
    """uvicorn's server without its signal handling: the relay's owner decides when to stop."""

    def __init__(self, config: Any) -> None:
        import uvicorn

        class Server(uvicorn.Server):
            @contextlib.contextmanager
            def capture_signals(self) -> Iterator[None]:
                yield

            def install_signal_handlers(self) -> None:  # uvicorn < 0.29
                return None

        self.server = Server(config)


#: ``worker_kinds=ANNOUNCED`` (``--worker-kinds announced``): REST publishes may name only the
#: worker kinds (and their task kinds) that live workers announced.
ANNOUNCED = "announced"


class RelayService:
    """The relay: consumer, HTTP API and cleanup job, each switchable off.

    ``broker``/``store``/``namespace`` are URLs or objects, resolved like everywhere (argument
    > environment > default). ``port=0`` picks a free port; :attr:`port` holds the bound one
    once :meth:`run` has started. ``default_ttl`` applies to REST publishes without a ttl;
    ``token`` (optional) protects every route but the probes ``/health/live`` and
    ``/health/ready`` (and, with ``public_docs``, the interactive docs and the OpenAPI
    document). ``worker_kinds`` (optional) are the only worker kinds REST publishes may name:
    without it, any client can make the broker create a durable queue per new kind.
    ``header_timeout`` and ``body_timeout`` bound how long a request's line and headers, then
    its body, may take to arrive (:mod:`tacoq.relay.protocol`). ``plugins`` makes the broker
    and store from URLs and receives the lifecycle events (default: the process's plugin host).
    """

    def __init__(
        self,
        broker: str | Broker | None = None,
        store: str | Store | None = None,
        *,
        namespace: str | None = None,
        host: str = "127.0.0.1",
        port: int = 8080,
        consume: bool = True,
        http: bool = True,
        cleanup: bool = True,
        batch_size: int = DEFAULT_BATCH_SIZE,
        max_batch_wait: float = DEFAULT_MAX_BATCH_WAIT,
        assignment_linger: float = DEFAULT_ASSIGNMENT_LINGER,
        cleanup_interval: float = 60.0,
        default_ttl: int = DEFAULT_TTL_SECONDS,
        token: str | None = None,
        public_docs: bool = False,
        max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
        max_body_bytes: int | None = None,
        max_wait: float = DEFAULT_MAX_WAIT,
        worker_kinds: Iterable[str] | Literal["announced"] | None = None,
        check_input: bool = False,
        header_timeout: float = DEFAULT_HEADER_TIMEOUT,
        body_timeout: float = DEFAULT_BODY_TIMEOUT,
        clock: Callable[[], datetime] = utcnow,
        plugins: PluginHost | None = None,
    ) -> None:
        if not (consume or http or cleanup):
            raise ConfigError(
                "the relay has nothing to run: consumer, HTTP and cleanup are all off"
            )
        if type(default_ttl) is not int or default_ttl < 0:
            raise ConfigError(
                f"default ttl must be a whole number of seconds >= 0: {default_ttl!r}"
            )
        if cleanup_interval <= 0:
            raise ConfigError(f"cleanup interval must be > 0 seconds, got {cleanup_interval!r}")
        if max_batch_wait < 0:
            raise ConfigError(f"max batch wait must be >= 0 seconds, got {max_batch_wait!r}")
        if assignment_linger < 0:
            raise ConfigError(f"assignment linger must be >= 0 seconds, got {assignment_linger!r}")
        if batch_size < 1:
            raise ConfigError(f"batch size must be at least 1, got {batch_size!r}")
        announced_only = worker_kinds == ANNOUNCED
        kinds = (
            None
            if worker_kinds is None or isinstance(worker_kinds, str)
            else check_worker_kinds(worker_kinds)
        )
        for name, seconds in (("header timeout", header_timeout), ("body timeout", body_timeout)):
            if not (isinstance(seconds, int | float) and 0 < seconds < math.inf):
                raise ConfigError(f"{name} must be a finite number of seconds > 0, got {seconds!r}")
        self.engine = RelayEngine(
            broker,
            store,
            namespace=namespace,
            batch_size=batch_size,
            max_batch_wait=max_batch_wait,
            assignment_linger=assignment_linger,
            consume=consume,
            cleanup=cleanup,
            cleanup_interval=cleanup_interval,
            clock=clock,
            max_payload_bytes=max_payload_bytes,
            plugins=plugins,
        )
        self.publisher = Publisher(
            broker_instance=self.engine.broker,
            max_payload_bytes=max_payload_bytes,
            default_ttl=default_ttl,
            plugins=plugins,
        )
        self.host = host
        self.port = port
        self.http_enabled = http
        self.token = token or None
        self.public_docs = public_docs
        self.max_wait = max_wait
        #: The worker kinds REST publishes may name (``None``: any).
        self.worker_kinds = kinds
        #: REST publishes may name only worker and task kinds live workers announced.
        self.announced_only = announced_only
        #: REST publishes' inputs are checked against the announced contracts.
        self.check_input = check_input
        #: The live workers, as the store has them (``GET /workers``, the checks above).
        self.workers = WorkersView(self.engine.store)
        #: Seconds a request's line and headers, then its body, may take to arrive.
        self.header_timeout = header_timeout
        self.body_timeout = body_timeout
        self.max_body_bytes = max_body_bytes or 2 * max_payload_bytes + 64 * 1024
        self.clock = clock
        #: Set once every enabled part runs (the HTTP socket is listening).
        self.ready = asyncio.Event()
        #: Set when the service begins to stop; wakes long-polls so they answer at once.
        self.closing = asyncio.Event()
        self.published = 0
        self.publish_failures = 0
        self._started = time.monotonic()
        self._inflight: dict[UUID, asyncio.Future[None]] = {}

    @property
    def store(self) -> Store:
        """The store the engine writes to (and the HTTP API reads)."""
        return self.engine.store

    @property
    def broker(self) -> Broker:
        """The broker the engine consumes from (and REST publishes go to)."""
        return self.engine.broker

    @property
    def uses_broker(self) -> bool:
        """True when the consumer or the HTTP API (which publishes) runs."""
        return self.engine.consume_enabled or self.http_enabled

    @property
    def url(self) -> str:
        """The base URL of the HTTP API as bound (``http://host:port``)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    # -- running ---------------------------------------------------------------------------------

    def _bind(self) -> socket.socket:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        # IPPROTO_TCP explicitly: asyncio disables Nagle's algorithm only on sockets that say
        # they are TCP; with proto 0 every keep-alive response waited ~40 ms for a delayed ACK.
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, self.port))
            sock.listen(2048)
        except OSError as exc:
            sock.close()
            raise ConfigError(
                f"the relay cannot listen on {self.host}:{self.port}: {exc.strerror or exc}"
            ) from None
        sock.setblocking(False)
        self.port = sock.getsockname()[1]
        return sock

    async def run(self, stop: asyncio.Event) -> None:
        """Run every enabled part until ``stop`` is set (or a part fails), then stop them all.

        Stopping wakes long-polls (they answer with the task's current state, read from the
        store), stops the HTTP server once they are answered (uvicorn waits up to 5 s for
        requests in flight), then the engine, which closes the store and the broker.
        """
        sock = self._bind() if self.http_enabled else None
        engine_stop = asyncio.Event()
        engine_job = asyncio.create_task(self.engine.run(engine_stop), name="tacoq-relay-engine")
        jobs: list[asyncio.Future[Any]] = [engine_job]
        server: Any = None
        own_broker = False
        try:
            await _until(self.engine.ready.wait(), engine_job)
            if sock is not None:
                # Imported only when HTTP is on: `tacoq relay --no-http` never loads FastAPI.
                import uvicorn

                from tacoq.relay.access_log import with_access_log
                from tacoq.relay.http import create_app
                from tacoq.relay.protocol import deadline_protocol

                if not self.engine.consume_enabled:
                    await self.broker.connect()
                    own_broker = True
                config = uvicorn.Config(
                    with_access_log(create_app(self)),  # tacoq.relay.access, at debug level
                    http=deadline_protocol(self.header_timeout, self.body_timeout),
                    log_config=None,
                    access_log=False,  # uvicorn's own would show the query string as sent
                    lifespan="off",
                    timeout_graceful_shutdown=5,
                )
                server = _Server(config).server
                jobs.append(asyncio.create_task(server.serve([sock]), name="tacoq-relay-http"))
            self.ready.set()
            stopping = asyncio.ensure_future(stop.wait())
            try:
                await asyncio.wait([stopping, *jobs], return_when=asyncio.FIRST_COMPLETED)
            finally:
                stopping.cancel()
        finally:
            self.closing.set()
            if server is not None:
                server.should_exit = True
            # The HTTP server stops first: woken long-polls answer with the task's current state,
            # which they read from the store, so the engine (which closes it) stops after them.
            results = await asyncio.gather(*jobs[1:], return_exceptions=True)
            engine_stop.set()
            results = [*await asyncio.gather(engine_job, return_exceptions=True), *results]
            if own_broker:
                await self.broker.close()
            if sock is not None:
                sock.close()
        for result in results:
            if isinstance(result, BaseException):
                raise result

    # -- what the HTTP API calls ----------------------------------------------------------------

    async def _online_of(self, worker_kind: str, task_kind: str) -> list[WorkerRecord]:
        """The live workers of ``worker_kind``, from the view read at most a second ago, or
        read again when that view does not know the kind (a worker that just started)."""
        for fresh in (False, True):
            online = await self._store_call(self.workers.online(self.clock(), fresh=fresh))
            mine = [r for r in online if r.worker_kind == worker_kind]
            if any(r.announcement and task_kind in r.announcement.task_kinds for r in mine):
                break
        return mine

    async def _check_against_workers(self, request: PublishIn) -> None:
        """Refuse a REST publish the live workers' announcements rule out (docs/workers.md)."""
        worker_kind, task_kind = request.worker_kind, request.task_kind
        online = await self._online_of(worker_kind, task_kind)
        if not online:
            if self.announced_only:
                raise PublishRefused(
                    f"worker_kind: no live worker announced {quoted(worker_kind)} "
                    "(this relay publishes only to announced kinds: --worker-kinds announced)"
                )
            return  # nobody to ask: the task waits in its queue, unchecked
        view = next((k for k in kinds_of(online) if k.task_kind == task_kind), None)
        if view is None:
            if any(r.announcement is None for r in online):
                return  # a live worker we know nothing of may run it
            known = sorted({t for r in online if r.announcement for t in r.announcement.task_kinds})
            shown = ", ".join(known[:20]) + (", ..." if len(known) > 20 else "")
            raise PublishRefused(
                f"task_kind: {quoted(task_kind)} is not a task kind the live workers of "
                f"{quoted(worker_kind)} announced (they run: {shown or 'nothing'})"
            )
        if not self.check_input:
            return
        problems = check_input(
            view.contracts,
            request.payload(),
            json_value=request.input,
            has_json=request.input_base64 is None,
        )
        if problems:
            raise InputRefused(
                "input does not match the task's contract: "
                + "; ".join(f"input.{p}" if p.loc else f"input: {p}" for p in problems),
                [(("input", *p.loc), p.msg) for p in problems],
            )

    async def publish(self, request: PublishIn) -> tuple[UUID, bool]:
        """Publish a REST task; ``(id, created)``. Idempotent by id, even under concurrency.

        The store's ``insert_if_absent`` decides who publishes: the winner writes the PENDING
        row, publishes the assignment, and on failure deletes the row again (no phantom task)
        and raises :class:`PublishFailed`. A concurrent request for the same id in this relay
        waits for the winner's outcome; any request that finds the task present answers
        ``created=False`` without publishing again.
        """
        if self.announced_only or self.check_input:
            await self._check_against_workers(request)
        kinds = self.worker_kinds
        if kinds is not None and request.worker_kind not in kinds:
            listed = ", ".join(sorted(kinds)[:20]) + (", ..." if len(kinds) > 20 else "")
            kind = request.worker_kind
            raise PublishRefused(
                f"worker_kind: {kind[:80] + '...' if len(kind) > 80 else kind!r} is not one of the "
                f"worker kinds this relay publishes to ({listed}; see --worker-kinds)"
            )
        made = submission(
            request.task_kind,
            request.payload(),
            request.options(),
            serializers=None,
            max_payload_bytes=self.publisher.max_payload_bytes,
            default_ttl=self.publisher.default_ttl,
            now=self.clock(),
        )
        event = made.event
        for _ in range(_PUBLISH_ROUNDS):
            pending = self._inflight.get(event.id)
            if pending is not None:
                await asyncio.shield(pending)
            elif await self._publish_once(event, made.delay):
                return event.id, True
            row = await self._store_call(self.store.get(event.id))
            if row is not None:
                if (row.task_kind, row.worker_kind) != (event.task_kind, event.worker_kind):
                    raise PublishConflict(
                        f"task {event.id} already exists as {row.task_kind!r} for worker kind "
                        f"{row.worker_kind!r}; choose another id"
                    )
                return event.id, False
            # the row vanished: a concurrent winner's publish failed; try to be the winner
        raise PublishFailed(f"task {event.id} could not be published; retry", part="broker")

    async def _publish_once(self, event: TaskEvent, delay: float | None) -> bool:
        """Insert and publish as the winner; False when the id already existed."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._inflight[event.id] = done
        try:
            if not await self._store_call(self.store.insert_if_absent(event)):
                return False
            try:
                await self.publisher.publish_event(event, delay=delay)
            except Exception as exc:
                self.publish_failures += 1
                try:
                    await self.store.delete(event.id)
                except Exception:  # the store failed too; the relay's consumer never sees it
                    log.exception(
                        "could not remove task %s after its publish failed",
                        event.id,
                        extra=task_fields(event.id, event.task_kind),
                    )
                raise PublishFailed(
                    f"the broker did not accept task {event.id} ({type(exc).__name__}: {exc}); "
                    "nothing was published",
                    part="broker",
                ) from exc
            self.published += 1
            return True
        finally:
            del self._inflight[event.id]
            done.set_result(None)

    @staticmethod
    async def _store_call(call: Coroutine[Any, Any, Any]) -> Any:
        try:
            return await call
        except StoreUnavailable as exc:
            raise PublishFailed(f"the store is unavailable: {exc}", part="store") from exc

    async def health(self) -> HealthOut:
        """Each part's health (probed with a timeout) and the counters."""
        store, broker = await asyncio.gather(
            _probe(self.store.health()),
            _probe(self.broker.health()) if self.uses_broker else _nothing(),
        )
        failing = [
            name for name, part in (("store", store), ("broker", broker)) if part and not part.ok
        ]
        return HealthOut(
            status="unavailable" if failing else "ok",
            failing=failing,
            store=store,
            broker=broker,
            consumer=self.engine.consume_enabled,
            cleanup=self.engine.cleanup is not None,
            stats=self.stats(),
        )

    def stats(self) -> dict[str, int | float]:
        """The engine's counters, the cleanup count and the REST publish counters."""
        s = self.engine.stats
        cleanup = self.engine.cleanup
        return {
            "batches": s.batches,
            "deliveries": s.deliveries,
            "events": s.events,
            "dead_lettered": s.dead_lettered,
            "duplicate_completions": s.duplicate_completions,
            "conflicting_completions": s.conflicting_completions,
            "store_errors": s.store_errors,
            "cleaned": cleanup.deleted if cleanup is not None else s.cleaned,
            "unknown_messages": s.unknown_messages,
            "dead_letters_recorded": s.dead_letters_recorded,
            "dead_letter_completions": s.dead_letter_completions,
            **self.engine.control.stats.as_dict(),
            "published": self.published,
            "publish_failures": self.publish_failures,
            "uptime_s": round(time.monotonic() - self._started, 3),
        }


def check_worker_kinds(kinds: Iterable[str]) -> frozenset[str]:
    """The worker kinds, each a valid kind (1-255 characters, no NUL); at least one."""
    found = frozenset(kinds)
    if not found:
        raise ConfigError("worker kinds: give at least one (or none at all for any kind)")
    for kind in sorted(found):
        if not isinstance(kind, str) or not 1 <= len(kind) <= MAX_HEADER_VALUE_LENGTH:
            raise ConfigError(
                f"worker kinds: {str(kind)[:80]!r} is not 1-{MAX_HEADER_VALUE_LENGTH} characters"
            )
        if "\x00" in kind:
            raise ConfigError(f"worker kinds: {kind[:80]!r} holds the NUL character")
    return found


async def _until(awaitable: Coroutine[Any, Any, Any], job: asyncio.Task[Any]) -> None:
    """Wait for ``awaitable``; if ``job`` ends first, raise its error (it failed to start)."""
    waiting = asyncio.ensure_future(awaitable)
    try:
        await asyncio.wait([waiting, job], return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiting.cancel()
    if job.done() and not waiting.done():
        await job  # raises the start-up error
        raise TacoqError("the relay engine stopped before it was ready")


async def _probe(check: Coroutine[Any, Any, Health]) -> PartHealth:
    try:
        health = await asyncio.wait_for(check, HEALTH_TIMEOUT)
    except TimeoutError:
        return PartHealth(ok=False, detail=f"no answer within {HEALTH_TIMEOUT:g}s")
    except Exception as exc:
        return PartHealth(ok=False, detail=f"{type(exc).__name__}: {exc}")
    return PartHealth(ok=health.ok, detail=health.detail)


async def _nothing() -> None:
    return None
