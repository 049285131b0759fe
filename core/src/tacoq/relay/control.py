"""The relay's control intake: workers' announcements, heartbeats and goodbyes into the store.

The relay consumes the control queue (:data:`~tacoq.contracts.broker.CONTROL_QUEUE`) one message
at a time (they come seconds apart) and keeps each worker's state in the store, which every
relay of the namespace shares (docs/workers.md):

- an announcement replaces the worker's record (a restarted worker starts afresh);
- a heartbeat sets its last heartbeat and ``seen_at``; one from a worker the store does not
  keep (its announcement was lost) is counted and dropped, never made into a record, so a
  heartbeat that overtakes a goodbye cannot bring a worker back;
- a goodbye forgets the worker at once.

Each message is acked once the store has it; an outage is retried like the relay's batches.
A malformed message is dead-lettered with its reason; a kind this TacoQ does not know is acked
and counted. A store that keeps no workers makes the intake ack and drop everything, said once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from datetime import datetime

from tacoq.contracts.broker import Consumer, Delivery
from tacoq.contracts.store import Store
from tacoq.errors import ConfigError, UnknownMessageKind, WireFormatError
from tacoq.guard import describe_failure, note_unknown_kind, set_aside
from tacoq.model.wire import decode_control
from tacoq.model.workers import Announcement, Goodbye, Heartbeat, WorkerRecord

__all__ = ["ControlIntake", "ControlStats"]

log = logging.getLogger("tacoq.relay")


@dataclass(slots=True)
class ControlStats:
    """Counters of the control intake since the relay started."""

    #: Control messages received (every kind, malformed ones included).
    control_messages: int = 0
    announcements: int = 0
    heartbeats: int = 0
    goodbyes: int = 0
    #: Heartbeats of workers the store did not keep (dropped; the worker announces again).
    unannounced_heartbeats: int = 0
    #: Control messages dead-lettered as malformed.
    control_dead_lettered: int = 0
    #: Control messages of a kind this TacoQ does not know, acked and skipped.
    unknown_control_messages: int = 0

    def as_dict(self) -> dict[str, int]:
        """The counters as a plain dict."""
        return asdict(self)


class ControlIntake:
    """Consumes one namespace's control queue into its store."""

    def __init__(
        self,
        store: Store,
        *,
        clock: Callable[[], datetime],
        retrying: Callable[
            [Callable[[], Awaitable[object]], asyncio.Event, str], Awaitable[object | None]
        ],
    ) -> None:
        self.store = store
        self.clock = clock
        self._retrying = retrying
        self.stats = ControlStats()
        self._unknown_kinds: set[str] = set()
        self._unsupported = False

    async def run(self, consumer: Consumer, stop: asyncio.Event) -> None:
        """Take control messages until ``stop`` is set."""
        stopping = asyncio.ensure_future(stop.wait())
        try:
            while True:
                getting = asyncio.ensure_future(consumer.get())
                await asyncio.wait({getting, stopping}, return_when=asyncio.FIRST_COMPLETED)
                if not getting.done():
                    getting.cancel()
                    await asyncio.gather(getting, return_exceptions=True)
                    return
                await self.take(getting.result(), stop)
                if stop.is_set():
                    return
        finally:
            stopping.cancel()
            await asyncio.gather(stopping, return_exceptions=True)

    async def take(self, delivery: Delivery, stop: asyncio.Event) -> None:
        """Handle one control message: into the store, then acked (or set aside)."""
        self.stats.control_messages += 1
        try:
            message = decode_control(delivery.envelope)
        except UnknownMessageKind as exc:
            self.stats.unknown_control_messages += 1
            note_unknown_kind(exc.kind, self._unknown_kinds, log)
            await delivery.ack()
            return
        except WireFormatError as exc:
            await self._set_aside(delivery, f"relay cannot decode a control message: {exc}")
            return
        except Exception as exc:  # the last-resort guard: no message may stop the relay
            log.exception("decoding a control message failed unexpectedly; dead-lettering it")
            await self._set_aside(delivery, f"relay cannot decode: {describe_failure(exc)}")
            return
        if self._unsupported:
            await delivery.ack()
            return
        try:
            done = await self._retrying(
                lambda: self._keep(message), stop, f"holding a {message.type} of {message.name}"
            )
        except ConfigError as exc:  # a store plugin without workers online
            self._unsupported = True
            log.warning("workers online are off: %s; control messages are dropped", exc)
            await delivery.ack()
            return
        except Exception as exc:  # the store refused this message: set it aside
            log.exception("the store refused a %s message; dead-lettering it", message.type)
            await self._set_aside(delivery, f"store refused: {describe_failure(exc)}")
            return
        if done is None:
            return  # stopping while the store is down: the message stays queued
        await delivery.ack()
        stats = self.stats
        if isinstance(message, Heartbeat):
            stats.heartbeats += 1
            stats.unannounced_heartbeats += done is False
        elif isinstance(message, Announcement):
            stats.announcements += 1
        else:
            stats.goodbyes += 1

    async def _keep(self, message: Announcement | Heartbeat | Goodbye) -> bool:
        """Into the store; False for a heartbeat of a worker the store does not keep."""
        now = self.clock()
        if isinstance(message, Heartbeat):
            return await self.store.touch_worker(message, now)
        if isinstance(message, Announcement):
            record = WorkerRecord(
                name=message.name,
                worker_kind=message.worker_kind,
                announcement=message,
                seen_at=now,
            )
            await self.store.save_worker(record)
            log.info(
                "worker %s (%s) is online: %d task kind(s)",
                message.name,
                message.worker_kind,
                len(message.task_kinds),
            )
            return True
        await self.store.remove_worker(message.name)
        log.info("worker %s (%s) said goodbye", message.name, message.worker_kind)
        return True

    async def _set_aside(self, delivery: Delivery, reason: str) -> None:
        log.warning("dead-lettering a control message: %s", reason)
        if await set_aside(delivery, reason, log) == "dead-lettered":
            self.stats.control_dead_lettered += 1
