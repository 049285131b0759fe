"""What a ``postgresql://`` store URL means: the libpq connection, the schema, the channel.

Import-light (standard library and :mod:`tacoq.config` only), so the hook module and the CLI can
validate a URL without importing psycopg.

TacoQ reads two query parameters of its own and passes every other one to libpq unchanged:

- ``schema=NAME``: the Postgres schema that holds the namespace's tables (default: derived from
  the namespace, ``tacoq_<namespace>``, see :func:`schema_for_namespace`);
- ``migrate=false``: do not run migrations on connect (default ``true``); the store then checks
  that the schema is up to date and refuses to start otherwise.

``application_name`` defaults to ``tacoq`` so operators can find TacoQ's sessions in
``pg_stat_activity``.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from tacoq.config import redact_url
from tacoq.errors import ConfigError

__all__ = [
    "DEFAULT_APPLICATION_NAME",
    "SCHEMES",
    "PostgresSettings",
    "channel_for_schema",
    "parse_store_url",
    "schema_for_namespace",
]

#: The URL schemes this plugin owns.
SCHEMES = ("postgresql", "postgres")
#: ``application_name`` of TacoQ's sessions unless the URL sets one.
DEFAULT_APPLICATION_NAME = "tacoq"
#: Postgres truncates identifiers longer than this many bytes (NAMEDATALEN - 1).
MAX_IDENTIFIER = 63

_SIMPLE_NAMESPACE = re.compile(r"^[a-z0-9_]+$")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


@dataclass(frozen=True, slots=True)
class PostgresSettings:
    """A parsed store URL. ``conninfo`` may hold a password: never log or print it."""

    conninfo: str
    display_url: str
    schema: str
    channel: str
    migrate: bool
    application_name: str


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def schema_for_namespace(namespace: str) -> str:
    """The schema of a namespace: ``tacoq_<namespace>`` when that is a plain lower-case name.

    Otherwise (upper case, ``-`` or ``.``, or too long) the namespace is sanitized and a short
    hash of the original is appended, so two distinct namespaces never share a schema.
    """
    if _SIMPLE_NAMESPACE.match(namespace) and len(namespace) <= MAX_IDENTIFIER - len("tacoq_"):
        return f"tacoq_{namespace}"
    safe = re.sub(r"[^a-z0-9_]", "_", namespace.lower())[:40]
    return f"tacoq_{safe}_{_digest(namespace)}"


def channel_for_schema(schema: str) -> str:
    """The LISTEN/NOTIFY channel that carries the schema's completed task ids."""
    channel = f"{schema}.completed"
    if len(channel.encode()) <= MAX_IDENTIFIER:
        return channel
    return f"{schema.encode()[:40].decode(errors='ignore')}.{_digest(schema)}.completed"


def _flag(name: str, value: str, url: str) -> bool:
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ConfigError(
        f"invalid {name}={value!r} in store URL {redact_url(url)!r}: use true or false"
    )


def parse_store_url(url: str, namespace: str) -> PostgresSettings:
    """Split a ``postgresql://`` or ``postgres://`` URL into libpq's part and TacoQ's options."""
    display = redact_url(url)
    try:
        parts = urlsplit(url)
    except ValueError:
        raise ConfigError(f"invalid Postgres store URL {display!r}") from None
    if parts.scheme.lower() not in SCHEMES:
        raise ConfigError(f"{display!r} is not a postgresql:// or postgres:// URL")
    schema: str | None = None
    migrate = True
    passed: list[tuple[str, str]] = []
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key == "schema":
            schema = value
        elif key == "migrate":
            migrate = _flag(key, value, url)
        else:
            passed.append((key, value))
    if schema is None:
        schema = schema_for_namespace(namespace)
    elif not schema or "\x00" in schema or len(schema.encode()) > MAX_IDENTIFIER:
        raise ConfigError(
            f"invalid schema={schema!r} in store URL {display!r}: use 1-63 bytes, no NUL"
        )
    keys = {key for key, _ in passed}
    application_name = dict(passed).get("application_name", DEFAULT_APPLICATION_NAME)
    if "application_name" not in keys:
        passed.append(("application_name", application_name))
    # libpq accepts both schemes; "postgresql" is the canonical one.
    conninfo = urlunsplit(parts._replace(scheme="postgresql", query=urlencode(passed)))
    return PostgresSettings(
        conninfo=conninfo,
        display_url=redact_url(urlunsplit(parts._replace(query=""))),
        schema=schema,
        channel=channel_for_schema(schema),
        migrate=migrate,
        application_name=application_name,
    )
