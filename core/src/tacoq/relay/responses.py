"""The relay's error answers: one JSON shape, ``{"error": {"type", "message"}}``, everywhere.

``docs/http-api.md`` lists every ``type``; :data:`KIND_BY_STATUS` is the ``type`` of each
status the relay answers with, used by the routes, the ASGI guard and the HTTP protocol alike.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi.responses import JSONResponse

__all__ = ["KIND_BY_STATUS", "error_body", "error_response"]

#: The error ``type`` of each error status.
KIND_BY_STATUS = {
    400: "bad_request",
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
    408: "request_timeout",
    409: "conflict",
    413: "payload_too_large",
    422: "validation_error",
    500: "internal_error",
    501: "not_implemented",
    503: "unavailable",
}


def error_body(kind: str, message: str) -> bytes:
    """The JSON bytes of an error answer."""
    return json.dumps({"error": {"type": kind, "message": message}}).encode()


def error_response(status: int, message: str, *, kind: str = "", **headers: str) -> JSONResponse:
    """An error answer; ``kind`` defaults to the status's (:data:`KIND_BY_STATUS`)."""
    body = {"error": {"type": kind or KIND_BY_STATUS.get(status, "http_error"), "message": message}}
    return JSONResponse(body, status_code=status, headers=headers or None)


def invalid_input_response(message: str, errors: list[dict[str, Any]]) -> JSONResponse:
    """The ``422`` of an input that does not match its task's contract: type
    ``invalid_input``, and each problem's ``{"loc", "msg"}`` in ``errors``."""
    body = {"error": {"type": "invalid_input", "message": message, "errors": errors}}
    return JSONResponse(body, status_code=422)
