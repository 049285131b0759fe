"""One module per core command; each registers itself on the app with ``register(app)``."""

from __future__ import annotations

__all__: list[str] = []
