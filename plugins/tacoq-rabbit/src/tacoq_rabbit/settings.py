"""Options of the RabbitMQ broker, read from the URL's query string or given to the constructor."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from tacoq.config import redact_url
from tacoq.errors import ConfigError

__all__ = ["DEFAULT_CONNECT_TIMEOUT", "DEFAULT_PUBLISH_TIMEOUT", "RabbitSettings", "parse_url"]

#: How long ``publish`` waits for a confirm, including a reconnection (seconds).
DEFAULT_PUBLISH_TIMEOUT = 30.0
#: How long ``connect`` keeps trying before it gives up (seconds).
DEFAULT_CONNECT_TIMEOUT = 10.0
#: The longest pause between two reconnection attempts (seconds).
DEFAULT_MAX_BACKOFF = 5.0

_OURS = ("publish_timeout", "connect_timeout", "max_backoff")


@dataclass(frozen=True, slots=True)
class RabbitSettings:
    """The client URL (our options removed), its redacted form, and our options."""

    client_url: str
    display_url: str
    publish_timeout: float
    connect_timeout: float
    max_backoff: float


def _seconds(name: str, text: str, display: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise ConfigError(f"{name} must be a positive number of seconds in {display!r}")
    return value


def parse_url(
    url: str,
    *,
    connection_name: str,
    publish_timeout: float | None = None,
    connect_timeout: float | None = None,
) -> RabbitSettings:
    """Split ``url`` into the client URL and TacoQ's options (``publish_timeout``,
    ``connect_timeout``, ``max_backoff`` query parameters; constructor arguments win)."""
    display = redact_url(url)
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("amqp", "amqps"):
        raise ConfigError(f"the RabbitMQ broker serves amqp:// and amqps:// URLs, not {display!r}")
    query = parse_qsl(parts.query, keep_blank_values=True)
    ours = {k: v for k, v in query if k in _OURS}
    rest = [(k, v) for k, v in query if k not in _OURS]
    if not any(k == "name" for k, _ in rest):
        rest.append(("name", connection_name))
    client_url = urlunsplit(parts._replace(query=urlencode(rest)))
    return RabbitSettings(
        client_url=client_url,
        display_url=display,
        publish_timeout=publish_timeout
        or _seconds("publish_timeout", ours.get("publish_timeout", "30"), display),
        connect_timeout=connect_timeout
        or _seconds("connect_timeout", ours.get("connect_timeout", "10"), display),
        max_backoff=_seconds("max_backoff", ours.get("max_backoff", "5"), display),
    )
