"""The relay's HTTP access log: one debug record per request, on ``tacoq.relay.access``.

:func:`with_access_log` wraps the relay's ASGI app when that logger is enabled for ``DEBUG``
(``tacoq relay --log-level debug``) and returns it unchanged otherwise, so a relay logging at
``info`` pays nothing per request. Each record says ``GET /tasks/… 200 1.3ms from 10.0.0.7``
and carries ``method``, ``path``, ``status``, ``duration_ms`` and ``client`` as attributes
(fields of their own in JSON lines).

What a request may hold that is not the log's business stays out: no header is logged (the
``Authorization`` token above all), and in the query string the value of every parameter whose
name suggests a secret (``token``, ``key``, ``password``, ...) is replaced by ``***``. Path and
query are taken as sent (percent-encoded), with control characters escaped and the whole cut
at :data:`MAX_TARGET` characters, so one record is one line.
"""

from __future__ import annotations

import logging
import re
import time
from typing import Any

__all__ = ["ACCESS_LOGGER", "MAX_TARGET", "AccessLog", "request_target", "with_access_log"]

#: The logger of the access records.
ACCESS_LOGGER = "tacoq.relay.access"
#: The most characters of a request's path and query a record shows.
MAX_TARGET = 2000

log = logging.getLogger(ACCESS_LOGGER)

_SECRET_NAME = re.compile(r"token|key|secret|pass|auth|sig|session|cookie|credential", re.I)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Any
Send = Any


def request_target(scope: Scope) -> str:
    """The path and query of an HTTP request as sent, for a log line: secret-looking query
    values replaced by ``***``, control characters escaped, at most :data:`MAX_TARGET`
    characters."""
    raw = scope.get("raw_path") or scope.get("path", "").encode("utf-8", "surrogateescape")
    target = raw.decode("latin-1")
    query = scope.get("query_string", b"").decode("latin-1")
    if query:
        target += "?" + "&".join(_masked(part) for part in query.split("&"))
    target = _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", target)
    return target if len(target) <= MAX_TARGET else target[:MAX_TARGET] + "..."


def _masked(parameter: str) -> str:
    name, equals, _ = parameter.partition("=")
    return f"{name}=***" if equals and _SECRET_NAME.search(name) else parameter


class AccessLog:
    """ASGI middleware: logs each HTTP request once it ends (see the module)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve the request with the wrapped app, then log it (also when it failed)."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status: list[int] = []

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                status.append(int(message["status"]))
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            _log_request(scope, status[0] if status else None, time.perf_counter() - started)


def _log_request(scope: Scope, status: int | None, seconds: float) -> None:
    method = str(scope.get("method", "?"))
    target = request_target(scope)
    client = scope.get("client")
    peer = client[0] if client else None
    duration_ms = round(seconds * 1000, 3)
    log.debug(
        "%s %s %s %.1fms%s",
        method,
        target,
        status if status is not None else "(no response)",
        duration_ms,
        f" from {peer}" if peer else "",
        extra={
            "method": method,
            "path": target,
            "status": status,
            "duration_ms": duration_ms,
            "client": peer,
        },
    )


def with_access_log(app: Any) -> Any:
    """``app`` wrapped in :class:`AccessLog` when ``tacoq.relay.access`` logs debug records,
    else ``app`` itself."""
    return AccessLog(app) if log.isEnabledFor(logging.DEBUG) else app
