"""Settings resolved when a component starts.

Precedence: CLI option > constructor argument > environment > default. The CLI passes its
options as explicit arguments, so every resolver here only needs "explicit, else environment,
else default".
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from urllib.parse import urlsplit, urlunsplit

from tacoq.errors import ConfigError

__all__ = [
    "DEFAULT_BROKER_URL",
    "DEFAULT_NAMESPACE",
    "DEFAULT_RELAY_URL",
    "DEFAULT_STORE_URL",
    "ENV_BROKER_URL",
    "ENV_NAMESPACE",
    "ENV_RELAY_URL",
    "ENV_STORE_URL",
    "check_user_part",
    "redact_url",
    "require_configured",
    "resolve_broker_url",
    "resolve_namespace",
    "resolve_relay_url",
    "resolve_store_url",
    "url_scheme",
]

ENV_BROKER_URL = "TACOQ_BROKER_URL"
ENV_STORE_URL = "TACOQ_STORE_URL"
ENV_NAMESPACE = "TACOQ_NAMESPACE"
ENV_RELAY_URL = "TACOQ_RELAY_URL"

DEFAULT_BROKER_URL = "memory://"
DEFAULT_STORE_URL = "memory://"
DEFAULT_NAMESPACE = "tacoq"
DEFAULT_RELAY_URL = "http://127.0.0.1:8080"

_NAMESPACE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")


def _resolve(explicit: str | None, name: str, default: str, env: Mapping[str, str] | None) -> str:
    if explicit:
        return explicit
    value = (env if env is not None else os.environ).get(name, "").strip()
    return value or default


def require_configured(
    explicit: str | None,
    name: str,
    *,
    what: str,
    option: str,
    command: str,
    env: Mapping[str, str] | None = None,
) -> None:
    """Raise :class:`ConfigError` when neither ``explicit`` nor the environment variable
    ``name`` gives a value: a command that runs as its own process has no default ``what``
    (the in-process ``memory://`` would reach nobody), so it says how to configure one."""
    if explicit or (env if env is not None else os.environ).get(name, "").strip():
        return
    raise ConfigError(f"no {what} configured for {command} (set {name} or pass {option})")


def resolve_broker_url(explicit: str | None = None, env: Mapping[str, str] | None = None) -> str:
    """The broker URL: ``explicit``, else ``TACOQ_BROKER_URL``, else ``memory://``."""
    return _resolve(explicit, ENV_BROKER_URL, DEFAULT_BROKER_URL, env)


def resolve_store_url(explicit: str | None = None, env: Mapping[str, str] | None = None) -> str:
    """The store URL: ``explicit``, else ``TACOQ_STORE_URL``, else ``memory://``."""
    return _resolve(explicit, ENV_STORE_URL, DEFAULT_STORE_URL, env)


def resolve_relay_url(explicit: str | None = None, env: Mapping[str, str] | None = None) -> str:
    """The relay address clients use: ``explicit``, else ``TACOQ_RELAY_URL``, else local."""
    return _resolve(explicit, ENV_RELAY_URL, DEFAULT_RELAY_URL, env)


def resolve_namespace(explicit: str | None = None, env: Mapping[str, str] | None = None) -> str:
    """The namespace every queue and exchange name derives from (default ``tacoq``)."""
    value = _resolve(explicit, ENV_NAMESPACE, DEFAULT_NAMESPACE, env)
    if not _NAMESPACE_RE.match(value):
        raise ConfigError(
            f"invalid namespace {value!r}: use 1-63 letters, digits, '_', '.' or '-', "
            "starting with a letter or digit"
        )
    return value


def url_scheme(url: str) -> str:
    """The lower-cased scheme of ``url``; raises ``ConfigError`` when there is none, or when
    the URL's user part hides the rest of it (:func:`check_user_part`)."""
    scheme, sep, _ = url.partition("://")
    if not sep or not scheme:
        raise ConfigError(f"{redact_url(url)!r} is not a URL (expected scheme://...)")
    check_user_part(url)
    return scheme.lower()


def check_user_part(url: str) -> None:
    """Raise ``ConfigError`` when a password (or user name) holds a reserved character that is
    not percent-encoded: ``/``, ``?`` or ``#`` end the host part early, so URL parsers read the
    password as a port, or the host as a path. Seen as a port that is not a number, or as an
    ``@`` in the path when the host part has none (an ``@`` in a path is written ``%40``)."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError when the "port" is not a number
    except ValueError:
        hidden = True
    else:
        # A query may hold an '@' (libpq's ?user=name@server); a path should not.
        hidden = bool(parts.netloc) and "@" not in parts.netloc and "@" in parts.path
    if hidden:
        raise ConfigError(
            f"the URL {redact_url(url)!r} cannot be read: a '/', '?', '#' or '@' in its password "
            "(or user name) hides part of it; percent-encode them "
            "(/ as %2F, ? as %3F, # as %23, @ as %40)"
        )


def redact_url(url: str) -> str:
    """``url`` with any password replaced by ``***``, safe for logs and errors."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    if parts.password is None:
        # An unescaped '/', '?' or '#' in a password, or a missing "scheme://", hides the
        # password from urlsplit; hide everything from the first ':' of the user part to the
        # last '@' rather than print it.
        head, at, host = url.rpartition("@")
        prefix, sep, userinfo = head.partition("://")
        if not sep:
            prefix, userinfo = "", head
        if at and ":" in userinfo:
            return f"{prefix}{sep}{userinfo.split(':', 1)[0]}:***@{host}"
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))
