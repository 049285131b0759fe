"""The relay's HTTP API (FastAPI): tasks, long-polls, REST publishing, health and docs.

:func:`create_app` builds the app for a :class:`~tacoq.relay.service.RelayService`. Every error
is JSON ``{"error": {"type", "message"}}`` (``docs/http-api.md`` lists the types), and every
status an operation can answer is declared in the OpenAPI document, whose bearer security
appears only when the relay has a token. The interactive docs at ``/docs`` load Swagger UI from
the relay itself (``/docs/assets/...``, shipped by the ``fastapi-offline`` package), never from
a CDN.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any
from uuid import UUID

from fastapi import Depends, FastAPI, HTTPException, Query, Request, Response
from fastapi import Path as PathParameter
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from fastapi.security import HTTPBearer
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from tacoq.contracts.store import TaskFilter
from tacoq.errors import (
    ConfigError,
    InputRefused,
    PayloadTooLarge,
    PublishConflict,
    PublishFailed,
    PublishRefused,
    SerializationError,
    StoreUnavailable,
)
from tacoq.model.task import Task, TaskStatus
from tacoq.relay.api_models import (
    ErrorBody,
    HealthOut,
    PublishIn,
    PublishOut,
    StatusOut,
    TaskId,
    TaskOut,
    TaskPageOut,
    task_to_api,
)
from tacoq.relay.dead_letter_routes import add_dead_letter_routes
from tacoq.relay.guard import Guard
from tacoq.relay.params import Cursor, KindFilter
from tacoq.relay.responses import error_response, invalid_input_response
from tacoq.relay.strict_route import StrictJSONRoute
from tacoq.relay.worker_routes import add_worker_routes

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
#: Paths that never need the token.
_PROBES = ("/health/live", "/health/ready")


def _answer(description: str) -> dict[str, Any]:
    return {"model": ErrorBody, "description": description}


#: What any request can be answered, before it reaches a route (the HTTP protocol, the guard).
_ANY_ROUTE: dict[int | str, dict[str, Any]] = {
    400: _answer("The request is not valid HTTP (request line or headers)."),
    408: _answer("The request line, headers or body did not arrive in time."),
    413: _answer("The request body is over the limit."),
}
_UNAUTHORIZED: dict[int | str, dict[str, Any]] = {
    401: _answer("Missing or wrong bearer token."),
}
_INVALID: dict[int | str, dict[str, Any]] = {
    422: _answer("A malformed parameter or body; the message names each failing field."),
}
_STORE_DOWN: dict[int | str, dict[str, Any]] = {
    503: _answer("The store cannot be reached."),
}

WaitSeconds = Annotated[
    float | None,
    Query(
        ge=0,
        allow_inf_nan=False,
        description="Long-poll up to this many seconds (capped at the relay's max wait).",
    ),
]
Limit = Annotated[int, Query(ge=1, le=MAX_LIST_LIMIT)]


def docs_assets_dir() -> Path:
    """Where the Swagger UI files live (the ``fastapi-offline`` package's static folder)."""
    import fastapi_offline

    return Path(fastapi_offline.__file__).parent / "static"


def _describe(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ())]
        if loc and loc[0] in ("body", "query", "path") and len(loc) > 1:
            loc = loc[1:]
        where = ".".join(part if len(part) <= 60 else part[:60] + "..." for part in loc)
        message = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        parts.append(f"{where or 'body'}: {message}")
    return "; ".join(parts) or "invalid request"


