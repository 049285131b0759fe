"""The serializer contract: what a plugin's ``tacoq_serializers`` hook returns.

A :class:`Serializer` says which Python types it handles and makes a :class:`Codec` bound to one
type. :class:`tacoq.serialization.SerializerRegistry` chooses among the installed ones; the
built-ins are in :mod:`tacoq.builtin.serializers`, and :class:`tacoq.testing.serializer_contract.
SerializerContract` is the suite a plugin's serializer inherits.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

__all__ = ["Codec", "Serializer"]


@runtime_checkable
class Codec(Protocol):
    """A serializer bound to one Python type."""

    content_type: str

    def dump(self, value: Any) -> bytes:
        """Serialize ``value``; raise ``SerializationError`` naming what is wrong."""
        ...

    def load(self, data: bytes) -> Any:
        """Deserialize and validate; raise ``SerializationError`` naming the failing field."""
        ...


@runtime_checkable
class Serializer(Protocol):
    """A family of codecs, chosen by the Python type a handler or publisher uses."""

    name: str
    content_type: str

    def handles(self, tp: Any) -> bool:
        """True when this serializer can make a codec for ``tp``."""
        ...

    def codec(self, tp: Any) -> Codec:
        """A codec bound to ``tp`` (called once per type, then reused)."""
        ...
