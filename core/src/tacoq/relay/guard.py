"""The relay's ASGI guard: the bearer token and the request body limit, before anything else.

Every request but those to a public path must carry ``Authorization: Bearer <token>`` when the
relay has a token; the scheme is matched in any case (``bearer``, ``BEARER``) and the token in
constant time. A body over the limit is refused with ``413``: at once when ``Content-Length``
says so, else as soon as the bytes received pass it.
"""

from __future__ import annotations

import hmac

from fastapi import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tacoq.relay.responses import error_response

__all__ = ["Guard", "bearer_token"]


def bearer_token(authorization: bytes) -> bytes | None:
    """The token of an ``Authorization`` header value with the Bearer scheme (in any case,
    RFC 9110 section 11.1), else ``None``."""
    scheme, _, credentials = authorization.strip().partition(b" ")
    if scheme.lower() != b"bearer":
        return None
    return credentials.strip() or None


class Guard:
    """ASGI middleware: the bearer token (``token``, except on ``public`` paths) and the body
    limit (``limit`` bytes)."""

    def __init__(self, app: ASGIApp, *, token: str | None, public: set[str], limit: int) -> None:
        self.app = app
        self.token = token.encode() if token else None
        self.public = public
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        if self.token is not None and not self._is_public(scope["path"]):
            given = headers.get(b"authorization", b"")
            token = bearer_token(given)
            # compare_digest takes as long for any token of the right length: no timing oracle
            if token is None or not hmac.compare_digest(token, self.token):
                why = "wrong bearer token" if given else "missing bearer token"
                response = error_response(
                    401,
                    f"{why}: send Authorization: Bearer <token>",
                    **{"WWW-Authenticate": "Bearer"},
                )
                await response(scope, receive, send)
                return
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.limit:
            await error_response(413, self.too_large_message())(scope, receive, send)
            return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.limit:
                raise HTTPException(413, self.too_large_message())
            return message

        await self.app(scope, limited, send)

    def _is_public(self, path: str) -> bool:
        return path in self.public or ("/docs" in self.public and path.startswith("/docs/"))

    def too_large_message(self) -> str:
        """Why a body was refused."""
        return f"the request body is over the limit of {self.limit:,} bytes"
