"""Talking to the relay's HTTP API: ``RelayClient`` (async) and ``SyncRelayClient`` (blocking).

Both return :class:`~tacoq.model.task.Task` objects, so ``task.result(Model)`` decodes a typed
output and raises :class:`~tacoq.errors.TaskFailed` for a failed task. ``wait`` long-polls the
relay (which answers the moment the store sees the completion); it never polls on a timer.
Connection errors are retried with backoff, then raise
:class:`~tacoq.errors.RelayUnavailable` naming the relay (without credentials). Publishing is
safe to retry: the client chooses the task id, and the relay is idempotent by id.

The two classes share everything but the I/O: each request is described by a :class:`_Call`
and each answer is read by the same functions.
"""

from __future__ import annotations

import asyncio
import base64
import builtins
import os
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self, Unpack
from urllib.parse import quote
from uuid import UUID

import httpx

from tacoq.config import redact_url, resolve_relay_url
from tacoq.contracts.store import TaskPage
from tacoq.errors import ConfigError, RelayError, RelayUnavailable
from tacoq.model.options import PublishOptions, TaskOptions, options_json
from tacoq.model.task import Task, TaskStatus
from tacoq.model.wire import kind_problem, quoted
from tacoq.publishing.kernel import TypedTask, serialize_input
from tacoq.relay.dead_letter_models import DeadLetterOut, DeadLetterPageOut, RequeueOut
from tacoq.relay.worker_models import KindOut, KindsOut, WorkerOut, WorkersOut

__all__ = ["ENV_RELAY_TOKEN", "RelayClient", "SyncRelayClient"]

#: The bearer token clients send when none is given (the relay's ``--token``).
ENV_RELAY_TOKEN = "TACOQ_RELAY_TOKEN"
#: The longest single long-poll the client asks for; longer waits loop.
LONG_POLL_CHUNK = 55.0


@dataclass(frozen=True, slots=True)
class _Call:
    """One HTTP request to the relay, independent of sync or async I/O."""

    method: str
    path: str
    params: dict[str, Any] | None = None
    body: dict[str, Any] | None = None
    #: Extra seconds the server may hold the request (a long-poll's wait).
    held: float = 0.0


