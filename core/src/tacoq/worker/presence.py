"""A worker's presence on the control channel: it announces itself, beats, and says goodbye.

At start the worker sends an :class:`~tacoq.model.workers.Announcement` (persistent: it waits
in the control queue for a relay that is down); then a
:class:`~tacoq.model.workers.Heartbeat` every ``interval`` seconds, each dropped unread by the
broker once it waited one interval (a relay that was down gets no backlog); and a
:class:`~tacoq.model.workers.Goodbye` when it stops cleanly. It announces itself again after a
control message could not be sent (the broker went away, and may have lost it) and every
:data:`~tacoq.model.workers.REANNOUNCE_EVERY` heartbeats (a relay whose store lost it learns it
again). Nothing here ever stops the worker: a failed send is logged, once per outage.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import logging
import os
import platform
import socket
from collections.abc import Callable, Collection, Mapping
from datetime import datetime
from typing import Any
from uuid import UUID

import pydantic

from tacoq.contracts.broker import Broker
from tacoq.errors import ConfigError
from tacoq.guard import describe_failure
from tacoq.model.task import utcnow
from tacoq.model.wire import MAX_CONTROL_BYTES, encode_control
from tacoq.model.workers import (
    MAX_HEARTBEAT_INTERVAL,
    MAX_RUNNING_IDS,
    MIN_HEARTBEAT_INTERVAL,
    REANNOUNCE_EVERY,
    Announcement,
    ControlMessage,
    Goodbye,
    Heartbeat,
    TaskContract,
    describe_invalid,
)
from tacoq.worker.report import WorkerStats

__all__ = ["GOODBYE_WAIT", "Presence", "check_heartbeat_interval"]

log = logging.getLogger("tacoq.worker")

#: The longest a stopping worker waits for its goodbye to be confirmed (s).
GOODBYE_WAIT = 2.0


def check_heartbeat_interval(seconds: object) -> float:
    """``seconds`` if it is a heartbeat interval a relay accepts, else a ``ConfigError``."""
    if (
        isinstance(seconds, bool)
        or not isinstance(seconds, int | float)
        or not MIN_HEARTBEAT_INTERVAL <= seconds <= MAX_HEARTBEAT_INTERVAL
    ):
        raise ConfigError(
            f"heartbeat interval must be a number of seconds from {MIN_HEARTBEAT_INTERVAL:g} "
            f"to {MAX_HEARTBEAT_INTERVAL:g}, got {seconds!r}"
        )
    return float(seconds)


class Presence:
    """Announces one worker, sends its heartbeats, and says its goodbye."""

    def __init__(
        self,
        broker: Broker,
        *,
        name: str,
        worker_kind: str,
        contracts: Mapping[str, TaskContract],
        concurrency: int,
        prefetch: int,
        interval: float,
        stats: WorkerStats,
        running: Callable[[], Collection[UUID]],
        tacoq_version: str | None = None,
    ) -> None:
        self.broker = broker
        self.name = name
        self.worker_kind = worker_kind
        self.interval = interval
        self.stats = stats
        self.running = running
        self.started_at = utcnow()
        self._announcement: dict[str, Any] = {
            "name": name,
            "worker_kind": worker_kind,
            "task_kinds": sorted(contracts),
            "contracts": dict(contracts),
            "host": socket.gethostname()[:255] or "unknown",
            "pid": os.getpid(),
            "tacoq_version": tacoq_version or _core_version(),
            "python_version": platform.python_version(),
            "concurrency": concurrency,
            "prefetch": prefetch,
            "started_at": self.started_at,
            "heartbeat_interval": interval,
        }
        #: Control messages sent and confirmed, and sends that failed.
        self.sent = 0
        self.failed = 0
        self._announced = False
        self._failing = False
        self._beats = 0
        #: Why this worker cannot announce itself (it then runs unseen), or None.
        self.unseen: str | None = self._fit_announcement() if self.enabled else None

    def _fit_announcement(self) -> str | None:
        """Check the announcement now, not when the first one fails: one the relay would
        refuse is cut down (without its JSON Schemas) or, failing that, not sent at all.
        Returns why the worker runs unseen, or None."""
        try:
            size = len(encode_control(self.announcement()).body)
        except pydantic.ValidationError as exc:
            return f"its announcement is invalid ({describe_invalid(exc)})"
        if size <= MAX_CONTROL_BYTES:
            return None
        contracts: dict[str, TaskContract] = self._announcement["contracts"]
        self._announcement["contracts"] = {
            kind: TaskContract(
                input=c.input.model_copy(update={"json_schema": None}),
                output=c.output.model_copy(update={"json_schema": None}),
            )
            for kind, c in contracts.items()
        }
        smaller = len(encode_control(self.announcement()).body)
        if smaller > MAX_CONTROL_BYTES:
            return (
                f"its announcement is {smaller:,} bytes even without JSON Schemas, over the "
                f"relay's limit of {MAX_CONTROL_BYTES:,}"
            )
        log.warning(
            "worker %s: its announcement is %s bytes, over the relay's limit of %s; it is "
            "announced without its JSON Schemas (GET /kinds shows none, --check-input checks "
            "nothing for its task kinds)",
            self.name,
            f"{size:,}",
            f"{MAX_CONTROL_BYTES:,}",
        )
        return None

    @property
    def enabled(self) -> bool:
        """False on a broker without a control channel: the worker then runs unseen."""
        return self.broker.supports_control

    def announcement(self, now: datetime | None = None) -> Announcement:
        """This worker's announcement, as of ``now``."""
        return Announcement(**self._announcement, sent_at=now or utcnow())

    def heartbeat(self, now: datetime | None = None) -> Heartbeat:
        """This worker's heartbeat, as of ``now``."""
        running = self.running()
        stats = self.stats
        return Heartbeat(
            name=self.name,
            worker_kind=self.worker_kind,
            running=len(running),
            succeeded=stats.succeeded,
            failed=stats.failed,
            retried=stats.retried,
            running_ids=list(running)[:MAX_RUNNING_IDS],
            heartbeat_interval=self.interval,
            sent_at=now or utcnow(),
        )

    async def announce(self) -> bool:
        """Send the announcement (persistent); True once the broker confirmed it."""
        self._announced = await self._send(self.announcement(), ttl=None)
        return self._announced

    async def beat(self) -> bool:
        """Send one heartbeat (announcing first when due); True when it was confirmed."""
        self._beats += 1
        if (not self._announced or self._beats % REANNOUNCE_EVERY == 0) and not (
            await self.announce()
        ):
            return False
        return await self._send(self.heartbeat(), ttl=self.interval)

    async def run(self, stop: asyncio.Event) -> None:
        """Announce, then beat every interval until ``stop`` is set."""
        if not self.enabled:
            log.info(
                "worker %s: the %s broker has no control channel; the relay will not list it",
                self.name,
                self.broker.scheme or type(self.broker).__name__,
            )
            return
        if self.unseen is not None:
            log.warning("worker %s: %s; the relay will not list it", self.name, self.unseen)
            return
        await self.announce()
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), self.interval)
            except TimeoutError:
                await self.beat()

    async def goodbye(self) -> None:
        """Say goodbye (persistent), waiting at most :data:`GOODBYE_WAIT` seconds."""
        if not self.enabled or self.unseen is not None:
            return
        message = Goodbye(name=self.name, worker_kind=self.worker_kind, sent_at=utcnow())
        try:
            await asyncio.wait_for(self._send(message, ttl=None), GOODBYE_WAIT)
        except TimeoutError:
            log.warning(
                "worker %s: its goodbye was not confirmed within %gs; the relay will drop it "
                "from the workers online after its heartbeats stop",
                self.name,
                GOODBYE_WAIT,
            )

    async def _send(self, message: ControlMessage, *, ttl: float | None) -> bool:
        try:
            await self.broker.send_control(encode_control(message), ttl=ttl)
        except Exception as exc:  # the worker goes on: presence is never worth a task
            self.failed += 1
            if not self._failing:
                log.warning(
                    "worker %s: could not send its %s to the relay (%s); retrying with the "
                    "next heartbeat, it announces itself again once one gets through",
                    self.name,
                    message.type,
                    describe_failure(exc),
                )
            self._failing = True
            self._announced = False
            return False
        if self._failing:
            log.info("worker %s: control messages get through again", self.name)
        self._failing = False
        self.sent += 1
        return True


def _core_version() -> str:
    try:
        return importlib.metadata.version("tacoq-core")
    except importlib.metadata.PackageNotFoundError:  # running from a source tree
        return "0.0.0+unknown"
