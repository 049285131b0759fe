"""Pytest plugin: the URLs of the real services (RabbitMQ, PostgreSQL) that service tests need.

Load it from a ``conftest.py``::

    pytest_plugins = ["tacoq.testing.services"]

and ask for the session fixtures ``amqp_url`` and ``postgres_url``. Each one is found, in order:

1. from an environment variable (``TACOQ_TEST_AMQP_URL``, ``TACOQ_TEST_POSTGRES_URL``);
2. otherwise, when a Docker engine answers and pytest-docker is installed, by starting
   ``tests/docker-compose.yml`` (under the rootdir) through pytest-docker and waiting until the
   service's port accepts connections;
3. otherwise the test is skipped, with a reason that names the variable to set.

When ``TACOQ_REQUIRE_SERVICES=1`` (CI sets it) a would-be skip is a failure with the same
reason, so a service test can never pass CI by being skipped. Tests that use either fixture get
the ``service`` marker, so ``-m "not service"`` deselects them.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from dataclasses import dataclass
from typing import NoReturn, Protocol, cast
from urllib.parse import urlsplit

import pytest

__all__ = [
    "AMQP",
    "POSTGRES",
    "REQUIRE_SERVICES_VAR",
    "ServiceSpec",
    "port_answers",
    "service_url",
    "services_required",
]

REQUIRE_SERVICES_VAR = "TACOQ_REQUIRE_SERVICES"
"""Set to ``1`` to turn a skipped service test into a failure."""

DOCKER_PLUGIN_NAME = "docker"
"""The name pytest-docker registers under (its ``pytest11`` entry point)."""

_DOCKER_PROBE_TIMEOUT_S = 5.0
_SERVICE_WAIT_TIMEOUT_S = 90.0
_docker_probe_key = pytest.StashKey[str | None]()


@dataclass(frozen=True)
class ServiceSpec:
    """One service a test can ask for: where its URL comes from and how Docker provides it."""

    title: str
    env_var: str
    example_url: str
    compose_service: str
    container_port: int
    url_template: str  # formatted with ``host`` and ``port`` for the Docker-started service

    def docker_url(self, host: str, port: int) -> str:
        """Return the URL of this service started by Docker at ``host:port``."""
        return self.url_template.format(host=host, port=port)


AMQP = ServiceSpec(
    title="RabbitMQ",
    env_var="TACOQ_TEST_AMQP_URL",
    example_url="amqp://guest:guest@127.0.0.1:5672/",
    compose_service="rabbitmq",
    container_port=5672,
    url_template="amqp://guest:guest@{host}:{port}/",
)
POSTGRES = ServiceSpec(
    title="PostgreSQL",
    env_var="TACOQ_TEST_POSTGRES_URL",
    example_url="postgresql://postgres@127.0.0.1:5432/test",
    compose_service="postgres",
    container_port=5432,
    url_template="postgresql://postgres@{host}:{port}/test",
)


class _DockerServices(Protocol):
    """The part of pytest-docker's ``Services`` object used here (it is imported lazily)."""

    def port_for(self, service: str, container_port: int) -> int: ...

    def wait_until_responsive(self, check: object, timeout: float, pause: float) -> None: ...


def services_required() -> bool:
    """Return True when ``TACOQ_REQUIRE_SERVICES=1``: a missing service is then a failure."""
    return os.environ.get(REQUIRE_SERVICES_VAR, "").strip() == "1"


def port_answers(host: str, port: int, timeout: float = 1.0) -> bool:
    """Return True when a TCP connection to ``host:port`` succeeds within ``timeout`` seconds."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def host_and_port(url: str, default_port: int) -> tuple[str, int]:
    """Return the host and port a service URL points at (``default_port`` when it has none)."""
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or default_port


def _probe_docker() -> str | None:
    """Return None when a Docker engine answers ``docker info`` quickly, else why it does not."""
    docker = shutil.which("docker")
    if docker is None:
        return "the docker command is not installed"
    try:
        completed = subprocess.run(
            [docker, "info"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=_DOCKER_PROBE_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return "no Docker engine answered `docker info`"
    if completed.returncode != 0:
        return "no Docker engine answered `docker info`"
    return None


def _docker_unavailable(config: pytest.Config) -> str | None:
    """Return why the Docker fallback cannot run in this session, or None when it can."""
    if not config.pluginmanager.has_plugin(DOCKER_PLUGIN_NAME):
        return "pytest-docker is not installed"
    if _docker_probe_key not in config.stash:  # probe once per session, not per fixture
        config.stash[_docker_probe_key] = _probe_docker()
    return config.stash[_docker_probe_key]


def _skip_or_fail(spec: ServiceSpec, why: str) -> NoReturn:
    """Skip with a reason naming ``spec.env_var``; fail instead when services are required."""
    reason = (
        f"{spec.title} is not available: set {spec.env_var} (e.g. {spec.example_url}) "
        f"or run a Docker engine with pytest-docker installed ({why})"
    )
    if services_required():
        required = f"{REQUIRE_SERVICES_VAR}=1 turns this skip into a failure"
        pytest.fail(f"{reason}; {required}", pytrace=False)
    pytest.skip(reason)


def _start_with_docker(request: pytest.FixtureRequest, spec: ServiceSpec) -> str:
    """Start the compose file through pytest-docker and return the service URL once it answers."""
    docker_services = cast(_DockerServices, request.getfixturevalue("docker_services"))
    host = cast(str, request.getfixturevalue("docker_ip"))
    port = docker_services.port_for(spec.compose_service, spec.container_port)
    docker_services.wait_until_responsive(
        check=lambda: port_answers(host, port),
        timeout=_SERVICE_WAIT_TIMEOUT_S,
        pause=0.5,
    )
    return spec.docker_url(host, port)


def service_url(request: pytest.FixtureRequest, spec: ServiceSpec) -> str:
    """Find the URL of ``spec``'s service: its variable, else Docker, else skip (or fail)."""
    from_env = os.environ.get(spec.env_var, "").strip()
    if from_env:
        return from_env
    why = _docker_unavailable(request.config)
    if why is None:
        try:
            return _start_with_docker(request, spec)
        except Exception as exc:  # the compose command or the wait failed: report why
            why = f"starting it with Docker failed: {type(exc).__name__}: {exc}"
    _skip_or_fail(spec, why)


@pytest.fixture(scope="session")
def amqp_url(request: pytest.FixtureRequest) -> str:
    """The URL of a real RabbitMQ (``TACOQ_TEST_AMQP_URL``, else Docker, else skip)."""
    return service_url(request, AMQP)


@pytest.fixture(scope="session")
def postgres_url(request: pytest.FixtureRequest) -> str:
    """The URL of a real PostgreSQL (``TACOQ_TEST_POSTGRES_URL``, else Docker, else skip)."""
    return service_url(request, POSTGRES)


def pytest_configure(config: pytest.Config) -> None:
    """Declare the ``service`` marker, so projects using ``--strict-markers`` need not."""
    config.addinivalue_line(
        "markers", "service: needs a real RabbitMQ or Postgres (tacoq.testing.services)"
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that uses a service fixture with ``service``."""
    for item in items:
        fixturenames = cast(list[str], getattr(item, "fixturenames", []))
        if "amqp_url" in fixturenames or "postgres_url" in fixturenames:
            item.add_marker(pytest.mark.service)