def _allowed_methods(app: FastAPI, request: Request) -> str:
    """Every method the documented routes serve at the request's path (for ``Allow`` on a
    ``405``). A route of exactly that path hides those with a parameter that would also take
    it (``/dead-letters/purge`` is not a ``/dead-letters/{letter_id}``)."""
    exact: set[str] = set()
    templated: set[str] = set()
    for route in app.router.routes:
        if not getattr(route, "include_in_schema", False):
            continue
        match, _ = route.matches(request.scope)
        if match is not Match.NONE:
            methods = getattr(route, "methods", None) or set()
            (templated if getattr(route, "param_convertors", None) else exact).update(methods)
    return ", ".join(sorted(exact or templated))


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
        responses=_ANY_ROUTE,
    )
    app.router.route_class = StrictJSONRoute
    public = {*_PROBES, *(_DOCS_PATHS if service.public_docs else ())}
    app.add_middleware(Guard, token=service.token, public=public, limit=service.max_body_bytes)
    if service.token:
        # Declares the scheme in OpenAPI (Swagger UI's Authorize); Guard does the checking.
        secured = [Depends(HTTPBearer(auto_error=False, description="The relay's token."))]
        unauthorized = _UNAUTHORIZED
    else:
        secured, unauthorized = [], {}
    assets = docs_assets_dir()

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(422, _describe(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        headers = dict(exc.headers or {})
        if exc.status_code == 405:  # Starlette names the methods of one route, not of the path
            headers["Allow"] = _allowed_methods(app, request)
        return error_response(exc.status_code, str(exc.detail), **headers)

    @app.exception_handler(StoreUnavailable)
    async def _store_down(request: Request, exc: StoreUnavailable) -> JSONResponse:
        return error_response(503, f"the store is unavailable: {exc}")

    @app.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception) -> JSONResponse:
        return error_response(500, f"{type(exc).__name__} (see the relay's log)")

    @app.get("/health/live", response_model=StatusOut, tags=["health"])
    async def live() -> StatusOut:
        """The relay's process serves HTTP. Never needs the token; says nothing more."""
        return StatusOut(status="ok")

    @app.get(
        "/health/ready",
        response_model=StatusOut,
        tags=["health"],
        responses={503: _answer("The store or the broker cannot be reached.")},
    )
    async def ready() -> Any:
        """The relay's store and broker answer (``503`` otherwise). Never needs the token;
        says nothing more (``GET /health`` has the detail)."""
        if (await service.health()).failing:
            return error_response(
                503, "the relay is not ready: a part it needs does not answer (see GET /health)"
            )
        return StatusOut(status="ok")

    @app.get(
        "/health",
        response_model=HealthOut,
        tags=["health"],
        dependencies=secured,
        responses=unauthorized,
    )
    async def health() -> HealthOut:
        """Each part's health (store, broker) and the relay's counters, whatever their state
        (``status`` and ``failing`` say it). Needs the token when the relay has one."""
        return await service.health()

    @app.get(
        "/tasks/{task_id}",
        response_model=TaskOut,
        tags=["tasks"],
        dependencies=secured,
        responses={
            404: _answer("Unknown task."),
            **unauthorized,
            **_INVALID,
            **_STORE_DOWN,
        },
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
        responses={**unauthorized, **_INVALID, **_STORE_DOWN},
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
            409: _answer("The id belongs to a different task."),
            413: _answer("The body or the input is over its limit."),
            503: _answer("The broker or the store cannot be reached; no row is left behind."),
            **unauthorized,
            **_INVALID,
        },
    )
    async def publish(body: PublishIn, response: Response) -> Any:
        """Publish a task (201), idempotent by ``id`` (200 when it already existed)."""
        try:
            task_id, created = await service.publish(body)
        except InputRefused as exc:
            errors = [{"loc": list(loc), "msg": msg} for loc, msg in exc.problems]
            return invalid_input_response(str(exc), errors)
        except PayloadTooLarge as exc:
            raise HTTPException(413, str(exc)) from None
        except (PublishRefused, ConfigError, SerializationError) as exc:
            raise HTTPException(422, str(exc)) from None
        except PublishConflict as exc:
            raise HTTPException(409, str(exc)) from None
        except PublishFailed as exc:
            raise HTTPException(503, str(exc)) from None
        response.status_code = 201 if created else 200
        return PublishOut(id=task_id, created=created)

    add_dead_letter_routes(
        app,
        service,
        responses={**unauthorized, **_INVALID, **_STORE_DOWN},
        dependencies=secured,
    )
    add_worker_routes(
        app,
        service,
        responses={**unauthorized, **_INVALID, **_STORE_DOWN},
        dependencies=secured,
    )

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
            raise HTTPException(404, f"no docs asset named {name[:80]!r}")
        return FileResponse(assets / name, media_type=media_type)

    _describe_worker_kinds(app, service)
    return app


def _describe_worker_kinds(app: FastAPI, service: RelayService) -> None:
    """With ``worker_kinds``, the OpenAPI document lists them as ``worker_kind``'s values."""
    kinds = service.worker_kinds
    if kinds is None:
        return
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            publish_in = schema["components"]["schemas"]["PublishIn"]
            publish_in["properties"]["worker_kind"]["enum"] = sorted(kinds)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


async def _wait(service: RelayService, task_id: UUID, timeout: float) -> Task | None:
    """``store.wait``, cut short when the relay begins to stop (then: the current row)."""
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
