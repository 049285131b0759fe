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

import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any

from tacoq.contracts.store import Store
from tacoq.model import strict_json
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


def _instance(payload: Payload, json_value: Any, has_json: bool) -> tuple[bool, Any, str]:
    """``(True, value, "")`` when the input is JSON (or text) the schema can judge, else
    ``(False, None, why)``: raw bytes, or bytes that are not what their content type says."""
    if has_json:
        return True, json_value, ""
    if is_json_type(payload.content_type):
        try:  # strict and bounded: Python's json recurses until it overflows the stack
            return True, strict_json.loads(payload.data), ""
        except strict_json.StrictJSONError as exc:
            return False, None, f"is not valid JSON ({payload.content_type}): {exc}"
    if media_type(payload.content_type).startswith("text/"):
        try:
            return True, payload.data.decode("utf-8"), ""
        except UnicodeDecodeError:
            return False, None, f"is not UTF-8 text ({payload.content_type})"
    return False, None, "is not JSON"


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
    judged, instance, why = _instance(payload, json_value, has_json)
    first: list[InputProblem] | None = None
    for announced in contracts:
        expected = announced.contract.input
        if expected.json_schema is None:
            return []
        if not judged:
            problems = [
                InputProblem(
                    (), f"the task takes JSON input ({expected.content_type}); this input {why}"
                )
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


class _Unchecked(Exception):
    """The schema uses a regex the relay cannot run in linear time: the input is not checked
    (the worker validates it)."""


def _regex(pattern: str) -> Any:
    """``pattern`` compiled by pydantic-core's Rust engine (linear time: no input makes it
    backtrack), the engine pydantic itself uses for ``Field(pattern=...)``."""
    from pydantic_core import SchemaValidator, core_schema

    try:
        return SchemaValidator(core_schema.str_schema(pattern=pattern, regex_engine="rust-regex"))
    except Exception as exc:  # a lookaround or backreference: not linear, not run here
        raise _Unchecked(f"the regex {pattern[:80]!r} cannot be run in linear time") from exc


@lru_cache(maxsize=1024)
def _compiled(pattern: str) -> Any:
    return _regex(pattern)


def _search(pattern: str, text: str) -> bool:
    """``re.search(pattern, text)``, in linear time (JSON Schema regexes are unanchored)."""
    from pydantic_core import ValidationError

    try:
        _compiled(pattern).validate_python(text)
    except ValidationError:
        return False
    return True


def _frozen(value: Any) -> Any:
    """A hashable stand-in for a JSON value, equal exactly when JSON Schema calls two values
    equal (``true`` is not ``1``, ``1`` is ``1.0``, objects ignore key order)."""
    if isinstance(value, bool):
        return ("b", value)
    if isinstance(value, dict):
        return ("o", frozenset((k, _frozen(v)) for k, v in value.items()))
    if isinstance(value, list):
        return ("a", tuple(_frozen(v) for v in value))
    return ("v", value)


def _pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Any:
    from jsonschema import ValidationError

    if validator.is_type(instance, "string") and not _search(pattern, instance):
        yield ValidationError(f"{instance[:100]!r} does not match {pattern[:100]!r}")


def _pattern_properties(validator: Any, patterns: Any, instance: Any, schema: Any) -> Any:
    if not validator.is_type(instance, "object"):
        return
    for pattern, subschema in patterns.items():
        for key, value in instance.items():
            if _search(pattern, key):
                yield from validator.descend(value, subschema, path=key, schema_path=pattern)


def _additional_properties(validator: Any, allowed: Any, instance: Any, schema: Any) -> Any:
    from jsonschema import ValidationError

    if not validator.is_type(instance, "object"):
        return
    properties = schema.get("properties", {})
    patterns = list(schema.get("patternProperties", {}))
    extras = [
        key
        for key in instance
        if key not in properties and not any(_search(p, key) for p in patterns)
    ]
    if validator.is_type(allowed, "object"):
        for extra in extras:
            yield from validator.descend(instance[extra], allowed, path=extra)
    elif not allowed and extras:
        shown = ", ".join(repr(key[:80]) for key in sorted(extras)[:10])
        more = ", ..." if len(extras) > 10 else ""
        yield ValidationError(f"Additional properties are not allowed ({shown}{more} unexpected)")


def _unique_items(validator: Any, unique: Any, instance: Any, schema: Any) -> Any:
    from jsonschema import ValidationError

    # jsonschema compares unsortable items (objects, mixed types) pairwise: quadratic
    if (
        unique
        and validator.is_type(instance, "array")
        and len({_frozen(item) for item in instance}) != len(instance)
    ):
        yield ValidationError("the array has non-unique elements")


def _uses(schema: Any, keyword: str) -> bool:
    """True when ``keyword`` is a key of ``schema`` or of any object inside it."""
    stack = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if keyword in node:
                return True
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return False


@lru_cache(maxsize=1)
def _validator_class() -> Any:
    """Draft 2020-12 with its regex and uniqueness keywords in linear time: the input comes
    from a REST client, and nothing it sends may stall the relay (``"^(a+)+$"`` against 40
    characters would backtrack for ages under :mod:`re`)."""
    from jsonschema import Draft202012Validator, validators

    return validators.extend(  # type: ignore[no-untyped-call]
        Draft202012Validator,
        {
            "pattern": _pattern,
            "patternProperties": _pattern_properties,
            "additionalProperties": _additional_properties,
            "uniqueItems": _unique_items,
        },
    )


def _validator(schema: dict[str, Any]) -> Any:
    if _uses(schema, "unevaluatedProperties") and _uses(schema, "patternProperties"):
        # jsonschema matches those with re itself; pydantic never writes unevaluatedProperties
        raise _Unchecked("unevaluatedProperties with patternProperties")
    return _validator_class()(schema)


def _schema_problems(digest: str, schema: dict[str, Any], instance: Any) -> list[InputProblem]:
    validator = _VALIDATORS.get(digest)
    if validator is None:
        if len(_VALIDATORS) >= 1000:
            _VALIDATORS.clear()
        validator = _VALIDATORS[digest] = _validator(schema)
    errors = sorted(validator.iter_errors(instance), key=lambda e: [str(p) for p in e.path])
    return [
        InputProblem(tuple(error.absolute_path), error.message[:300])
        for error in errors[:MAX_PROBLEMS]
    ]
