"""The relay's HTTP API (FastAPI): tasks, long-polls, REST publishing, health and docs.

:func:`create_app` builds the app for a :class:`~tacoq.relay.service.RelayService`. Every error
is JSON ``{"error": {"type", "message"}}`` (``docs/http-api.md`` lists the types). The
interactive docs at ``/docs`` load Swagger UI from the relay itself (``/docs/assets/...``,
shipped by the ``fastapi-offline`` package), never from a CDN.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any
from uuid import UUID

from fastapi import Depends, FastAPI, HTTPException, Query, Request, Response
from fastapi import Path as PathParameter
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from fastapi.routing import APIRoute
from fastapi.security import HTTPBearer
from pydantic import AfterValidator
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tacoq.errors import PayloadTooLarge, StoreUnavailable
from tacoq.models import TaskStatus
from tacoq.relay.api_models import (
    NO_NUL_PATTERN,
    ErrorBody,
    HealthOut,
    PublishIn,
    PublishOut,
    TaskId,
    TaskOut,
    TaskPageOut,
    task_to_api,
)
from tacoq.relay.service import PublishConflict, PublishFailed
from tacoq.store import TaskFilter
from tacoq.strict_json import StrictJSONError
from tacoq.strict_json import loads as strict_loads
from tacoq.wire import MAX_HEADER_VALUE_LENGTH

if TYPE_CHECKING:
    from tacoq.relay.service import RelayService

__all__ = ["DOCS_ASSETS", "MAX_LIST_LIMIT", "create_app", "docs_assets_dir"]

#: The largest page ``GET /tasks`` returns.
MAX_LIST_LIMIT = 500
#: The Swagger UI files the relay serves under ``/docs/assets/``.
DOCS_ASSETS = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "favicon.png": "image/png",
}
_DOCS_PATHS = ("/docs", "/openapi.json")
_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "Missing or wrong bearer token."},
    422: {"model": ErrorBody, "description": "A malformed parameter or body."},
}


#: The longest cursor ``GET /tasks`` takes (its own are about 70 characters).
MAX_CURSOR_LENGTH = 128

WaitSeconds = Annotated[
    float | None,
    Query(
        ge=0,
        allow_inf_nan=False,
        description="Long-poll up to this many seconds (capped at the relay's max wait).",
    ),
]
Limit = Annotated[int, Query(ge=1, le=MAX_LIST_LIMIT)]


def _no_nul(value: str | None) -> str | None:
    if value is not None and "\x00" in value:
        raise ValueError("must not contain the NUL character (\\u0000)")
    return value


KindFilter = Annotated[
    str | None,
    Query(
        min_length=1,
        max_length=MAX_HEADER_VALUE_LENGTH,
        json_schema_extra={"pattern": NO_NUL_PATTERN},
    ),
    AfterValidator(_no_nul),
]
Cursor = Annotated[
    str | None,
    Query(
        min_length=1,
        max_length=MAX_CURSOR_LENGTH,
        pattern="^[A-Za-z0-9_-]+$",
        json_schema_extra={"format": "tacoq-cursor"},
        description="The next_cursor of the previous page (opaque).",
    ),
]


class _StrictJSONRequest(Request):
    """A request whose JSON body is parsed strictly (:mod:`tacoq.strict_json`): invalid UTF-8,
    NaN, Infinity, numbers beyond a double and lone surrogate escapes are a ``422`` naming
    what is wrong, instead of FastAPI's ``400`` (or a NaN accepted)."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            try:
                self._json = strict_loads(await self.body(), max_depth=None)
            except StrictJSONError as exc:
                raise HTTPException(422, f"body: {exc}") from None
        return self._json


class _StrictJSONRoute(APIRoute):
    """A route that hands its endpoint a :class:`_StrictJSONRequest`."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def strict(request: Request) -> Response:
            return await handler(_StrictJSONRequest(request.scope, request.receive))

        return strict


def docs_assets_dir() -> Path:
    """Where the Swagger UI files live (the ``fastapi-offline`` package's static folder)."""
    import fastapi_offline

    return Path(fastapi_offline.__file__).parent / "static"


def _error(status: int, kind: str, message: str, **headers: str) -> JSONResponse:
    body = {"error": {"type": kind, "message": message}}
    return JSONResponse(body, status_code=status, headers=headers or None)


_KIND_BY_STATUS = {
    400: "bad_request",
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    422: "validation_error",
    503: "unavailable",
}


class _Guard:
    """ASGI middleware: the bearer token and the request body limit, before anything else."""

    def __init__(self, app: ASGIApp, *, token: str | None, public: set[str], limit: int) -> None:
        self.app = app
        self.token = f"Bearer {token}".encode() if token else None
        self.public = public
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        path: str = scope["path"]
        if self.token is not None and not self._is_public(path):
            given = headers.get(b"authorization", b"")
            if not hmac.compare_digest(given, self.token):
                why = "wrong bearer token" if given else "missing bearer token"
                response = _error(
                    401, "unauthorized", f"{why}: send Authorization: Bearer <token>",
                    **{"WWW-Authenticate": "Bearer"},
                )  # fmt: skip
                await response(scope, receive, send)
                return
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.limit:
            await self._too_large()(scope, receive, send)
            return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.limit:
                raise HTTPException(413, self._too_large_message())
            return message

        await self.app(scope, limited, send)

    def _is_public(self, path: str) -> bool:
        return path in self.public or ("/docs" in self.public and path.startswith("/docs/"))

    def _too_large_message(self) -> str:
        return f"the request body is over the limit of {self.limit:,} bytes"

    def _too_large(self) -> JSONResponse:
        return _error(413, "payload_too_large", self._too_large_message())


def _describe(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ())]
        if loc and loc[0] == "body" and len(loc) > 1:
            loc = loc[1:]
        where = ".".join(loc) or "body"
        message = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        parts.append(f"{where}: {message}")
    return "; ".join(parts) or "invalid request"


