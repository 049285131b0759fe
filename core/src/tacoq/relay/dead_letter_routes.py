"""The relay's dead-letter routes: list, show, requeue and delete the store's dead letters.

``GET /dead-letters`` (filtered, newest first, paginated), ``GET /dead-letters/{id}`` (with the
body), ``POST /dead-letters/{id}/requeue``, ``POST /dead-letters/requeue`` (several ids, each
requeued once), ``DELETE /dead-letters/{id}`` and ``DELETE /dead-letters`` (by filter; ``all``
to delete every one). ``docs/http-api.md`` describes them; requeueing is
:func:`tacoq.relay.requeue.requeue_dead_letter`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated, Any
from uuid import UUID

from fastapi import APIRouter, FastAPI, HTTPException, Query
from fastapi import Path as PathParameter

from tacoq.contracts.store import DeadLetterFilter
from tacoq.errors import DeadLetterNotFound, PublishError, RequeueRefused
from tacoq.relay.api_models import ErrorBody, TaskId
from tacoq.relay.dead_letter_models import (
    MAX_LIST_LIMIT,
    DeadLetterOut,
    DeadLetterPageOut,
    DeletedOut,
    PurgeIn,
    RequeueIn,
    RequeueOut,
    RequeueSkipped,
    dead_letter_out,
)
from tacoq.relay.params import Cursor, NoNulText
from tacoq.relay.requeue import requeue_dead_letter
from tacoq.relay.strict_route import StrictJSONRoute

if TYPE_CHECKING:
    from tacoq.relay.service import RelayService

__all__ = ["add_dead_letter_routes"]

_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorBody, "description": "No dead letter of that id."}
}
_REFUSED: dict[int | str, dict[str, Any]] = {
    409: {"model": ErrorBody, "description": "Not requeueable (cut body, unknown origin, or "
          "dead-lettered again since count)."},
}  # fmt: skip
_BROKER_DOWN: dict[int | str, dict[str, Any]] = {
    503: {"model": ErrorBody, "description": "The broker or the store cannot be reached."}
}

LetterId = Annotated[TaskId, PathParameter(description="The dead letter's id (a canonical UUID).")]
TaskIdFilter = Annotated[TaskId | None, Query(description="Only those of this task.")]


def add_dead_letter_routes(
    app: FastAPI,
    service: RelayService,
    *,
    responses: dict[int | str, Any],
    dependencies: Sequence[Any],
) -> None:
    """Add the dead-letter routes of ``service`` to ``app``: ``responses`` are the errors every
    one of them may answer (the token's ``401``, a malformed request's ``422``, the store's
    ``503``), ``dependencies`` those of every route (the bearer scheme's).

    They are made on a router (its prefix, tags and defaults) and then become the app's own
    routes, like the others (not an included router, which the app's 405 ``Allow`` header and
    route listing would see as one opaque entry)."""
    router = APIRouter(
        prefix="/dead-letters",
        tags=["dead letters"],
        responses={**app.router.responses, **responses},  # the app's own, as its routes have
        dependencies=list(dependencies),
        route_class=StrictJSONRoute,
    )

    def filters(origin: str | None, reason: str | None, task_id: UUID | None) -> DeadLetterFilter:
        return DeadLetterFilter(origin=origin, reason=reason, task_id=task_id)

    # ``/requeue`` and ``/purge`` are actions, not ids: any other method there is 405 (with
    # ``Allow: POST``), not the 422 of ``/{letter_id}`` finding no UUID. Registered first.
    async def post_only() -> None:
        raise HTTPException(405, "method not allowed", headers={"Allow": "POST"})

    for action in ("/requeue", "/purge"):
        router.add_api_route(
            action,
            post_only,
            methods=["GET", "PUT", "PATCH", "DELETE"],
            include_in_schema=False,
        )

    @router.get("", response_model=DeadLetterPageOut)
    async def list_dead_letters(
        origin: NoNulText = None,
        reason: NoNulText = None,
        task_id: TaskIdFilter = None,
        limit: Annotated[int, Query(ge=1, le=MAX_LIST_LIMIT)] = 50,
        cursor: Cursor = None,
    ) -> DeadLetterPageOut:
        """Dead letters, newest first, filtered; pass ``next_cursor`` back as ``cursor``."""
        try:
            page = await service.store.list_dead_letters(
                filters(origin, reason, task_id), cursor=cursor, limit=limit
            )
        except ValueError as exc:
            raise HTTPException(422, f"cursor: {exc}") from None
        return DeadLetterPageOut(
            dead_letters=[dead_letter_out(r) for r in page.dead_letters],
            next_cursor=page.next_cursor,
        )

    @router.get("/{letter_id}", response_model=DeadLetterOut, responses=_NOT_FOUND)
    async def get_dead_letter(letter_id: LetterId) -> DeadLetterOut:
        """One dead letter, with its body."""
        record = await service.store.get_dead_letter(letter_id)
        if record is None:
            raise HTTPException(404, f"dead letter {letter_id} is not in the store")
        return dead_letter_out(record, with_body=True)

    @router.post(
        "/{letter_id}/requeue",
        response_model=DeadLetterOut,
        responses={**_NOT_FOUND, **_REFUSED, **_BROKER_DOWN},
    )
    async def requeue_one(
        letter_id: LetterId,
        count: Annotated[
            int | None, Query(ge=1, description="Only if its count is still this.")
        ] = None,
    ) -> DeadLetterOut:
        """Requeue one dead letter into the queue it came from; the record is removed."""
        try:
            record = await requeue_dead_letter(
                service.store, service.broker, letter_id, count=count
            )
        except DeadLetterNotFound as exc:
            raise HTTPException(404, str(exc)) from None
        except RequeueRefused as exc:
            raise HTTPException(409, str(exc)) from None
        except PublishError as exc:
            raise HTTPException(503, f"the broker did not accept the requeue: {exc}") from None
        return dead_letter_out(record)

    @router.post("/requeue", response_model=RequeueOut, responses=_BROKER_DOWN)
    async def requeue_many(body: RequeueIn) -> RequeueOut:
        """Requeue several dead letters, each once; those that cannot be are listed."""
        done: list[UUID] = []
        skipped: list[RequeueSkipped] = []
        outage: str | None = None
        for letter_id in dict.fromkeys(body.ids):
            if outage is not None:
                skipped.append(RequeueSkipped(id=letter_id, reason=outage))
                continue
            try:
                await requeue_dead_letter(service.store, service.broker, letter_id)
            except (DeadLetterNotFound, RequeueRefused) as exc:
                skipped.append(RequeueSkipped(id=letter_id, reason=str(exc)))
            except PublishError as exc:  # the rest would fail alike: say so, nothing lost
                outage = f"not tried: the broker did not accept a requeue ({exc})"
                skipped.append(RequeueSkipped(id=letter_id, reason=outage))
            else:
                done.append(letter_id)
        return RequeueOut(requeued=done, skipped=skipped)

    @router.delete("/{letter_id}", response_model=DeletedOut, responses=_NOT_FOUND)
    async def delete_one(letter_id: LetterId) -> DeletedOut:
        """Delete one dead letter (``{"deleted": 1}``)."""
        if not await service.store.remove_dead_letter(letter_id):
            raise HTTPException(404, f"dead letter {letter_id} is not in the store")
        return DeletedOut(deleted=1)

    @router.post("/purge", response_model=DeletedOut)
    async def purge(body: PurgeIn) -> DeletedOut:
        """Delete the dead letters matching the body's filters (every one with ``all``)."""
        found = DeadLetterFilter(origin=body.origin, reason=body.reason, task_id=body.task_id)
        return DeletedOut(deleted=await service.store.purge_dead_letters(found))

    app.router.routes.extend(router.routes)