class _Base:
    """Settings, request building and answer reading shared by both clients."""

    def __init__(
        self,
        base_url: str | None,
        *,
        token: str | None,
        timeout: float,
        retries: int,
        backoff: float,
        max_backoff: float,
    ) -> None:
        self.base_url = resolve_relay_url(base_url).rstrip("/")
        if not self.base_url.startswith(("http://", "https://")):
            raise ConfigError(f"the relay URL must start with http:// or https://: "
                              f"{redact_url(self.base_url)!r}")  # fmt: skip
        self.token = token or os.environ.get(ENV_RELAY_TOKEN, "").strip() or None
        self.timeout = timeout
        self.retries = max(retries, 0)
        self.backoff = backoff
        self.max_backoff = max_backoff

    @property
    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def _timeout(self, call: _Call) -> httpx.Timeout:
        return httpx.Timeout(self.timeout, read=self.timeout + call.held)

    def _delays(self) -> list[float]:
        return [min(self.backoff * 2**n, self.max_backoff) for n in range(self.retries)]

    def _unreachable(self, exc: Exception) -> RelayUnavailable:
        return RelayUnavailable(
            f"cannot reach the relay at {redact_url(self.base_url)} after "
            f"{self.retries + 1} attempts ({type(exc).__name__}: {exc or 'no detail'})"
        )

    def _check(self, response: httpx.Response, *, allow_404: bool = False) -> Any:
        """The JSON body of a success (or ``None`` for an allowed 404); else a RelayError."""
        if response.status_code == 404 and allow_404:
            return None
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.is_success and body is not None:
            return body
        error = body.get("error") if isinstance(body, dict) else None
        if isinstance(error, dict):
            kind, message = str(error.get("type", "")), str(error.get("message", ""))
        else:
            kind, message = "", response.text[:200] or response.reason_phrase
        raise RelayError(
            f"the relay at {redact_url(self.base_url)} answered {response.status_code}: {message}",
            status=response.status_code,
            error_type=kind,
        )

    @staticmethod
    def _task(body: Any) -> Task | None:
        from tacoq.relay.api_models import TaskOut, task_from_api

        return None if body is None else task_from_api(TaskOut.model_validate(body))

    @staticmethod
    def _page(body: Any) -> TaskPage:
        from tacoq.relay.api_models import TaskPageOut, task_from_api

        page = TaskPageOut.model_validate(body)
        return TaskPage([task_from_api(t) for t in page.tasks], page.next_cursor)

    @staticmethod
    def _get_call(task_id: UUID | str, wait: float | None = None) -> _Call:
        params = None if wait is None else {"wait": round(wait, 3)}
        return _Call("GET", f"/tasks/{task_id}", params, held=wait or 0.0)

    @staticmethod
    def _list_call(
        status: TaskStatus | str | None,
        task_kind: str | None,
        worker_kind: str | None,
        limit: int,
        cursor: str | None,
    ) -> _Call:
        params: dict[str, Any] = {"limit": limit}
        for name, value in (
            ("status", status),
            ("task_kind", task_kind),
            ("worker_kind", worker_kind),
            ("cursor", cursor),
        ):
            if value is not None:
                params[name] = str(value)
        return _Call("GET", "/tasks", params)

    @staticmethod
    def _publish_call(
        task: TypedTask | str,
        input: Any,
        options: TaskOptions | None,
        overrides: Mapping[str, Any],
        content_type: str | None,
    ) -> _Call:
        # The relay's kernel validates the options (a bad one is its 422 naming the field).
        body = {} if options is None else options.as_json()
        body.update(options_json(overrides))
        body.setdefault("id", str(uuid.uuid4()))  # chosen here, so a retried request is safe
        if isinstance(task, str):
            if not body.get("worker_kind"):
                raise ConfigError(f"publishing task {task!r} by name needs worker_kind=...")
            body["task_kind"] = task
            if isinstance(input, bytes | bytearray | memoryview) or (
                content_type is not None and isinstance(input, str)
            ):
                data = input.encode() if isinstance(input, str) else bytes(input)
                body["input_base64"] = base64.b64encode(data).decode("ascii")
                body["content_type"] = content_type or "application/octet-stream"
            elif content_type is not None:
                raise ConfigError("content_type applies to a bytes or str input only")
            else:
                from pydantic_core import to_jsonable_python

                body["input"] = to_jsonable_python(input)
        else:  # typed: serialized with the handler's own codec, as a typed publish does
            task_kind, worker_kind, payload = serialize_input(task, input, None)
            body.update(task_kind=task_kind)
            body.setdefault("worker_kind", worker_kind)
            body["input_base64"] = base64.b64encode(payload.data).decode("ascii")
            body["content_type"] = payload.content_type
        return _Call("POST", "/tasks", body=body)

    @staticmethod
    def _dead_letters_call(
        origin: str | None,
        reason: str | None,
        task_id: UUID | str | None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> _Call:
        params: dict[str, Any] = {} if limit is None else {"limit": limit}
        for name, value in (
            ("origin", origin),
            ("reason", reason),
            ("task_id", task_id),
            ("cursor", cursor),
        ):
            if value is not None:
                params[name] = str(value)
        return _Call("GET", "/dead-letters", params)

    @staticmethod
    def _purge_call(
        origin: str | None, reason: str | None, task_id: UUID | str | None, everything: bool
    ) -> _Call:
        body: dict[str, Any] = {"all": True} if everything else {}
        for name, value in (("origin", origin), ("reason", reason), ("task_id", task_id)):
            if value is not None:
                body[name] = str(value)
        return _Call("POST", "/dead-letters/purge", body=body)

    @staticmethod
    def _requeue_call(ids: Sequence[UUID | str]) -> _Call:
        return _Call("POST", "/dead-letters/requeue", body={"ids": [str(i) for i in ids]})

    # -- workers online (docs/http-api.md, "Workers and task kinds") ----------------------------

    @staticmethod
    def _kind_arg(name: str, value: str) -> str:
        """``value`` of a kind argument; a ConfigError naming ``name`` when no kind can be it."""
        problem = kind_problem(value)
        if problem is not None:
            raise ConfigError(f"{name} {problem}: {quoted(value)}")
        return value

    @classmethod
    def _workers_call(cls, worker_kind: str | None, everyone: bool) -> _Call:
        params: dict[str, Any] = {"all": "true"} if everyone else {}
        if worker_kind is not None:
            params["worker_kind"] = cls._kind_arg("worker_kind", worker_kind)
        return _Call("GET", "/workers", params)

    @classmethod
    def _kinds_call(cls, worker_kind: str | None) -> _Call:
        if worker_kind is None:
            return _Call("GET", "/kinds")
        return _Call("GET", "/kinds", {"worker_kind": cls._kind_arg("worker_kind", worker_kind)})

    @classmethod
    def _kind_call(cls, worker_kind: str, task_kind: str) -> _Call:
        """``GET /kinds/{worker_kind}/{task_kind}``; for a kind holding ``/``, which no path
        segment can carry (the server decodes ``%2F`` before routing), ``GET /kinds`` of the
        worker kind (:meth:`_kind_answer` picks the task kind)."""
        cls._kind_arg("worker_kind", worker_kind)
        cls._kind_arg("task_kind", task_kind)
        if "/" in worker_kind or "/" in task_kind:
            return cls._kinds_call(worker_kind)
        return _Call("GET", f"/kinds/{_segment(worker_kind)}/{_segment(task_kind)}")

    def _check_workers(self, response: httpx.Response, *, allow_404: bool = False) -> Any:
        """:meth:`_check` for a worker route: a ``501`` (a store that keeps no workers) is a
        RelayError that says so."""
        try:
            return self._check(response, allow_404=allow_404)
        except RelayError as exc:
            if exc.status != 501:
                raise
            raise RelayError(
                f"the relay at {redact_url(self.base_url)} knows no workers: its store does not "
                f"keep them (it answered 501: {_relay_message(response)})",
                status=501,
                error_type=exc.error_type,
            ) from None

    def _workers_answer(self, response: httpx.Response) -> builtins.list[WorkerOut]:
        return WorkersOut.model_validate(self._check_workers(response)).workers

    def _kinds_answer(self, response: httpx.Response) -> builtins.list[KindOut]:
        return KindsOut.model_validate(self._check_workers(response)).kinds

    def _kind_answer(self, call: _Call, task_kind: str, response: httpx.Response) -> KindOut | None:
        body = self._check_workers(response, allow_404=True)
        if body is None:
            return None
        if call.path != "/kinds":
            return KindOut.model_validate(body)
        found = [k for k in KindsOut.model_validate(body).kinds if k.task_kind == task_kind]
        return found[0] if found else None

    def _deleted(self, response: httpx.Response) -> bool:
        return self._check(response, allow_404=True) is not None

    def _not_known(self, task_id: UUID | str) -> RelayError:
        return RelayError(
            f"task {task_id} is not known to the relay at {redact_url(self.base_url)}",
            status=404,
            error_type="not_found",
        )


def _segment(text: str) -> str:
    """``text`` as one URL path segment: every reserved character percent-encoded, and ``.``
    or ``..`` too (a client would otherwise resolve them as relative paths)."""
    if text in (".", ".."):
        return "%2E" * len(text)
    return quote(text, safe="")


def _relay_message(response: httpx.Response) -> str:
    """The message of a relay's error answer (its text when it is not the relay's JSON)."""
    try:
        error = response.json().get("error")
        return str(error["message"])
    except (ValueError, AttributeError, KeyError, TypeError):
        return response.text[:200] or response.reason_phrase


class RelayClient(_Base):
    """Async client of the relay's HTTP API; use as ``async with RelayClient(URL) as relay``.

    ``base_url`` defaults to ``TACOQ_RELAY_URL`` (else ``http://127.0.0.1:8080``), ``token`` to
    ``TACOQ_RELAY_TOKEN``. ``timeout`` bounds each request (plus the wait of a long-poll);
    connection errors are retried ``retries`` times, ``backoff`` doubling to ``max_backoff``.
    """

    def __init__(
        self,
        base_url: str | None = None,
        *,
        token: str | None = None,
        timeout: float = 10.0,
        retries: int = 4,
        backoff: float = 0.1,
        max_backoff: float = 2.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(
            base_url,
            token=token,
            timeout=timeout,
            retries=retries,
            backoff=backoff,
            max_backoff=max_backoff,
        )
        self._http = httpx.AsyncClient(base_url=self.base_url, transport=transport)

    async def _send(self, call: _Call) -> httpx.Response:
        delays = self._delays()
        while True:
            try:
                return await self._http.request(
                    call.method,
                    call.path,
                    params=call.params,
                    json=call.body,
                    headers=self._headers,
                    timeout=self._timeout(call),
                )
            except httpx.TransportError as exc:
                if not delays:
                    raise self._unreachable(exc) from None
                await asyncio.sleep(delays.pop(0))

    async def get(self, task_id: UUID | str) -> Task | None:
        """The task as the relay knows it, or ``None`` when it is unknown."""
        return self._task(self._check(await self._send(self._get_call(task_id)), allow_404=True))

    async def wait(self, task_id: UUID | str, timeout: float = 30.0) -> Task:
        """Wait until the task completes or ``timeout`` seconds pass; return its state then.

        A task not completed by then is returned as it is (``task.result()`` would raise);
        a task the relay never saw raises :class:`~tacoq.errors.RelayError` (404).
        """
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            call = self._get_call(task_id, min(remaining, LONG_POLL_CHUNK))
            task = self._task(self._check(await self._send(call), allow_404=True))
            if task is not None and task.is_completed:
                return task
        task = await self.get(task_id)
        if task is None:
            raise self._not_known(task_id)
        return task

    async def publish(
        self,
        task: TypedTask | str,
        input: Any = None,
        *,
        content_type: str | None = None,
        options: TaskOptions | None = None,
        **overrides: Unpack[PublishOptions],
    ) -> UUID:
        """Publish a task through the relay; returns its id (idempotent by ``id``).

        ``task`` is a kind name (then ``worker_kind`` is required; ``input`` is sent as JSON,
        or as bytes with ``content_type`` when it is bytes) or a
        :class:`~tacoq.worker.TaskDef` (the input is serialized by the handler's codec). The
        task options are those of :meth:`tacoq.Publisher.publish` (keywords, an ``options``
        object, or both); the relay validates them and answers 422 naming a bad one.
        """
        call = self._publish_call(task, input, options, overrides, content_type)
        return UUID(self._check(await self._send(call))["id"])

    async def list(
        self,
        *,
        status: TaskStatus | str | None = None,
        task_kind: str | None = None,
        worker_kind: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> TaskPage:
        """One page of tasks, newest first; pass ``page.next_cursor`` as ``cursor`` for more."""
        call = self._list_call(status, task_kind, worker_kind, limit, cursor)
        return self._page(self._check(await self._send(call)))

    async def health(self) -> dict[str, Any]:
        """The relay's health report, ``GET /health`` (sent with the token, which it needs when
        the relay has one), also when the relay is unhealthy: see ``["status"]``."""
        response = await self._send(_Call("GET", "/health"))
        if response.status_code == 503:
            return dict(response.json())
        return dict(self._check(response))

    # -- dead letters (docs/http-api.md, "Dead letters") ----------------------------------------

    async def dead_letters(
        self,
        *,
        origin: str | None = None,
        reason: str | None = None,
        task_id: UUID | str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> DeadLetterPageOut:
        """One page of the relay's dead letters, newest first (bodies left out)."""
        call = self._dead_letters_call(origin, reason, task_id, limit, cursor)
        return DeadLetterPageOut.model_validate(self._check(await self._send(call)))

    async def dead_letter(self, letter_id: UUID | str) -> DeadLetterOut | None:
        """One dead letter with its body, or ``None`` when the store has no such id."""
        body = self._check(
            await self._send(_Call("GET", f"/dead-letters/{letter_id}")), allow_404=True
        )
        return None if body is None else DeadLetterOut.model_validate(body)

    async def requeue_dead_letters(self, ids: Sequence[UUID | str]) -> RequeueOut:
        """Requeue up to 500 dead letters into the queues they came from, each once."""
        return RequeueOut.model_validate(self._check(await self._send(self._requeue_call(ids))))

    async def delete_dead_letter(self, letter_id: UUID | str) -> bool:
        """Delete one dead letter; False when there was none of that id."""
        return self._deleted(await self._send(_Call("DELETE", f"/dead-letters/{letter_id}")))

    async def purge_dead_letters(
        self,
        *,
        origin: str | None = None,
        reason: str | None = None,
        task_id: UUID | str | None = None,
        everything: bool = False,
    ) -> int:
        """Delete the dead letters matching the filters (``everything=True``: all of them)."""
        call = self._purge_call(origin, reason, task_id, everything)
        return int(self._check(await self._send(call))["deleted"])

    # -- workers online (docs/http-api.md, "Workers and task kinds") ----------------------------

    async def workers(
        self, worker_kind: str | None = None, *, all: bool = False
    ) -> builtins.list[WorkerOut]:
        """The workers online (of ``worker_kind``), by worker kind then name; ``all=True`` adds
        those gone that the relay has not forgotten yet. A relay whose store keeps no workers
        raises :class:`~tacoq.errors.RelayError` (``status`` 501)."""
        return self._workers_answer(await self._send(self._workers_call(worker_kind, all)))

    async def kinds(self, worker_kind: str | None = None) -> builtins.list[KindOut]:
        """Every task kind the live workers (of ``worker_kind``) announced, with its contracts
        (several while the workers of a kind disagree: ``conflict``)."""
        return self._kinds_answer(await self._send(self._kinds_call(worker_kind)))

    async def kind(self, worker_kind: str, task_kind: str) -> KindOut | None:
        """One task kind's contracts, or ``None`` when no live worker of ``worker_kind``
        announced ``task_kind``."""
        call = self._kind_call(worker_kind, task_kind)
        return self._kind_answer(call, task_kind, await self._send(call))

    async def close(self) -> None:
        """Close the connections."""
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


class SyncRelayClient(_Base):
    """The blocking twin of :class:`RelayClient` (over ``httpx.Client``), for code without an
    event loop; same arguments and methods. Use as ``with SyncRelayClient(URL) as relay``."""

    def __init__(
        self,
        base_url: str | None = None,
        *,
        token: str | None = None,
        timeout: float = 10.0,
        retries: int = 4,
        backoff: float = 0.1,
        max_backoff: float = 2.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(
            base_url,
            token=token,
            timeout=timeout,
            retries=retries,
            backoff=backoff,
            max_backoff=max_backoff,
        )
        self._http = httpx.Client(base_url=self.base_url, transport=transport)

    def _send(self, call: _Call) -> httpx.Response:
        delays = self._delays()
        while True:
            try:
                return self._http.request(
                    call.method,
                    call.path,
                    params=call.params,
                    json=call.body,
                    headers=self._headers,
                    timeout=self._timeout(call),
                )
            except httpx.TransportError as exc:
                if not delays:
                    raise self._unreachable(exc) from None
                time.sleep(delays.pop(0))

    def get(self, task_id: UUID | str) -> Task | None:
        """The task as the relay knows it, or ``None`` when it is unknown."""
        return self._task(self._check(self._send(self._get_call(task_id)), allow_404=True))

    def wait(self, task_id: UUID | str, timeout: float = 30.0) -> Task:
        """Wait until the task completes or ``timeout`` passes (see :meth:`RelayClient.wait`)."""
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            call = self._get_call(task_id, min(remaining, LONG_POLL_CHUNK))
            task = self._task(self._check(self._send(call), allow_404=True))
            if task is not None and task.is_completed:
                return task
        task = self.get(task_id)
        if task is None:
            raise self._not_known(task_id)
        return task

    def publish(
        self,
        task: TypedTask | str,
        input: Any = None,
        *,
        content_type: str | None = None,
        options: TaskOptions | None = None,
        **overrides: Unpack[PublishOptions],
    ) -> UUID:
        """Publish a task through the relay; returns its id (see :meth:`RelayClient.publish`)."""
        call = self._publish_call(task, input, options, overrides, content_type)
        return UUID(self._check(self._send(call))["id"])

    def list(
        self,
        *,
        status: TaskStatus | str | None = None,
        task_kind: str | None = None,
        worker_kind: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> TaskPage:
        """One page of tasks, newest first (see :meth:`RelayClient.list`)."""
        call = self._list_call(status, task_kind, worker_kind, limit, cursor)
        return self._page(self._check(self._send(call)))

    def health(self) -> dict[str, Any]:
        """The relay's health report (see :meth:`RelayClient.health`)."""
        response = self._send(_Call("GET", "/health"))
        if response.status_code == 503:
            return dict(response.json())
        return dict(self._check(response))

    # -- dead letters (docs/http-api.md, "Dead letters") ----------------------------------------

    def dead_letters(
        self,
        *,
        origin: str | None = None,
        reason: str | None = None,
        task_id: UUID | str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> DeadLetterPageOut:
        """One page of the relay's dead letters, newest first (bodies left out)."""
        call = self._dead_letters_call(origin, reason, task_id, limit, cursor)
        return DeadLetterPageOut.model_validate(self._check(self._send(call)))

    def dead_letter(self, letter_id: UUID | str) -> DeadLetterOut | None:
        """One dead letter with its body, or ``None`` when the store has no such id."""
        body = self._check(self._send(_Call("GET", f"/dead-letters/{letter_id}")), allow_404=True)
        return None if body is None else DeadLetterOut.model_validate(body)

    def requeue_dead_letters(self, ids: Sequence[UUID | str]) -> RequeueOut:
        """Requeue up to 500 dead letters into the queues they came from, each once."""
        return RequeueOut.model_validate(self._check(self._send(self._requeue_call(ids))))

    def delete_dead_letter(self, letter_id: UUID | str) -> bool:
        """Delete one dead letter; False when there was none of that id."""
        return self._deleted(self._send(_Call("DELETE", f"/dead-letters/{letter_id}")))

    def purge_dead_letters(
        self,
        *,
        origin: str | None = None,
        reason: str | None = None,
        task_id: UUID | str | None = None,
        everything: bool = False,
    ) -> int:
        """Delete the dead letters matching the filters (``everything=True``: all of them)."""
        call = self._purge_call(origin, reason, task_id, everything)
        return int(self._check(self._send(call))["deleted"])

    # -- workers online (docs/http-api.md, "Workers and task kinds") ----------------------------

    def workers(
        self, worker_kind: str | None = None, *, all: bool = False
    ) -> builtins.list[WorkerOut]:
        """The workers online (see :meth:`RelayClient.workers`)."""
        return self._workers_answer(self._send(self._workers_call(worker_kind, all)))

    def kinds(self, worker_kind: str | None = None) -> builtins.list[KindOut]:
        """Every task kind the live workers announced (see :meth:`RelayClient.kinds`)."""
        return self._kinds_answer(self._send(self._kinds_call(worker_kind)))

    def kind(self, worker_kind: str, task_kind: str) -> KindOut | None:
        """One task kind's contracts, or ``None`` (see :meth:`RelayClient.kind`)."""
        call = self._kind_call(worker_kind, task_kind)
        return self._kind_answer(call, task_kind, self._send(call))

    def close(self) -> None:
        """Close the connections."""
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
