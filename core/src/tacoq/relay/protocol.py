"""The relay's HTTP/1.1 protocol: uvicorn's h11 protocol with deadlines on reading a request.

uvicorn has no request-header timeout, and its keep-alive timer is cancelled by the first byte
of a request: a client that sends half a request line, or trickles a header a byte at a time,
holds its connection for as long as it likes. :func:`deadline_protocol` makes a protocol class
with two deadlines of its own:

- the request line and headers must arrive within ``header_timeout`` seconds of the connection
  becoming ready for a request (opened, or the previous response sent);
- the body must arrive within ``body_timeout`` seconds of the headers.

When a deadline passes, a request that had begun is answered ``408`` with the relay's JSON
error (``request_timeout``) and the connection is closed; a connection that sent nothing is
just closed, like an idle keep-alive one. A complete request may then take as long as its route
does (a long-poll). Malformed HTTP is answered ``400`` with the same JSON error shape
(``bad_request``) instead of uvicorn's plain text.
"""

from __future__ import annotations

import asyncio
import enum
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from tacoq.relay.responses import error_body

__all__ = ["DeadlineProtocol", "deadline_protocol"]


class _Reading(enum.Enum):
    HEAD = "the request line and headers"
    BODY = "the request body"
    NOTHING = ""


def _answer(status: int, reason: bytes, kind: str, message: str) -> bytes:
    body = error_body(kind, message)
    return b"".join(
        [
            b"HTTP/1.1 %d %s\r\n" % (status, reason),
            b"content-type: application/json\r\n",
            b"content-length: %d\r\n" % len(body),
            b"connection: close\r\n\r\n",
            body,
        ]
    )


class DeadlineProtocol(H11Protocol):
    """uvicorn's h11 protocol with the deadlines of :func:`deadline_protocol`."""

    #: Seconds (set by :func:`deadline_protocol`).
    header_timeout: float
    body_timeout: float

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._reading = _Reading.NOTHING
        self._deadline: asyncio.TimerHandle | None = None
        self._begun = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """A new connection: the head of its first request is due within the deadline."""
        super().connection_made(transport)
        self._expect(_Reading.HEAD)

    def connection_lost(self, exc: Exception | None) -> None:
        """The connection is gone: no deadline is left running."""
        self._expect(_Reading.NOTHING)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        """Bytes of a request: move from one deadline to the next as the request arrives."""
        if data and self._reading is _Reading.HEAD:
            self._begun = True
        super().data_received(data)
        self._follow()

    def on_response_complete(self) -> None:
        """A response was sent: the next request's head is due within the deadline."""
        super().on_response_complete()
        if not self.transport.is_closing():
            self._begun = False
            self._follow(after_response=True)

    def send_400_response(self, msg: str) -> None:
        """Answer malformed HTTP with the relay's JSON error, then close."""
        self._expect(_Reading.NOTHING)
        message = "the request is not valid HTTP (request line or headers)"
        self.transport.write(_answer(400, b"Bad Request", "bad_request", message))
        self.transport.close()

    def _follow(self, *, after_response: bool = False) -> None:
        """Set the deadline for what the connection is reading now."""
        state = self.conn.their_state
        if state is h11.IDLE:
            if after_response or self._reading is _Reading.NOTHING:
                self._expect(_Reading.HEAD)
        elif state is h11.SEND_BODY:
            if self._reading is not _Reading.BODY:
                self._expect(_Reading.BODY)
        else:  # the request is in (DONE), or the connection is ending
            self._expect(_Reading.NOTHING)

    def _expect(self, reading: _Reading) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        self._reading = reading
        if reading is _Reading.HEAD:
            self._deadline = self.loop.call_later(self.header_timeout, self._expired)
        elif reading is _Reading.BODY:
            self._deadline = self.loop.call_later(self.body_timeout, self._expired)

    def _expired(self) -> None:
        """A deadline passed: answer 408 if a request had begun, and close the connection."""
        self._deadline = None
        reading, self._reading = self._reading, _Reading.NOTHING
        if self.transport.is_closing():
            return
        waited = self.header_timeout if reading is _Reading.HEAD else self.body_timeout
        # A response may have begun only if the route answered before reading the whole body.
        answered = self.conn.our_state not in (h11.IDLE, h11.SEND_RESPONSE)
        if (reading is _Reading.BODY or self._begun) and not answered:
            message = f"{reading.value} did not arrive within {waited:g} s"
            self.transport.write(_answer(408, b"Request Timeout", "request_timeout", message))
        self.transport.close()


def deadline_protocol(header_timeout: float, body_timeout: float) -> type[DeadlineProtocol]:
    """A protocol class for ``uvicorn.Config(http=...)`` with these deadlines (seconds)."""

    class TacoqHttpProtocol(DeadlineProtocol):
        pass

    TacoqHttpProtocol.header_timeout = header_timeout
    TacoqHttpProtocol.body_timeout = body_timeout
    return TacoqHttpProtocol
