"""Hypothesis strategies for hostile messages: what a broker may hand a relay or a worker.

Fuzz tests of decoders and consumers (TacoQ's own, and plugin authors') draw from these; the
fault suite publishes thousands of them to a real broker. Every strategy is bounded in size
(no value is bigger than :data:`HUGE`) and deterministic under a fixed seed
(:func:`draw_examples`).

Envelope level (:class:`~tacoq.model.wire.Envelope`: string headers, a content type, body bytes):

- :func:`hostile_envelopes`: any of the shapes below, mixed;
- :func:`header_tables`: string-to-string tables with NUL, lone surrogates, empty, 256- and
  70,000-character values, missing and extra ``tacoq-*`` headers;
- :func:`assignment_headers`: a valid ``assign`` header table with up to two fields set to an
  edge value (a timestamp that cannot become UTC, non-ASCII digits, an upper-case UUID, a NUL
  kind...); with none it is valid;
- :func:`update_items` and :func:`updates_bodies`: JSON arrays of event-shaped objects whose
  fields take absurd values (wrong types, huge integers, ``NaN``/``Infinity``/``1e999``
  literals, deep nesting, lone-surrogate escapes, missing fields); with none it is valid.

AMQP level: :func:`amqp_header_tables`, header tables with every value type of an AMQP field
table (str, bytes of invalid UTF-8, int up to 64 bits, float with NaN and infinities, bool,
None, Decimal, datetime, nested tables and arrays).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, TypeVar

from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

from tacoq.model.wire import UPDATES_CONTENT_TYPE, WIRE_VERSION, Envelope, format_timestamp

__all__ = [
    "EDGE_KINDS",
    "EDGE_TEXT",
    "EDGE_TIMESTAMPS",
    "HUGE",
    "RESERVED_AMQP_HEADERS",
    "amqp_header_tables",
    "amqp_values",
    "assignment_envelopes",
    "assignment_headers",
    "bodies",
    "content_types",
    "draw_examples",
    "header_tables",
    "hostile_envelopes",
    "hostile_text",
    "unknown_kind_envelopes",
    "update_items",
    "updates_bodies",
    "updates_envelopes",
]

T = TypeVar("T")

#: The largest text value drawn, in characters (one such value fits an AMQP header frame).
HUGE = 70_000
#: Characters decoders and stores trip over: NUL and other controls, lone surrogates (high,
#: low, and the ``surrogateescape`` range), digits of other scripts, a BOM, line and paragraph
#: separators, the replacement character, a character outside the BMP.
_NASTY_CHARS = (
    "\x00\x01\x1f\x7f\x80\x85\x9f"
    "\ud800\udbff\udc80\udcff\udfff"
    "\u0661\uff11\ufeff\u2028\u2029\ufffd\U0001f600é"
)
#: Text values at the edges: empty, at and over the 255-character bound, 70,000 characters,
#: NUL alone and repeated, lone surrogates, whitespace.
EDGE_TEXT: tuple[str, ...] = (
    "",
    " ",
    "\x00",
    "\x00" * 300,
    "\ud800",
    "a\udfffb",
    "\udcff",
    "k" * 255,
    "k" * 256,
    "x" * HUGE,
    "\ufeff1",
    "é" * 255,
)
#: Timestamps that look like the wire's and are not (or are only just): out of range once in
#: UTC, no zone, impossible dates and times, other digits, too many fraction digits.
EDGE_TIMESTAMPS: tuple[str, ...] = (
    "0001-01-01T00:00:00+01:00",
    "9999-12-31T23:59:59-01:00",
    "0001-01-01T00:00:00Z",
    "9999-12-31T23:59:59.999999Z",
    "0000-01-01T00:00:00Z",
    "2026-01-01T00:00:00",
    "2026-13-01T00:00:00Z",
    "2026-02-30T00:00:00Z",
    "2026-01-01T24:00:00Z",
    "2026-01-01T23:59:60Z",
    "2026-01-01T00:00:00+24:00",
    "2026-01-01T00:00:00+99:99",
    "2026-01-01t00:00:00z",
    "2026-01-01T00:00:00.1234567891Z",
    "2026-01-01T00:00:00.Z",
    "\uff12\uff10\uff12\uff16-01-01T00:00:00Z",
    "\u0662\u0660\u0662\u0666-01-01T00:00:00Z",
    "2026-01-01 00:00:00Z",
    "+2026-01-01T00:00:00Z",
    "2026-01-01T00:00:00Z\x00",
    "",
)
#: Decimal-integer header values at and past their edges, and integers of other scripts.
_EDGE_INTEGERS: tuple[str, ...] = (
    "0",
    "1",
    "-1",
    "+1",
    " 1",
    "1 ",
    "01",
    "1_0",
    "0x10",
    "1e3",
    "255",
    "256",
    "1000000",
    "1000001",
    "2147483647",
    "2147483648",
    "4294967296",
    "99999999999",
    "9" * 400,
    "\u0661",
    "\uff11",
    "\u00b9",
    "",
)
#: Task ids that are not the canonical form (and the nil UUID, which is).
_EDGE_IDS: tuple[str, ...] = (
    "00000000-0000-0000-0000-000000000000",
    "0B7F6F0E-8A51-4A5E-9A39-2F1E6F7C2D10",
    "0b7f6f0e8a514a5e9a392f1e6f7c2d10",
    "{0b7f6f0e-8a51-4a5e-9a39-2f1e6f7c2d10}",
    "urn:uuid:0b7f6f0e-8a51-4a5e-9a39-2f1e6f7c2d10",
    "0b7f6f0e-8a51-4a5e-9a39-2f1e6f7c2d1",
    "0b7f6f0e-8a51-4a5e-9a39-2f1e6f7c2d10\x00",
    "\uff10b7f6f0e-8a51-4a5e-9a39-2f1e6f7c2d10",
    "not-a-uuid",
)
#: Kinds (task, worker) and content types at the edges of 1-255 characters without control
#: characters or lone surrogates; some are valid.
EDGE_KINDS: tuple[str, ...] = (
    "\x00",
    "a\x00b",
    "\ud800",
    "",
    "k" * 255,
    "k" * 256,
    "\x7f",
    "\x9f",
    "é" * 255,
    "\U0001f600",
    "line\nbreak",
    " ",
)
#: Values of ``tacoq-event``: valid, ill-formed, and well-formed kinds this TacoQ does not know.
_EDGE_EVENTS: tuple[str, ...] = (
    "assign",
    "updates",
    "ASSIGN",
    "assign\x00",
    "update",
    "cancel",
    "progress-v2",
    "a" * 64,
    "a" * 65,
    "9lives",
    "",
    "\ud800",
)
#: AMQP headers RabbitMQ acts on when a message is published (``CC``/``BCC`` route copies to
#: other queues): never drawn, so a raw publish of a drawn table goes where it is sent only.
RESERVED_AMQP_HEADERS = frozenset({"CC", "BCC"})

_TACOQ_HEADERS = (
    "tacoq-version",
    "tacoq-event",
    "tacoq-id",
    "tacoq-task-kind",
    "tacoq-worker-kind",
    "tacoq-attempt",
    "tacoq-priority",
    "tacoq-ttl",
    "tacoq-created-at",
    "tacoq-count",
    "tacoq-reply-to",
    "tacoq-requeues",
    "tacoq-deliveries",
    "tacoq-unknown",
)
_NAMES = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_.-", min_size=1, max_size=12)


def hostile_text(*, max_size: int = 24) -> st.SearchStrategy[str]:
    """Short text of any characters, lone surrogates and NUL included, or an edge value."""
    chars = st.characters() | st.characters(categories=["Cs"]) | st.sampled_from(_NASTY_CHARS)
    return st.text(chars, max_size=max_size) | st.sampled_from(EDGE_TEXT)


def _header_names() -> st.SearchStrategy[str]:
    return (
        st.sampled_from(_TACOQ_HEADERS)
        | hostile_text(max_size=12).filter(lambda name: name not in RESERVED_AMQP_HEADERS)
        | st.just("n" * 300)
    )


def header_tables(*, max_size: int = 6) -> st.SearchStrategy[dict[str, str]]:
    """String-to-string header tables: random names and ``tacoq-*`` ones, hostile values."""
    return st.dictionaries(_header_names(), hostile_text(), max_size=max_size)


def content_types() -> st.SearchStrategy[str]:
    """Any content type: the ones TacoQ writes, edge kinds, hostile text."""
    usual = st.sampled_from(
        [
            UPDATES_CONTENT_TYPE,
            UPDATES_CONTENT_TYPE.upper(),
            "application/json",
            "application/octet-stream",
            "text/plain; charset=utf-8",
        ]
    )
    return usual | st.sampled_from(EDGE_KINDS) | hostile_text()


def bodies() -> st.SearchStrategy[bytes]:
    """Any body: empty, short random bytes (invalid UTF-8 too), JSON-ish text, or one of a few
    large ones (64 KiB, and just over the default 1 MiB payload limit)."""
    special = st.sampled_from(
        [
            b"",
            b"\xff\xfe",
            b"\x00" * 16,
            b"[",
            b"null",
            b"[]",
            b"{}",
            b'{"n": 1}',
            b"\xef\xbb\xbf[]",
            b"\xed\xa0\x80",
        ]
    )
    # rare (about one body in 16, one in 64 over the limit), so a flood stays small
    large = st.sampled_from([64 * 1024] * 3 + [1024 * 1024 + 1]).map(lambda size: b"\xff" * size)
    text = hostile_text(max_size=64).map(lambda s: s.encode("utf-8", "surrogatepass"))
    kinds: dict[str, st.SearchStrategy[bytes]] = {
        "special": special,
        "binary": st.binary(max_size=256),
        "text": text,
        "large": large,
    }
    return st.sampled_from(["special", "binary", "text"] * 5 + ["large"]).flatmap(kinds.__getitem__)


# -- assignments -------------------------------------------------------------------------------


def _timestamps() -> st.SearchStrategy[str]:
    moments = st.datetimes(datetime(1990, 1, 1), datetime(2100, 1, 1), timezones=st.just(UTC))
    return moments.map(format_timestamp)


@st.composite
def _valid_assignment(draw: st.DrawFn, task_kinds: Sequence[str]) -> dict[str, str]:
    kinds = st.sampled_from(task_kinds) | _NAMES if task_kinds else _NAMES
    return {
        "tacoq-version": WIRE_VERSION,
        "tacoq-event": "assign",
        "tacoq-id": str(draw(st.uuids())),
        "tacoq-task-kind": draw(kinds),
        "tacoq-worker-kind": draw(_NAMES),
        "tacoq-attempt": str(draw(st.integers(1, 1_000_000))),
        "tacoq-priority": str(draw(st.integers(0, 255))),
        "tacoq-ttl": str(draw(st.integers(0, 2**31 - 1))),
        "tacoq-created-at": draw(_timestamps()),
    }


#: Edge values per header (any header also takes :data:`EDGE_TEXT` or is removed).
_ASSIGNMENT_EDGES: dict[str, tuple[str, ...]] = {
    "tacoq-version": ("1 ", "01", "2", "", "\x00", "\u0661"),
    "tacoq-event": _EDGE_EVENTS,
    "tacoq-id": _EDGE_IDS,
    "tacoq-task-kind": EDGE_KINDS,
    "tacoq-worker-kind": EDGE_KINDS,
    "tacoq-attempt": _EDGE_INTEGERS,
    "tacoq-priority": _EDGE_INTEGERS,
    "tacoq-ttl": _EDGE_INTEGERS,
    "tacoq-created-at": EDGE_TIMESTAMPS,
    "tacoq-reply-to": ("", "a" * 64, "a" * 65, "bad address", "ok_addr-1", "\x00"),
    "tacoq-count": _EDGE_INTEGERS,
}
_REMOVE = object()


@st.composite
def _mutation(draw: st.DrawFn, edges: Mapping[str, tuple[str, ...]]) -> tuple[str, object]:
    name = draw(st.sampled_from(sorted(edges)))
    return name, draw(st.sampled_from((*edges[name], *EDGE_TEXT, _REMOVE)))


def _mutated(base: dict[str, str], changes: list[tuple[str, object]]) -> dict[str, str]:
    headers = dict(base)
    for name, value in changes:
        if value is _REMOVE:
            headers.pop(name, None)
        else:
            assert isinstance(value, str)
            headers[name] = value
    return headers


@st.composite
def assignment_headers(
    draw: st.DrawFn, *, max_changes: int = 2, task_kinds: Sequence[str] = ()
) -> dict[str, str]:
    """A valid ``assign`` header table with up to ``max_changes`` fields set to an edge value
    or removed (none: valid), sometimes with extra headers. Its task kind is often one of
    ``task_kinds`` when given (the handlers of the worker under test)."""
    base = draw(_valid_assignment(task_kinds))
    count = min(draw(st.sampled_from([0, 1, 1, 2])), max_changes)  # a quarter stay valid
    changes = [draw(_mutation(_ASSIGNMENT_EDGES)) for _ in range(count)]
    headers = _mutated(base, changes)
    headers.update(draw(st.dictionaries(_header_names(), hostile_text(), max_size=2)))
    return headers


def assignment_envelopes(*, task_kinds: Sequence[str] = ()) -> st.SearchStrategy[Envelope]:
    """Assignments: :func:`assignment_headers`, a usual or hostile content type, any body."""
    usual = st.sampled_from(["application/json", "application/octet-stream"])
    return st.builds(
        Envelope,
        assignment_headers(task_kinds=task_kinds),
        usual | content_types(),
        st.sampled_from([b'{"n": 1}', b"[1, 2]", b"42"]) | bodies(),
    )


# -- updates ---------------------------------------------------------------------------------------


class _Raw(str):
    """JSON text put into a body as it is (literals no JSON encoder writes)."""


def _dump(value: Any, ascii_only: bool) -> str:
    """JSON text of ``value``; :class:`_Raw` parts verbatim, NaN and infinities as Python's
    ``json`` writes them, lone surrogates as ``\\uXXXX`` escapes when ``ascii_only``."""
    if isinstance(value, _Raw):
        return str(value)
    if isinstance(value, dict):
        items = (
            f"{json.dumps(k, ensure_ascii=ascii_only)}:{_dump(v, ascii_only)}"
            for k, v in value.items()
        )
        return "{" + ",".join(items) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_dump(v, ascii_only) for v in value) + "]"
    return json.dumps(value, ensure_ascii=ascii_only)


def _nested(depth: int) -> _Raw:
    return _Raw("[" * depth + "]" * depth)


#: JSON values no field of an event may hold (or only just may): wrong types, huge and
#: negative integers, non-finite numbers, deep nesting, lone-surrogate escapes, long text.
_ABSURD_JSON: tuple[Any, ...] = (
    None,
    True,
    False,
    0,
    -1,
    2**31,
    2**63,
    -(2**63) - 1,
    10**400,
    1.5,
    -0.0,
    float("nan"),
    float("inf"),
    float("-inf"),
    _Raw("1e999"),
    _Raw("-1e999"),
    _Raw("NaN"),
    _Raw("Infinity"),
    _Raw("1E400"),
    _Raw('"\\ud800"'),
    _Raw('"\\udfff\\ud800"'),
    _Raw('"a\\u0000b"'),
    "",
    "\x00",
    "x" * HUGE,
    [],
    {},
    [1, "2"],
    {"nested": {"deeper": [None]}},
    _nested(129),
    _nested(201),
    _nested(1_000),
    _nested(20_000),
)


def _absurd_json() -> st.SearchStrategy[Any]:
    return st.sampled_from(_ABSURD_JSON) | hostile_text() | st.integers()


def _payloads() -> st.SearchStrategy[Any]:
    text = st.fixed_dictionaries(
        {
            "content_type": st.sampled_from(["application/json", "text/plain"]) | content_types(),
            "encoding": st.sampled_from(["text", "base64", "hex", "", "TEXT"]),
            "data": st.sampled_from(["1", "\ud800", "AAEC", "@@@", "", "x" * HUGE]),
        }
    )
    return text | _absurd_json()


def _errors() -> st.SearchStrategy[Any]:
    error = st.fixed_dictionaries(
        {"type": hostile_text(), "message": hostile_text(), "traceback": st.none() | hostile_text()}
    )
    return error | _absurd_json()


@st.composite
def _valid_item(draw: st.DrawFn) -> dict[str, Any]:
    phase = draw(st.sampled_from(["running", "completed", "assigned"]))
    item: dict[str, Any] = {
        "id": str(draw(st.uuids())),
        "attempt": draw(st.integers(1, 1_000_000)),
        "phase": phase,
        "task_kind": draw(_NAMES),
        "worker_kind": draw(_NAMES),
        "ttl": draw(st.integers(0, 2**31 - 1)),
    }
    if phase == "assigned":
        item["error"] = {"type": "ValueError", "message": draw(hostile_text()), "traceback": None}
        return item
    item["executed_by"] = draw(st.none() | hostile_text())
    item["started_at"] = draw(st.none() | _timestamps())
    if phase == "completed":
        item["completed_at"] = draw(st.none() | _timestamps())
        item["is_error"] = draw(st.booleans())
        data = draw(st.sampled_from(["1", '{"n": 2}', ""]))
        item["output"] = {"content_type": "application/json", "encoding": "text", "data": data}
        item["error"] = None
    return item


#: Edge values per event field (any field also takes an absurd JSON value or is removed).
_ITEM_EDGES: dict[str, st.SearchStrategy[Any]] = {
    "id": st.sampled_from(_EDGE_IDS),
    "attempt": st.sampled_from([0, 1_000_001, True, "1", 1.0]),
    "phase": st.sampled_from(["RUNNING", "failed", "", "assigned", "completed"]),
    "task_kind": st.sampled_from(EDGE_KINDS),
    "worker_kind": st.sampled_from(EDGE_KINDS),
    "ttl": st.sampled_from([-1, 2**31, False, "60"]),
    "executed_by": hostile_text(),
    "started_at": st.sampled_from(EDGE_TIMESTAMPS),
    "completed_at": st.sampled_from(EDGE_TIMESTAMPS),
    "is_error": st.sampled_from([0, 1, "true", None]),
    "output": _payloads(),
    "error": _errors(),
    "unknown-field": _absurd_json(),
}


@st.composite
def update_items(draw: st.DrawFn, *, max_changes: int = 2) -> dict[str, Any]:
    """An event-shaped JSON object: a valid event with up to ``max_changes`` fields set to an
    absurd value or removed (none: valid). Values marked raw are written verbatim by
    :func:`updates_bodies` (``1e999``, ``NaN``, lone-surrogate escapes, deep nesting)."""
    item = draw(_valid_item())
    for _ in range(min(draw(st.sampled_from([0, 1, 1, 2])), max_changes)):
        name = draw(st.sampled_from(sorted(_ITEM_EDGES)))
        choice = draw(st.integers(0, 2))
        if choice == 0:
            item.pop(name, None)
        else:
            item[name] = draw(_ITEM_EDGES[name] if choice == 1 else _absurd_json())
    return item


@st.composite
def updates_bodies(draw: st.DrawFn, *, max_items: int = 3) -> bytes:
    """The body of an ``updates`` message: a JSON array of :func:`update_items` (compact or
    spaced, escaped or raw UTF-8), or an array or document that is wrong as a whole."""
    items: list[Any] = draw(st.lists(update_items(), min_size=1, max_size=max_items))
    shape = draw(st.sampled_from(["array"] * 6 + ["empty", "object", "scalar", "nested", "junk"]))
    if shape == "empty":
        items = []
    elif shape == "object":
        return _dump({"events": items}, True).encode()
    elif shape == "scalar":
        return draw(st.sampled_from([b"null", b"1", b'"[]"', b"NaN", b"1e999"]))
    elif shape == "nested":
        items = [items]
    ascii_only = draw(st.booleans())
    text = _dump(items, ascii_only)
    if shape == "junk":
        text += draw(st.sampled_from(["]", ",", " x", "\x00"]))
    # raw UTF-8 text keeps a lone surrogate as three bytes that are not UTF-8
    return text.encode("utf-8", "surrogatepass")


@st.composite
def _updates_headers(draw: st.DrawFn) -> dict[str, str]:
    base = {"tacoq-version": WIRE_VERSION, "tacoq-event": "updates", "tacoq-count": "1"}
    edges = {k: _ASSIGNMENT_EDGES[k] for k in ("tacoq-version", "tacoq-event", "tacoq-count")}
    changes = [draw(_mutation(edges))] if draw(st.sampled_from([False] * 3 + [True])) else []
    return _mutated(base, changes)


def updates_envelopes() -> st.SearchStrategy[Envelope]:
    """``updates`` messages: mostly the right content type and :func:`updates_bodies`."""
    content_type = st.just(UPDATES_CONTENT_TYPE) | content_types()
    body = updates_bodies() | bodies()
    return st.builds(Envelope, _updates_headers(), content_type, body)


def unknown_kind_envelopes() -> st.SearchStrategy[Envelope]:
    """Well-formed messages of kinds this TacoQ does not know (version 1): forward compatible."""
    kind = st.from_regex(r"[a-z][a-z0-9-]{0,63}", fullmatch=True).filter(
        lambda k: k not in ("assign", "updates")
    )
    headers = st.builds(lambda k: {"tacoq-version": WIRE_VERSION, "tacoq-event": k}, kind)
    return st.builds(Envelope, headers, content_types(), bodies())


def hostile_envelopes(*, task_kinds: Sequence[str] = ()) -> st.SearchStrategy[Envelope]:
    """Any envelope: random tables, near-valid assignments (often of one of ``task_kinds``)
    and updates, unknown kinds."""
    anything = st.builds(Envelope, header_tables(), content_types(), bodies())
    return st.one_of(
        anything,
        assignment_envelopes(task_kinds=task_kinds),
        updates_envelopes(),
        unknown_kind_envelopes(),
    )


# -- AMQP field tables -----------------------------------------------------------------------------


def amqp_values(*, floats: bool = True, max_leaves: int = 6) -> st.SearchStrategy[Any]:
    """Values of an AMQP field table, nested tables and arrays included (bounded nesting).

    Leaves: text of any valid Unicode, bytes (invalid UTF-8 too), integers of 64 bits at
    most, booleans, ``None``, decimals (scale 0-255, a 32-bit mantissa), aware UTC datetimes
    a 64-bit timestamp holds, and, with ``floats``, any double (NaN, infinities, -0.0, 1e300).
    pika 1.x cannot send floats: pass ``floats=False`` for what it publishes.
    """
    decimal = st.builds(
        lambda raw, scale: Decimal(raw).scaleb(-scale),
        st.integers(-(2**31), 2**31 - 1),
        st.integers(0, 30),
    )
    moments = st.datetimes(datetime(1970, 1, 1), datetime(9999, 12, 31), timezones=st.just(UTC))
    leaves = st.one_of(
        st.text(max_size=16) | st.sampled_from(["", "x" * 300, "\x00"]),
        st.binary(max_size=16) | st.sampled_from([b"\xff\xfe", b"\xed\xa0\x80"]),
        st.integers(-(2**63), 2**63 - 1) | st.sampled_from([-(2**63), 2**63 - 1, 2**32]),
        st.booleans(),
        st.none(),
        decimal,
        moments,
    )
    if floats:
        leaves = leaves | st.floats() | st.sampled_from([float("nan"), float("inf"), 1e300])
    names = st.text(max_size=8).filter(lambda name: name not in RESERVED_AMQP_HEADERS)
    return st.recursive(
        leaves,
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(names, inner, max_size=3),
        max_leaves=max_leaves,
    )


def amqp_header_tables(*, floats: bool = True) -> st.SearchStrategy[dict[str, Any]]:
    """AMQP header tables: ``tacoq-*`` and random names (never ``CC``/``BCC``), any value of
    :func:`amqp_values`, sometimes a whole valid-looking assignment with AMQP-typed values."""
    names = _header_names().filter(_amqp_name)
    table = st.dictionaries(names, amqp_values(floats=floats), max_size=5)
    assignment = st.builds(
        lambda base, extra: {**base, **extra},
        assignment_headers(max_changes=1).map(
            lambda headers: {
                k: v for k, v in headers.items() if _amqp_name(k) and not _has_surrogate(v)
            }
        ),
        st.dictionaries(st.sampled_from(_TACOQ_HEADERS), amqp_values(floats=floats), max_size=2),
    )
    return table | assignment


def _amqp_name(name: str) -> bool:
    """Whether ``name`` can be a header name in AMQP: a short string of UTF-8 (255 bytes)."""
    return not _has_surrogate(name) and len(name.encode("utf-8")) <= 255


def _has_surrogate(text: str) -> bool:
    return any("\ud800" <= char <= "\udfff" for char in text)


# -- drawing outside a test ------------------------------------------------------------------------


def draw_examples(strategy: st.SearchStrategy[T], count: int, *, seed_value: int = 0) -> list[T]:
    """``count`` values of ``strategy``, for scenarios that publish many drawn messages
    outside a ``@given`` test.

    The same seed gives the same values for the same hypothesis version and the same local
    modules: hypothesis also draws constants it finds in the source of loaded modules that are
    neither installed nor tests, so running TacoQ from a source tree (``PYTHONPATH``) draws
    other values than running it installed (as ``nox`` does). Check what was drawn, never
    what a seed is expected to draw."""
    found: list[T] = []

    @seed(seed_value)
    @settings(
        max_examples=count,
        database=None,
        phases=[Phase.generate],
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def collect(value: T) -> None:
        if len(found) < count:
            found.append(value)

    collect()
    if len(found) < count:
        raise ValueError(f"drew {len(found)} values, not {count}: the strategy is too narrow")
    return found
