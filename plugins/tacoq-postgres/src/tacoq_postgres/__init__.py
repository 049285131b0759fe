"""TacoQ's PostgreSQL store plugin (``postgresql://`` and ``postgres://`` store URLs).

Import-light on purpose: ``tacoq_postgres.hooks`` is imported by every ``tacoq`` command, and
importing it imports this package first, so nothing here may import psycopg. The store lives in
:mod:`tacoq_postgres.store`.
"""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.5.0.dev0"
