"""Deadlines on the relay's HTTP connections, probed with raw sockets (issue 16 finding 8).

A client that opens a connection and sends a request slowly, or not at all, must not hold it for
long: the request line and headers must arrive within ``header_timeout`` seconds of the
connection being ready for a request, and the body within ``body_timeout`` seconds of the
headers; the relay then answers ``408`` (when a request had begun) and closes the connection.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from tacoq.relay.service import RelayService
from tacoq.testing import fresh_namespace

#: What a closed connection must happen within, beyond the deadline (a loaded 2-core machine).
SLACK = 2.0


@asynccontextmanager
async def relay(**options: float) -> AsyncIterator[RelayService]:
    ns = fresh_namespace("proto")
    service = RelayService(f"memory://{ns}", f"memory://{ns}", namespace=ns, port=0, **options)
    stop = asyncio.Event()
    job = asyncio.create_task(service.run(stop))
    ready = asyncio.ensure_future(service.ready.wait())
    await asyncio.wait([job, ready], timeout=10, return_when=asyncio.FIRST_COMPLETED)
    if job.done():
        await job
    try:
        yield service
    finally:
        stop.set()
        await asyncio.wait_for(job, 15)


async def read_until_closed(reader: asyncio.StreamReader, limit: float) -> tuple[bytes, float]:
    """Everything the server sends until it closes the connection, and how long that took."""
    started = time.monotonic()
    received = b""
    while True:
        chunk = await asyncio.wait_for(reader.read(65536), limit)
        if not chunk:
            return received, time.monotonic() - started
        received += chunk


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


def error_of(answer: bytes) -> dict[str, str]:
    head, _, content = answer.partition(b"\r\n\r\n")
    assert b"application/json" in head.lower(), head
    error: dict[str, str] = json.loads(content)["error"]
    return error


async def test_incomplete_headers_are_cut_off_with_408() -> None:
    async with relay(header_timeout=0.5) as service:
        reader, writer = await asyncio.open_connection("127.0.0.1", service.port)
        writer.write(b"GET /health/live HTTP/1.1\r\nHost: x\r\n")  # no blank line: unfinished
        await writer.drain()
        answer, elapsed = await read_until_closed(reader, 0.5 + SLACK)
        writer.close()
        assert elapsed < 0.5 + SLACK
        assert status_of(answer) == 408
        assert error_of(answer)["type"] == "request_timeout"


async def test_a_header_trickled_byte_by_byte_is_cut_off_at_the_deadline() -> None:
    async with relay(header_timeout=0.6) as service:
        reader, writer = await asyncio.open_connection("127.0.0.1", service.port)
        writer.write(b"GET /health/live HTTP/1.1\r\nX-Slow: ")
        started = time.monotonic()
        closed = asyncio.ensure_future(read_until_closed(reader, 10))
        while not closed.done() and time.monotonic() - started < 5:
            writer.write(b"a")  # every byte would restart uvicorn's keep-alive timer
            await asyncio.sleep(0.05)
        answer, _ = await closed
        elapsed = time.monotonic() - started
        writer.close()
        assert elapsed < 0.6 + SLACK
        assert status_of(answer) == 408


async def test_a_silent_connection_is_closed_at_the_deadline() -> None:
    async with relay(header_timeout=0.5) as service:
        reader, writer = await asyncio.open_connection("127.0.0.1", service.port)
        answer, elapsed = await read_until_closed(reader, 0.5 + SLACK)
        writer.close()
        assert elapsed < 0.5 + SLACK
        assert answer == b""  # nothing was asked: no answer, just the close


async def test_an_unfinished_body_is_cut_off_with_408() -> None:
    async with relay(header_timeout=5, body_timeout=0.5) as service:
        reader, writer = await asyncio.open_connection("127.0.0.1", service.port)
        writer.write(
            b"POST /tasks HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b'Content-Length: 100\r\n\r\n{"task_kind": '
        )
        await writer.drain()
        answer, elapsed = await read_until_closed(reader, 0.5 + SLACK)
        writer.close()
        assert elapsed < 0.5 + SLACK
        assert status_of(answer) == 408
        assert service.published == 0


async def test_a_complete_request_may_take_longer_than_the_deadlines() -> None:
    async with relay(header_timeout=0.3, body_timeout=0.3, max_wait=1.0) as service:
        reader, writer = await asyncio.open_connection("127.0.0.1", service.port)
        ids = [uuid.uuid4() for _ in range(2)]
        for task_id in ids:  # two requests on one connection, each held 1 s by the long-poll
            writer.write(f"GET /tasks/{task_id}?wait=1 HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            await writer.drain()
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            assert status_of(head) == 404, head
            length = next(
                int(line.split(b":")[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length")
            )
            await reader.readexactly(length)
            await asyncio.sleep(0.2)  # idle between requests, under the deadline
        writer.close()


async def test_malformed_http_is_a_json_400() -> None:
    async with relay() as service:
        reader, writer = await asyncio.open_connection("127.0.0.1", service.port)
        writer.write(b"GET / HTTP/1.1\r\nBad Header Without Colon\r\n\r\n")
        await writer.drain()
        answer, _ = await read_until_closed(reader, 10)
        writer.close()
        assert status_of(answer) == 400
        assert error_of(answer)["type"] == "bad_request"


@pytest.mark.parametrize("option", ["header_timeout", "body_timeout"])
@pytest.mark.parametrize("value", [0, -1, float("nan"), float("inf")])
def test_deadlines_must_be_positive_and_finite(option: str, value: float) -> None:
    from tacoq.errors import ConfigError

    ns = fresh_namespace("proto")
    with pytest.raises(ConfigError, match=option.replace("_", " ")):
        RelayService(f"memory://{ns}", f"memory://{ns}", namespace=ns, **{option: value})


async def test_unfinished_headers_past_16_kib_are_a_json_400() -> None:
    async with relay() as service:
        reader, writer = await asyncio.open_connection("127.0.0.1", service.port)
        writer.write(b"GET /health/live HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 17000)
        await writer.drain()
        answer, _ = await read_until_closed(reader, 10)
        writer.close()
        assert status_of(answer) == 400
        assert error_of(answer)["type"] == "bad_request"
