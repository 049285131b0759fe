"""The service fixtures of :mod:`tacoq.testing.services`: where URLs come from, skip or fail.

A service test must never pass CI by being skipped: with ``TACOQ_REQUIRE_SERVICES=1`` a missing
service is a failure. The rules are checked in throw-away pytest runs (pytester) whose
environment each test controls.
"""

from __future__ import annotations

import pytest

from tacoq.testing.services import AMQP, POSTGRES, ServiceSpec, host_and_port, port_answers

pytest_plugins = ["pytester"]

SERVICE_VARS = ("TACOQ_TEST_AMQP_URL", "TACOQ_TEST_POSTGRES_URL", "TACOQ_REQUIRE_SERVICES")

INNER_TESTS = """
import os

def test_amqp(amqp_url):
    assert amqp_url == os.environ.get("EXPECTED_AMQP_URL")

def test_postgres(postgres_url):
    assert postgres_url == os.environ.get("EXPECTED_POSTGRES_URL")
"""

NO_DOCKER = ("-p", "no:docker")  # pytest-docker blocked: the Docker fallback is unavailable
QUIET = ("-p", "no:asyncio", "-p", "no:cacheprovider")  # plugins the inner runs do not need


@pytest.fixture
def inner(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """A pytester project using the plugin, run with none of the service variables set."""
    for name in SERVICE_VARS:
        monkeypatch.delenv(name, raising=False)
    # Even where pytest-docker is installed, no engine answers at this address.
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/tacoq-test/docker.sock")
    pytester.makeconftest('pytest_plugins = ["tacoq.testing.services"]\n')
    pytester.makepyfile(test_inner=INNER_TESTS)
    return pytester


def test_without_urls_or_docker_the_service_test_is_skipped_naming_the_variable(
    inner: pytest.Pytester,
) -> None:
    result = inner.runpytest(*QUIET, *NO_DOCKER, "-rs")
    result.assert_outcomes(skipped=2)
    result.stdout.fnmatch_lines(
        [
            "*SKIPPED*RabbitMQ is not available: set TACOQ_TEST_AMQP_URL*",
            "*SKIPPED*PostgreSQL is not available: set TACOQ_TEST_POSTGRES_URL*",
        ],
        consecutive=False,
    )


def test_an_unreachable_docker_engine_also_skips(inner: pytest.Pytester) -> None:
    # pytest-docker is not blocked here: whether or not it is installed, no engine answers.
    result = inner.runpytest(*QUIET, "-rs")
    result.assert_outcomes(skipped=2)
    result.stdout.fnmatch_lines(["*SKIPPED*set TACOQ_TEST_AMQP_URL*"])
    result.stdout.no_fnmatch_line("*docker compose*")


def test_with_require_services_a_would_be_skip_fails(
    inner: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TACOQ_REQUIRE_SERVICES", "1")
    result = inner.runpytest(*QUIET, *NO_DOCKER)
    result.assert_outcomes(errors=2)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        ["*set TACOQ_TEST_AMQP_URL*TACOQ_REQUIRE_SERVICES=1 turns this skip into a failure*"]
    )


def test_require_services_fails_when_docker_is_unreachable_too(
    inner: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TACOQ_REQUIRE_SERVICES", "1")
    result = inner.runpytest(*QUIET)
    result.assert_outcomes(errors=2)


def test_with_the_urls_set_the_fixtures_return_them(
    inner: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    amqp = "amqp://user:secret@rabbit.invalid:5673/vhost"
    postgres = "postgresql://someone@db.invalid:5433/other"
    for name, value in [
        ("TACOQ_TEST_AMQP_URL", amqp),
        ("EXPECTED_AMQP_URL", amqp),
        ("TACOQ_TEST_POSTGRES_URL", postgres),
        ("EXPECTED_POSTGRES_URL", postgres),
        ("TACOQ_REQUIRE_SERVICES", "1"),
    ]:
        monkeypatch.setenv(name, value)
    result = inner.runpytest(*QUIET, *NO_DOCKER)
    result.assert_outcomes(passed=2)


def test_service_tests_carry_the_service_marker(inner: pytest.Pytester) -> None:
    result = inner.runpytest(*QUIET, *NO_DOCKER, "-m", "not service")
    result.assert_outcomes(deselected=2)


@pytest.mark.parametrize(
    ("spec", "url"),
    [
        (AMQP, "amqp://guest:guest@127.0.0.1:5672/"),
        (POSTGRES, "postgresql://postgres@127.0.0.1:5432/test"),
    ],
)
def test_example_urls_point_at_the_standard_ports(spec: ServiceSpec, url: str) -> None:
    assert spec.example_url == url
    assert host_and_port(url, spec.container_port) == ("127.0.0.1", spec.container_port)


def test_the_real_services_answer(amqp_url: str, postgres_url: str) -> None:
    """Skipped (or failed, in CI) by the same rule as every service test."""
    for url, default_port in [(amqp_url, 5672), (postgres_url, 5432)]:
        host, port = host_and_port(url, default_port)
        assert port_answers(host, port, timeout=5.0), f"nothing answers at {host}:{port}"
