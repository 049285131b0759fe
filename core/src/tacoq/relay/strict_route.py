"""FastAPI routes whose JSON request bodies are parsed strictly (:mod:`tacoq.model.strict_json`).

FastAPI parses bodies with Python's ``json``: it takes ``NaN``, ``Infinity`` and ``1e999`` (an
infinite float) and lone surrogate escapes, and answers an undocumented ``400`` for invalid
UTF-8 or nesting past Python's recursion limit. A :class:`StrictJSONRoute` hands its endpoint a
request whose ``json()`` refuses all of these with a ``422`` naming what is wrong.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import HTTPException, Request, Response
from fastapi.routing import APIRoute

from tacoq.model.strict_json import StrictJSONError
from tacoq.model.strict_json import loads as strict_loads

__all__ = ["StrictJSONRoute"]


class _StrictJSONRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            try:
                # The body wraps the payloads: the payload's own depth is checked with its field.
                self._json = strict_loads(await self.body(), max_depth=None)
            except StrictJSONError as exc:
                raise HTTPException(422, f"body: {exc}") from None
        return self._json


class StrictJSONRoute(APIRoute):
    """An ``APIRoute`` whose endpoint reads its JSON body with :mod:`tacoq.model.strict_json`."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """FastAPI's handler, given a request that parses JSON strictly."""
        handler = super().get_route_handler()

        async def strict(request: Request) -> Response:
            return await handler(_StrictJSONRequest(request.scope, request.receive))

        return strict
