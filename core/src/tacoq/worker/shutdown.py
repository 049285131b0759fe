"""Small asyncio helpers for stopping a worker: waiting on events with bounds, settling quietly."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable

from tacoq.contracts.broker import Consumer

__all__ = ["first_of", "settle", "stop_receiving", "wait_until"]

log = logging.getLogger("tacoq.worker")


async def stop_receiving(consumer: Consumer) -> None:
    """Ask the broker to send no more deliveries (``Consumer.cancel``), quietly."""
    await settle(consumer.cancel())


async def first_of(*events: asyncio.Event) -> None:
    """Wait until any of ``events`` is set."""
    waits = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for wait in waits:
            wait.cancel()


async def wait_until(done: asyncio.Event, abort: asyncio.Event, timeout: float) -> bool:
    """Wait for ``done`` up to ``timeout`` seconds; False on timeout or once ``abort`` is set."""
    if done.is_set():
        return True
    if abort.is_set() or timeout <= 0:
        return False
    try:
        async with asyncio.timeout(timeout):
            await first_of(done, abort)
    except TimeoutError:
        return False
    return done.is_set()


async def settle(action: Awaitable[None]) -> None:
    """Await a settle (ack, requeue, close); a failure only means the broker redelivers."""
    try:
        await action
    except Exception as exc:
        log.info("settling a delivery failed (%s); the broker will redeliver it", exc)
