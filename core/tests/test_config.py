"""Settings: explicit > environment > default, namespace validation, URL redaction."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tacoq.config import (
    DEFAULT_BROKER_URL,
    DEFAULT_NAMESPACE,
    DEFAULT_RELAY_URL,
    DEFAULT_STORE_URL,
    ENV_BROKER_URL,
    ENV_NAMESPACE,
    ENV_RELAY_URL,
    ENV_STORE_URL,
    redact_url,
    resolve_broker_url,
    resolve_namespace,
    resolve_relay_url,
    resolve_store_url,
    url_scheme,
)
from tacoq.errors import ConfigError

Resolver = Callable[..., str]

RESOLVERS = [
    pytest.param(resolve_broker_url, ENV_BROKER_URL, DEFAULT_BROKER_URL, "amqp://h/", id="broker"),
    pytest.param(resolve_store_url, ENV_STORE_URL, DEFAULT_STORE_URL, "sqlite:///x.db", id="store"),
    pytest.param(resolve_relay_url, ENV_RELAY_URL, DEFAULT_RELAY_URL, "http://r:9/", id="relay"),
    pytest.param(resolve_namespace, ENV_NAMESPACE, DEFAULT_NAMESPACE, "ns-1", id="namespace"),
]


@pytest.mark.parametrize(("resolve", "env_name", "default", "value"), RESOLVERS)
def test_explicit_wins_over_env(resolve: Resolver, env_name: str, default: str, value: str) -> None:
    assert resolve("explicit", env={env_name: value}) == "explicit"


@pytest.mark.parametrize(("resolve", "env_name", "default", "value"), RESOLVERS)
def test_env_wins_over_default(resolve: Resolver, env_name: str, default: str, value: str) -> None:
    assert resolve(None, env={env_name: value}) == value
    assert resolve(None, env={env_name: f"  {value}\n"}) == value


@pytest.mark.parametrize(("resolve", "env_name", "default", "value"), RESOLVERS)
def test_default_when_nothing_is_set(
    resolve: Resolver, env_name: str, default: str, value: str
) -> None:
    assert resolve(None, env={}) == default
    assert resolve(None, env={env_name: "   "}) == default
    assert resolve("", env={}) == default


@pytest.mark.parametrize(("resolve", "env_name", "default", "value"), RESOLVERS)
def test_process_environment_is_the_default_env(
    resolve: Resolver,
    env_name: str,
    default: str,
    value: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(env_name, value)
    assert resolve() == value
    monkeypatch.delenv(env_name)
    assert resolve() == default


def test_defaults() -> None:
    assert DEFAULT_BROKER_URL == "memory://"
    assert DEFAULT_STORE_URL == "memory://"
    assert DEFAULT_NAMESPACE == "tacoq"


@pytest.mark.parametrize("namespace", ["a", "tacoq", "test-1.run_2", "9lives", "x" * 63])
def test_valid_namespaces(namespace: str) -> None:
    assert resolve_namespace(namespace) == namespace


@pytest.mark.parametrize(
    "namespace", ["-leading", ".dot", "has space", "slash/no", "ünï", "x" * 64, "a:b"]
)
def test_invalid_namespace_is_named(namespace: str) -> None:
    with pytest.raises(ConfigError) as info:
        resolve_namespace(namespace)
    assert repr(namespace) in str(info.value)
    assert "1-63" in str(info.value)


def test_invalid_namespace_from_env_is_refused() -> None:
    with pytest.raises(ConfigError, match="invalid namespace 'bad name'"):
        resolve_namespace(env={ENV_NAMESPACE: "bad name"})


@pytest.mark.parametrize(
    ("url", "scheme"),
    [
        ("memory://", "memory"),
        ("AMQP://guest:guest@localhost/", "amqp"),
        ("postgresql+psycopg://u@h/db", "postgresql+psycopg"),
        ("sqlite:///relative.db", "sqlite"),
    ],
)
def test_url_scheme(url: str, scheme: str) -> None:
    assert url_scheme(url) == scheme


@pytest.mark.parametrize("url", ["localhost:5672", "", "://host", "amqp:/u:pw@host"])
def test_url_without_scheme_is_refused(url: str) -> None:
    with pytest.raises(ConfigError, match="not a URL"):
        url_scheme(url)


@pytest.mark.parametrize(
    ("url", "redacted"),
    [
        ("amqp://guest:hunter2@rabbit:5672/vhost", "amqp://guest:***@rabbit:5672/vhost"),
        ("postgresql://app:s3cr%40t@db/tacoq?sslmode=require", "postgresql://app:***@db/tacoq?sslmode=require"),
        ("amqp://:onlypass@rabbit/", "amqp://:***@rabbit/"),
        ("amqp://user:p@ss@rabbit/", "amqp://user:***@rabbit/"),
        # unescaped '/', '?' and '#' in a password: hide it rather than print it
        ("postgresql://app:pa/ss@db/tacoq", "postgresql://app:***@db/tacoq"),
        ("amqp://app:pa?ss@rabbit/", "amqp://app:***@rabbit/"),
        ("amqp://app:pa#ss@rabbit/", "amqp://app:***@rabbit/"),
    ],
)  # fmt: skip
def test_redact_url_hides_passwords(url: str, redacted: str) -> None:
    assert redact_url(url) == redacted


@pytest.mark.parametrize(
    "url",
    ["memory://", "amqp://guest@rabbit/", "sqlite:///tmp/x.db", "http://127.0.0.1:8080"],
)
def test_redact_url_leaves_urls_without_passwords_alone(url: str) -> None:
    assert redact_url(url) == url


def test_redact_url_of_an_unparseable_url() -> None:
    assert redact_url("http://[::1") == "<unparseable URL>"


@pytest.mark.parametrize("url", ["user:hunter2@host", "amqp:/guest:hunter2@host/"])
def test_url_scheme_error_never_shows_the_password(url: str) -> None:
    with pytest.raises(ConfigError) as info:
        url_scheme(url)
    assert "hunter2" not in str(info.value)
    assert "***" in str(info.value)


@pytest.mark.parametrize(
    "url",
    [
        "amqp://guest:guest@127.0.0.1:5672/",
        "amqps://user:p%2Fss%40w%3Frd@rabbit:5671/%2F",
        "amqp://rabbit/vhost",
        "amqp://rabbit/v%40host",
        "postgresql://postgres@127.0.0.1:5432/test",
        "postgresql:///db?host=/var/run/postgresql&user=me",
        "postgresql://db.example:5432/tacoq?user=me@server&password=x",
        "sqlite:///data/a@b.db",
        "sqlite:////abs/path.db",
        "memory://",
        "memory://name",
    ],
)
def test_urls_whose_user_part_is_readable_pass(url: str) -> None:
    url_scheme(url)


@pytest.mark.parametrize(
    "url",
    [
        "amqp://guest:pa/ss@127.0.0.1:5672/",
        "amqp://guest:pa?ss@127.0.0.1:5672/",
        "amqp://guest:pa#ss@127.0.0.1:5672/",
        "amqp://guest:12/ss@127.0.0.1:5672/",
        "postgresql://postgres:s3/cr3t@db/tacoq",
        "amqp://rabbit/v@host",
    ],
)
def test_a_user_part_hiding_the_url_is_one_clear_error(url: str) -> None:
    with pytest.raises(ConfigError, match="percent-encode") as caught:
        url_scheme(url)
    message = str(caught.value)
    assert "%2F" in message
    for secret in ("pa/ss", "pa?ss", "pa#ss", "12/ss", "s3/cr3t"):
        assert secret not in message
