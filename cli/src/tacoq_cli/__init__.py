"""The ``tacoq`` command: run workers and the demo, list plugins, mount plugin command groups.

Import-light on purpose: ``tacoq --help`` and ``tacoq plugins`` never import broker or store
client libraries; each command imports what it needs when it runs.
"""

from __future__ import annotations

__all__: list[str] = []
