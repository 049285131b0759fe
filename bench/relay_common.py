"""What the relay scenarios share: measured subprocesses (pinned), CPU time, free ports."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
from collections.abc import AsyncIterator, Sequence
from typing import IO, Any

from bench.harness import ROOT, MeasurementError, pinned


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds process ``pid`` has used so far (from ``/proc``)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def last_line(errors: IO[bytes]) -> str:
    """The last line a process wrote to ``errors`` (a temporary file), shortened."""
    errors.seek(0)
    lines = errors.read().decode("utf-8", "replace").strip().splitlines()
    return lines[-1][:200] if lines else "no output"


@contextlib.asynccontextmanager
async def running(
    argv: Sequence[str], errors: IO[bytes], what: str
) -> AsyncIterator[asyncio.subprocess.Process]:
    """Run ``argv`` pinned (see :func:`bench.harness.pinned`) from the repository root; stop it
    with SIGTERM (then SIGKILL after 30 s) on the way out. Its stderr goes to ``errors``."""
    process = await asyncio.create_subprocess_exec(
        *pinned(argv),
        cwd=ROOT,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=errors,
    )
    try:
        yield process
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), 30)
            except TimeoutError:
                process.kill()
                await process.wait()
    if process.returncode not in (0, -signal.SIGTERM):
        raise MeasurementError(f"{what} exited {process.returncode}: {last_line(errors)}")


def alive(process: asyncio.subprocess.Process, errors: IO[bytes], what: str) -> None:
    """Raise :class:`MeasurementError` when ``process`` has already exited."""
    if process.returncode is not None:
        raise MeasurementError(f"{what} exited {process.returncode}: {last_line(errors)}")


async def consumers_on(channel: Any, queue: str) -> tuple[int, int]:
    """``(messages, consumers)`` of ``queue`` (a passive declare)."""
    declared = await channel.declare_queue(queue, passive=True)
    result = declared.declaration_result
    return int(result.message_count), int(result.consumer_count)
