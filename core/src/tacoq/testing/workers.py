"""Workers online in tests: realistic control messages and store records, built in one call.

::

    announcement = make_announcement("w-1", "images", task_kinds=["resize", "crop"])
    heartbeat = make_heartbeat("w-1", "images", running=2, sent_at=T0 + timedelta(seconds=5))
    record = worker_record(announcement, seen_at=T0)

Every argument has a plausible default (times default to :data:`T0`), so a test names only what
it is about. :func:`contract_app` is a worker app whose task kinds cover each kind of contract
(a pydantic model, text, bytes), for tests of what the relay serves.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import pydantic

from tacoq.model.workers import (
    DEFAULT_HEARTBEAT_INTERVAL,
    Announcement,
    Heartbeat,
    PayloadContract,
    TaskContract,
    WorkerRecord,
)
from tacoq.testing.strategies import T0
from tacoq.worker import WorkerApp

__all__ = [
    "T0",
    "SizeIn",
    "SizeInV2",
    "SizeOut",
    "contract_app",
    "json_contract",
    "large_announcement",
    "make_announcement",
    "make_heartbeat",
    "worker_record",
]

_JSON = "application/json"


def json_contract(
    input_schema: Mapping[str, Any] | None = None, output_schema: Mapping[str, Any] | None = None
) -> TaskContract:
    """A JSON task contract; its schemas default to "any JSON value" (``{}``)."""
    return TaskContract(
        input=PayloadContract(content_type=_JSON, json_schema=dict(input_schema or {})),
        output=PayloadContract(content_type=_JSON, json_schema=dict(output_schema or {})),
    )


def make_announcement(
    name: str = "worker-1",
    worker_kind: str = "images",
    *,
    task_kinds: Iterable[str] = ("resize",),
    contracts: Mapping[str, TaskContract] | None = None,
    host: str = "host-1",
    pid: int = 4242,
    tacoq_version: str = "0.1.0",
    python_version: str = "3.12.7",
    concurrency: int = 4,
    prefetch: int = 8,
    started_at: datetime | None = None,
    heartbeat_interval: float = DEFAULT_HEARTBEAT_INTERVAL,
    sent_at: datetime = T0,
) -> Announcement:
    """An announcement; each task kind gets a :func:`json_contract` unless ``contracts`` are
    given, and ``started_at`` defaults to a second before ``sent_at``."""
    kinds = list(task_kinds)
    return Announcement(
        name=name,
        worker_kind=worker_kind,
        task_kinds=kinds,
        contracts=dict(contracts) if contracts is not None else {k: json_contract() for k in kinds},
        host=host,
        pid=pid,
        tacoq_version=tacoq_version,
        python_version=python_version,
        concurrency=concurrency,
        prefetch=prefetch,
        started_at=sent_at - timedelta(seconds=1) if started_at is None else started_at,
        heartbeat_interval=heartbeat_interval,
        sent_at=sent_at,
    )


def make_heartbeat(
    name: str = "worker-1",
    worker_kind: str = "images",
    *,
    running: int = 0,
    succeeded: int = 0,
    failed: int = 0,
    retried: int = 0,
    running_ids: Iterable[UUID] | None = None,
    heartbeat_interval: float = DEFAULT_HEARTBEAT_INTERVAL,
    sent_at: datetime = T0,
) -> Heartbeat:
    """A heartbeat; ``running_ids`` default to ``running`` fresh ids."""
    ids = [uuid.uuid4() for _ in range(running)] if running_ids is None else list(running_ids)
    return Heartbeat(
        name=name,
        worker_kind=worker_kind,
        running=running,
        succeeded=succeeded,
        failed=failed,
        retried=retried,
        running_ids=ids,
        heartbeat_interval=heartbeat_interval,
        sent_at=sent_at,
    )


def worker_record(
    message: Announcement | Heartbeat,
    *,
    heartbeat: Heartbeat | None = None,
    seen_at: datetime = T0,
) -> WorkerRecord:
    """What a store keeps after ``message``: an announcement (with ``heartbeat``, if given, as
    the last one), or a heartbeat heard before any announcement."""
    if isinstance(message, Heartbeat):
        return WorkerRecord(
            name=message.name, worker_kind=message.worker_kind, heartbeat=message, seen_at=seen_at
        )
    return WorkerRecord(
        name=message.name,
        worker_kind=message.worker_kind,
        announcement=message,
        heartbeat=heartbeat,
        seen_at=seen_at,
    )


def _schema(kind: int, properties: int) -> dict[str, Any]:
    """A plausible JSON Schema of an object with ``properties`` described, typed fields."""
    types = ("string", "integer", "number", "boolean")
    props: dict[str, Any] = {
        f"field_{kind}_{i}": {
            "type": types[i % len(types)],
            "title": f"Field {i} of task kind {kind}",
            "description": f'What field {i} means to task kind {kind}: ünïcödé ✓, "quoted"',
            **({"minimum": -(2**53), "maximum": 2**53} if i % 4 == 1 else {}),
            **({"multipleOf": 0.25, "default": 1.5} if i % 4 == 2 else {}),
            **({"maxLength": 255, "pattern": "^[a-z]+\\d*$"} if i % 4 == 0 else {}),
        }
        for i in range(properties)
    }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": f"Input{kind}",
        "type": "object",
        "properties": props,
        "required": sorted(props)[: properties // 2],
        "additionalProperties": False,
    }


def large_announcement(
    name: str = "worker-large",
    worker_kind: str = "large",
    *,
    task_kinds: int = 400,
    properties: int = 8,
    sent_at: datetime = T0,
) -> Announcement:
    """An announcement of many task kinds, each with input and output JSON Schemas: about
    1 MB of JSON with the defaults (the size a big worker announces)."""
    kinds = [f"tasks.kind_{i:04d}" for i in range(task_kinds)]
    contracts = {
        kind: json_contract(_schema(i, properties), _schema(-i, properties // 2))
        for i, kind in enumerate(kinds)
    }
    return make_announcement(
        name, worker_kind, task_kinds=kinds, contracts=contracts, sent_at=sent_at
    )


class SizeIn(pydantic.BaseModel):
    """The input of :func:`contract_app`'s ``resize``."""

    width: int
    height: int


class SizeInV2(SizeIn):
    """The input of ``resize`` after a deploy that added a required field."""

    quality: int


class SizeOut(pydantic.BaseModel):
    """The output of ``resize``."""

    pixels: int


def contract_app(
    worker_kind: str, name: str, *, quality: bool = False, heartbeat_interval: float = 0.2
) -> WorkerApp:
    """A worker of ``worker_kind`` named ``name``, beating every ``heartbeat_interval``
    seconds, running ``resize`` (:class:`SizeIn`, or :class:`SizeInV2` with ``quality``, to
    :class:`SizeOut`), ``echo`` (text) and ``blob`` (bytes)."""
    app = WorkerApp(worker_kind, name=name, heartbeat_interval=heartbeat_interval)
    if quality:

        @app.task(kind="resize")
        async def resize_v2(job: SizeInV2) -> SizeOut:
            return SizeOut(pixels=job.width * job.height)

    else:

        @app.task(kind="resize")
        async def resize(job: SizeIn) -> SizeOut:
            return SizeOut(pixels=job.width * job.height)

    @app.task(kind="echo")
    async def echo(text: str) -> str:
        return text

    @app.task(kind="blob")
    async def blob(data: bytes) -> bytes:
        return data

    return app
