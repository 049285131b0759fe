"""What the relay knows of its workers: who is online, the task kinds they announced with their
contracts, and the check of a REST publish's input against them (docs/workers.md).

Every relay of a namespace reads the same store (the control intake,
:mod:`tacoq.relay.control`, writes it), so each answers alike. A worker is online while the
relay heard from it within three heartbeat intervals
(:data:`~tacoq.model.workers.MISSED_HEARTBEATS`). When live workers of one kind announce
different contracts for a task kind (a deploy in progress), every one is kept: ``GET /kinds``
lists them with their workers, and an input is valid when it matches any of them.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from tacoq.contracts.store import Store
from tacoq.model.task import Payload, is_json_type, media_type
from tacoq.model.workers import TaskContract, WorkerRecord, contract_digest

__all__ = [
    "VIEW_MAX_AGE",
    "AnnouncedContract",
    "InputProblem",
    "KindView",
    "WorkersView",
    "check_input",
    "kinds_of",
]

log = logging.getLogger("tacoq.relay")

#: How long (s) the relay reuses what it read of the workers for ``POST /tasks`` checks.
VIEW_MAX_AGE = 1.0
#: At most this many schema errors are reported for one input.
MAX_PROBLEMS = 20


@dataclass(frozen=True, slots=True)
class AnnouncedContract:
    """One contract of a task kind and the live workers that announced it."""

    digest: str
    contract: TaskContract
    workers: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class KindView:
    """A task kind of a worker kind, as the live workers announced it."""

    worker_kind: str
    task_kind: str
    contracts: tuple[AnnouncedContract, ...]

    @property
    def conflict(self) -> bool:
        """True when live workers announce different contracts (a deploy in progress)."""
        return len(self.contracts) > 1


def kinds_of(records: Iterable[WorkerRecord]) -> list[KindView]:
    """Every task kind the given (live) workers announced, by worker kind then task kind."""
    found: dict[tuple[str, str], dict[str, tuple[TaskContract, list[str]]]] = {}
    for record in records:
        announcement = record.announcement
        if announcement is None:
            continue
        for task_kind in announcement.task_kinds:
            contract = announcement.contracts.get(task_kind)
            if contract is None:
                continue
            by_digest = found.setdefault((record.worker_kind, task_kind), {})
            digest = contract_digest(contract)
            by_digest.setdefault(digest, (contract, []))[1].append(record.name)
    return [
        KindView(
            worker_kind,
            task_kind,
            tuple(
                AnnouncedContract(digest, contract, tuple(sorted(names)))
                for digest, (contract, names) in sorted(by_digest.items())
            ),
        )
        for (worker_kind, task_kind), by_digest in sorted(found.items())
    ]


@dataclass(slots=True)
class WorkersView:
    """The live workers as the store has them, read at most every ``max_age`` seconds."""

    store: Store
    max_age: float = VIEW_MAX_AGE
    _records: list[WorkerRecord] = field(default_factory=list)
    _read_at: float = -1e18

    async def online(self, now: datetime, *, fresh: bool = False) -> list[WorkerRecord]:
        """The workers online at ``now`` (``fresh``: read the store even if read recently)."""
        if fresh or time.monotonic() - self._read_at > self.max_age:
            self._records = await self.store.list_workers()
            self._read_at = time.monotonic()
        return [record for record in self._records if record.live(now)]


@dataclass(frozen=True, slots=True)
class InputProblem:
    """Why an input does not fit a contract: where (a JSON path) and what."""

    loc: tuple[str | int, ...]
    msg: str

    def __str__(self) -> str:
        where = ".".join(str(p) for p in self.loc)
        return f"{where}: {self.msg}" if where else self.msg


def _instance(payload: Payload, json_value: Any, has_json: bool) -> tuple[bool, Any]:
    """``(True, value)`` when the input is JSON (or text) the schema can judge, else
    ``(False, None)`` (raw bytes)."""
    if has_json:
        return True, json_value
    if is_json_type(payload.content_type):
        try:
            return True, json.loads(payload.data)
        except ValueError:
            return False, None
    if media_type(payload.content_type).startswith("text/"):
        try:
            return True, payload.data.decode("utf-8")
        except UnicodeDecodeError:
            return False, None
    return False, None


def check_input(
    contracts: Sequence[AnnouncedContract],
    payload: Payload,
    *,
    json_value: Any = None,
    has_json: bool = False,
) -> list[InputProblem]:
    """The problems of an input against a task kind's contracts; none when it matches any.

    ``json_value`` is the input as the request gave it (``has_json``: it was given as JSON);
    otherwise the payload's bytes are read by their content type. A contract without a schema
    (raw bytes, or a type pydantic cannot describe) accepts anything: the worker validates.
    With several contracts (a deploy in progress) the problems reported are the first one's.
    """
    judged, instance = _instance(payload, json_value, has_json)
    first: list[InputProblem] | None = None
    for announced in contracts:
        expected = announced.contract.input
        if expected.json_schema is None:
            return []
        if not judged:
            problems = [
                InputProblem((), f"the task takes JSON input ({expected.content_type}), not bytes")
            ]
        else:
            try:
                problems = _schema_problems(announced.digest, expected.json_schema, instance)
            except Exception as exc:  # a schema jsonschema cannot use: the worker validates
                log.warning("cannot check an input against contract %s: %s", announced.digest, exc)
                return []
        if not problems:
            return []
        if first is None:
            first = problems
    return first or []


_VALIDATORS: dict[str, Any] = {}


def _schema_problems(digest: str, schema: dict[str, Any], instance: Any) -> list[InputProblem]:
    from jsonschema import Draft202012Validator

    validator = _VALIDATORS.get(digest)
    if validator is None:
        if len(_VALIDATORS) >= 1000:
            _VALIDATORS.clear()
        validator = _VALIDATORS[digest] = Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(instance), key=lambda e: [str(p) for p in e.path])
    return [
        InputProblem(tuple(error.absolute_path), error.message[:300])
        for error in errors[:MAX_PROBLEMS]
    ]
