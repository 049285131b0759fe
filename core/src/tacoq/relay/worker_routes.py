"""The relay's worker routes: ``GET /workers``, ``GET /kinds`` and
``GET /kinds/{worker_kind}/{task_kind}`` (docs/http-api.md, "Workers and task kinds";
docs/workers.md). They read the store, which every relay of the namespace shares.
"""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

from fastapi import APIRouter, FastAPI, HTTPException
from fastapi import Path as PathParameter

from tacoq.errors import ConfigError
from tacoq.model.wire import MAX_HEADER_VALUE_LENGTH, quoted
from tacoq.relay.api_models import ErrorBody
from tacoq.relay.params import KindFilter, no_nul
from tacoq.relay.strict_route import StrictJSONRoute
from tacoq.relay.worker_models import KindOut, KindsOut, WorkersOut, kind_out, worker_out
from tacoq.relay.workers_online import kinds_of

if TYPE_CHECKING:
    from tacoq.relay.service import RelayService

__all__ = ["add_worker_routes"]

T = TypeVar("T")

_NO_WORKERS: dict[int | str, dict[str, Any]] = {
    501: {"model": ErrorBody, "description": "The relay's store keeps no workers."}
}

KindPath = Annotated[
    str,
    PathParameter(min_length=1, max_length=MAX_HEADER_VALUE_LENGTH),
]


async def _kept(call: Awaitable[T]) -> T:
    """``call``'s answer; a store plugin that keeps no workers answers 501."""
    try:
        return await call
    except ConfigError as exc:
        raise HTTPException(501, f"this relay's store does not keep workers ({exc})") from None


def add_worker_routes(
    app: FastAPI,
    service: RelayService,
    *,
    responses: dict[int | str, Any],
    dependencies: Sequence[Any],
) -> None:
    """Add the worker routes of ``service`` to ``app`` (``responses`` and ``dependencies``
    as for every route: the token's ``401``, ``422``, the store's ``503``)."""
    router = APIRouter(
        tags=["workers"],
        responses={**app.router.responses, **responses, **_NO_WORKERS},
        dependencies=list(dependencies),
        route_class=StrictJSONRoute,
    )

    @router.get("/workers", response_model=WorkersOut)
    async def list_workers(worker_kind: KindFilter = None, all: bool = False) -> WorkersOut:
        """The workers online, by worker kind then name; ``all=true`` adds those gone (no
        heartbeat for three intervals) that the relay has not forgotten yet (a day)."""
        now = service.clock()
        records = await _kept(service.store.list_workers())
        shown = [
            worker_out(r, now)
            for r in records
            if (all or r.live(now)) and (worker_kind is None or r.worker_kind == worker_kind)
        ]
        return WorkersOut(workers=shown)

    @router.get("/kinds", response_model=KindsOut)
    async def list_kinds(worker_kind: KindFilter = None) -> KindsOut:
        """Every task kind the live workers announced, with its input and output JSON
        Schemas; several contracts (``conflict``) while workers of one kind disagree."""
        online = await _kept(service.workers.online(service.clock(), fresh=True))
        if worker_kind is not None:
            online = [r for r in online if r.worker_kind == worker_kind]
        return KindsOut(kinds=[kind_out(view) for view in kinds_of(online)])

    @router.get(
        "/kinds/{worker_kind}/{task_kind}",
        response_model=KindOut,
        responses={404: {"model": ErrorBody, "description": "No live worker announced it."}},
    )
    async def get_kind(worker_kind: KindPath, task_kind: KindPath) -> KindOut:
        """One task kind's contracts, as the live workers of its worker kind announced them."""
        for text in (worker_kind, task_kind):
            try:
                no_nul(text)
            except ValueError as exc:
                raise HTTPException(422, f"kind: {exc}") from None
        online = await _kept(service.workers.online(service.clock(), fresh=True))
        online = [r for r in online if r.worker_kind == worker_kind]
        for view in kinds_of(online):
            if view.task_kind == task_kind:
                return kind_out(view)
        raise HTTPException(
            404,
            f"no live worker of {quoted(worker_kind)} announced task kind {quoted(task_kind)}",
        )

    app.router.routes.extend(router.routes)