def create_app(service: RelayService) -> FastAPI:
    """The FastAPI app of one relay service (token, limits and waits from the service)."""
    from tacoq import __version__

    app = FastAPI(
        title="TacoQ relay",
        version=__version__,
        description="Get, wait for, list and publish TacoQ tasks. See docs/http-api.md.",
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    app.router.route_class = _StrictJSONRoute
    public = {"/health", *(_DOCS_PATHS if service.public_docs else ())}
    app.add_middleware(_Guard, token=service.token, public=public, limit=service.max_body_bytes)
    # Documents the scheme in OpenAPI (Swagger UI's Authorize); _Guard does the checking.
    secured = [Depends(HTTPBearer(auto_error=False, description="The relay's token."))]
    assets = docs_assets_dir()

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return _error(422, "validation_error", _describe(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        kind = _KIND_BY_STATUS.get(exc.status_code, "http_error")
        return _error(exc.status_code, kind, str(exc.detail), **(exc.headers or {}))

    @app.exception_handler(StoreUnavailable)
    async def _store_down(request: Request, exc: StoreUnavailable) -> JSONResponse:
        return _error(503, "unavailable", f"the store is unavailable: {exc}")

    @app.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception) -> JSONResponse:
        return _error(500, "internal_error", f"{type(exc).__name__} (see the relay's log)")

    @app.get("/health", response_model=HealthOut, tags=["relay"])
    async def health() -> JSONResponse:
        """Store and broker status and the relay's counters; 503 names the failing part.

        Never needs the token."""
        report = await service.health()
        return JSONResponse(report.model_dump(), status_code=200 if not report.failing else 503)

    @app.get(
        "/tasks/{task_id}",
        response_model=TaskOut,
        tags=["tasks"],
        dependencies=secured,
        responses={404: {"model": ErrorBody, "description": "Unknown task."}, **_ERRORS},
    )
    async def get_task(
        task_id: Annotated[TaskId, PathParameter(description="The task's id (a canonical UUID).")],
        wait: WaitSeconds = None,
    ) -> TaskOut:
        """One task. With ``wait``, answers when the task completes or the wait ends."""
        store = service.store
        if wait is None or wait <= 0:
            row = await store.get(task_id)
        else:
            row = await _wait(service, task_id, min(wait, service.max_wait))
        if row is None:
            raise HTTPException(404, f"task {task_id} is not known to this relay's store")
        return task_to_api(row)

    @app.get(
        "/tasks",
        response_model=TaskPageOut,
        tags=["tasks"],
        dependencies=secured,
        responses=_ERRORS,
    )
    async def list_tasks(
        status: TaskStatus | None = None,
        task_kind: KindFilter = None,
        worker_kind: KindFilter = None,
        limit: Limit = 50,
        cursor: Cursor = None,
    ) -> TaskPageOut:
        """Tasks, newest first, filtered; pass ``next_cursor`` back as ``cursor``."""
        filters = TaskFilter(status=status, task_kind=task_kind, worker_kind=worker_kind)
        try:
            page = await service.store.list(filters, cursor=cursor, limit=limit)
        except ValueError as exc:
            raise HTTPException(422, f"cursor: {exc}") from None
        return TaskPageOut(tasks=[task_to_api(t) for t in page.tasks], next_cursor=page.next_cursor)

    @app.post(
        "/tasks",
        response_model=PublishOut,
        status_code=201,
        tags=["tasks"],
        dependencies=secured,
        responses={
            200: {"model": PublishOut, "description": "The id existed: nothing published again."},
            409: {"model": ErrorBody, "description": "The id belongs to a different task."},
            413: {"model": ErrorBody, "description": "Body or input over the limit."},
            503: {"model": ErrorBody, "description": "Broker or store unavailable; no row left."},
            **_ERRORS,
        },
    )
    async def publish(body: PublishIn, response: Response) -> PublishOut:
        """Publish a task (201), idempotent by ``id`` (200 when it already existed)."""
        try:
            task_id, created = await service.publish(body)
        except PayloadTooLarge as exc:
            raise HTTPException(413, str(exc)) from None
        except PublishConflict as exc:
            raise HTTPException(409, str(exc)) from None
        except PublishFailed as exc:
            raise HTTPException(503, str(exc)) from None
        response.status_code = 201 if created else 200
        return PublishOut(id=task_id, created=created)

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="TacoQ relay - API docs",
            swagger_js_url="/docs/assets/swagger-ui-bundle.js",
            swagger_css_url="/docs/assets/swagger-ui.css",
            swagger_favicon_url="/docs/assets/favicon.png",
            swagger_ui_parameters={"validatorUrl": None},
        )

    @app.get("/docs/assets/{name}", include_in_schema=False)
    async def docs_asset(name: str) -> FileResponse:
        media_type = DOCS_ASSETS.get(name)
        if media_type is None:
            raise HTTPException(404, f"no docs asset named {name!r}")
        return FileResponse(assets / name, media_type=media_type)

    return app


async def _wait(service: RelayService, task_id: UUID, timeout: float) -> Any:
    """``store.wait``, cut short when the relay begins to stop (then: the current row)."""
    import asyncio

    waiting = asyncio.ensure_future(service.store.wait(task_id, timeout))
    closing = asyncio.ensure_future(service.closing.wait())
    try:
        await asyncio.wait([waiting, closing], return_when=asyncio.FIRST_COMPLETED)
    finally:
        closing.cancel()
    if waiting.done():
        return waiting.result()
    waiting.cancel()
    return await service.store.get(task_id)
