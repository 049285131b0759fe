"""Strict JSON: the JSON TacoQ accepts, writes and shows as JSON.

JSON (RFC 8259) has no NaN or infinities, its text is UTF-8, and a number beyond the range of a
double (``1e999``) is not a value two readers agree on. TacoQ also bounds nesting: arrays and
objects at most :data:`MAX_JSON_DEPTH` levels deep, so that every parser and serializer a
payload meets can carry it (pydantic stops at 255 levels, Python's ``json`` near 1,000) and a
page of the relay's API that shows it can always be written.

- :func:`loads` parses strict JSON text, or raises :class:`StrictJSONError` saying what is wrong
  (invalid UTF-8, NaN or Infinity, a number out of range, a lone surrogate escape, too deep);
- :func:`deeper_than` tells whether JSON text nests deeper than a limit, at C speed for any
  payload with fewer brackets than the limit;
- :func:`non_finite` finds a NaN or infinity in a Python value, with its path.
"""

from __future__ import annotations

import math
import re
from typing import Any

import pydantic_core

__all__ = ["MAX_JSON_DEPTH", "StrictJSONError", "deeper_than", "loads", "non_finite"]

#: The deepest nesting of arrays and objects a JSON payload may have.
MAX_JSON_DEPTH = 128

# What the depth check keeps of JSON text: quotes and brackets, once escapes are gone.
_ESCAPE = re.compile(rb"\\.", re.DOTALL)
_OTHER_BYTES = bytes(b for b in range(256) if b not in b'"[]{}')
_QUOTED = re.compile(rb'"[^"]*"')
_BRACES_AS_BRACKETS = bytes.maketrans(b"{}", b"[]")
#: Pair-removal passes :func:`deeper_than` makes before it walks the brackets.
_PASSES = 8
# A number that may be beyond a double's range: an exponent of 3+ digits, or 309+ digits.
_MAYBE_HUGE = re.compile(rb"-?[0-9]*(?:[0-9]{309}|(?:\.[0-9]+)?[eE]\+?0*[1-9][0-9]{2,})")
_LONE_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


class StrictJSONError(ValueError):
    """JSON text TacoQ does not accept; the message says what is wrong with it."""


def deeper_than(data: bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """True when the JSON text ``data`` nests arrays and objects more than ``limit`` deep.

    Brackets inside strings do not count; text that is not JSON is never "too deep". Text with
    at most ``limit`` opening brackets is answered by counting them. Otherwise only the brackets
    outside strings are kept, a few passes remove every innermost pair (each pass lowers the
    depth by one), and the rest is walked in steps as long as the room left below the limit,
    whose brackets are counted at C speed: a few milliseconds per MiB, even for text built to be
    slow.
    """
    if data.count(b"[") + data.count(b"{") <= limit:
        return False
    if b"\\" in data:
        data = _ESCAPE.sub(b"", data)
    kept = data.translate(None, _OTHER_BYTES)
    if b'"' in kept:
        kept = _QUOTED.sub(b"", kept)
    skeleton = kept.translate(_BRACES_AS_BRACKETS)
    for _ in range(min(_PASSES, limit)):
        shorter = skeleton.replace(b"[]", b"")
        if len(shorter) == len(skeleton):
            return False  # unbalanced: not JSON
        if not shorter:
            return False
        skeleton, limit = shorter, limit - 1
    return _deeper_walking(skeleton, limit)


def _deeper_walking(skeleton: bytes, limit: int) -> bool:
    """Whether brackets ``skeleton`` (``[`` and ``]`` only) nest deeper than ``limit``."""
    depth = position = 0
    size = len(skeleton)
    while position < size:
        room = limit - depth
        if room > 0:  # no step of ``room`` brackets can go past the limit: count them
            end = min(position + room, size)
            depth += 2 * skeleton.count(b"[", position, end) - (end - position)
            position = end
        elif skeleton[position] == ord("["):
            return True
        else:  # at the limit: skip the closing brackets that follow, at once
            following = skeleton.find(b"[", position)
            end = size if following < 0 else following
            depth -= end - position
            position = end
    return False


def loads(data: bytes | str, *, max_depth: int | None = MAX_JSON_DEPTH) -> Any:
    """Parse strict JSON: UTF-8, no NaN or Infinity, finite numbers, no lone surrogate escapes,
    arrays and objects at most ``max_depth`` deep (``None``: as deep as the parser goes, about
    200 levels, for a document that wraps payloads). Raises :class:`StrictJSONError`."""
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else bytes(data)
    try:
        value = pydantic_core.from_json(raw, allow_inf_nan=False)
    except ValueError as exc:
        raise StrictJSONError(_why_not(raw, exc, max_depth)) from None
    if max_depth is not None and deeper_than(raw, max_depth):
        raise StrictJSONError(_too_deep(max_depth))
    if _MAYBE_HUGE.search(raw) is not None and non_finite(value) is not None:
        # the parser made an overflowing number infinite: name the first such number
        huge = next(
            (m.group() for m in _MAYBE_HUGE.finditer(raw) if math.isinf(float(m.group()))), b"?"
        )
        raise StrictJSONError(
            f"the number {huge.decode()} is beyond the range of JSON numbers (about ±1.8e308)"
        )
    return value


def _too_deep(limit: int) -> str:
    return f"nested deeper than {limit} levels of arrays and objects (the limit)"


def _why_not(raw: bytes, exc: ValueError, limit: int | None) -> str:
    """Say why ``raw`` is not strict JSON (``exc`` is the parser's complaint)."""
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as bad:
        return f"not valid UTF-8 at byte {bad.start}"
    message = str(exc)
    if "recursion limit" in message:
        return _too_deep(MAX_JSON_DEPTH if limit is None else limit)
    try:
        pydantic_core.from_json(raw, allow_inf_nan=True)
    except ValueError:
        pass
    else:
        return f"NaN, Infinity and -Infinity are not JSON ({message})"
    if _LONE_SURROGATE_ESCAPE.search(raw) is not None and "escape" in message:
        return f"a lone surrogate escape such as \\ud800 is not a character ({message})"
    return f"not valid JSON: {message}"


def non_finite(value: Any) -> tuple[str, float] | None:
    """The path (``$``, ``$.a[2]``) and value of the first NaN or infinity in ``value``.

    Looks through dicts, lists, tuples, sets and frozensets; ``None`` when there is none. Paths
    are only spelled out for the value found.
    """
    stack: list[tuple[Any, tuple[Any, ...]]] = [(value, ())]
    while stack:
        item, where = stack.pop()
        if isinstance(item, float):
            if not math.isfinite(item):
                return _spell(where), item
        elif isinstance(item, dict):
            stack.extend((sub, (where, key)) for key, sub in reversed(list(item.items())))
        elif isinstance(item, list | tuple):
            stack.extend((sub, (where, i)) for i, sub in reversed(list(enumerate(item))))
        elif isinstance(item, set | frozenset):
            stack.extend((sub, (where, None)) for sub in item)
    return None


def _spell(where: tuple[Any, ...]) -> str:
    """``$.a[2]`` from the linked steps ``(((), "a"), 2)``."""
    steps: list[str] = []
    while where:
        where, step = where
        steps.append("[*]" if step is None else f"[{step}]" if type(step) is int else f".{step}")
    return "$" + "".join(reversed(steps))
