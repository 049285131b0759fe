"""Built-in plugin: serializers for bytes, str, pydantic models and JSON values."""

from __future__ import annotations

from collections.abc import Sequence

from tacoq.hookspecs import hookimpl
from tacoq.serializers import (
    BytesSerializer,
    JsonSerializer,
    PydanticModelSerializer,
    Serializer,
    TextSerializer,
)


@hookimpl(trylast=True)
def tacoq_serializers() -> Sequence[Serializer]:
    """Bytes, text and pydantic first; the catch-all JSON serializer last."""
    return [BytesSerializer(), TextSerializer(), PydanticModelSerializer(), JsonSerializer()]
