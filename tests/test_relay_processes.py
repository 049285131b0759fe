"""``tacoq relay`` as a real process on RabbitMQ and PostgreSQL: its limits and its shutdown.

Each test starts the command with options or environment variables, as an operator would, and
talks to it over TCP: a raw socket for the request deadlines, 200 long-polls for the shutdown,
HTTP for the worker kinds and the token file.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tacoq.testing import fresh_namespace

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Relay:
    """A running ``tacoq relay`` process."""

    def __init__(self, proc: subprocess.Popen[str], url: str) -> None:
        self.proc = proc
        self.url = url
        self.stderr = ""

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signum)
        try:
            _, self.stderr = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, self.stderr = self.proc.communicate()
        return self.proc.returncode


@contextmanager
def tacoq_relay(
    amqp_url: str,
    postgres_url: str,
    tmp_path: Path,
    forget: Callable[[str], None],
    *args: str,
    env: Mapping[str, str] | None = None,
    ready_path: str = "/health/live",
    headers: Mapping[str, str] | None = None,
) -> Iterator[Relay]:
    """``tacoq relay`` on a free port in a fresh namespace; URLs passed in the environment."""
    port = free_port()
    namespace = fresh_namespace("procs")
    environment = {k: v for k, v in os.environ.items() if not k.startswith("TACOQ_")}
    environment.update(
        TACOQ_BROKER_URL=amqp_url,
        TACOQ_STORE_URL=postgres_url,
        TACOQ_NAMESPACE=namespace,
        TACOQ_RELAY_PORT=str(port),
    )
    environment.update(env or {})
    proc = subprocess.Popen(
        [sys.executable, "-m", "tacoq_cli", "relay", *args],
        cwd=tmp_path, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    relay = Relay(proc, f"http://127.0.0.1:{port}")
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(relay.url + ready_path, headers=headers, timeout=2).status_code < 500:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None:
                raise AssertionError(f"the relay exited: {proc.communicate()[1]}")
            assert time.monotonic() < deadline, "the relay did not answer within 30 s"
            time.sleep(0.1)
        yield relay
    finally:
        relay.stop()
        forget(namespace)


# -- finding 8: a deadline for the request head ---------------------------------------------------


def test_the_header_deadline_from_the_environment_cuts_a_slow_client_off(
    amqp_url: str, postgres_url: str, tmp_path: Path, forget_namespace: Callable[[str], None]
) -> None:
    env = {"TACOQ_RELAY_HEADER_TIMEOUT": "1"}
    with tacoq_relay(amqp_url, postgres_url, tmp_path, forget_namespace, env=env) as relay:
        with socket.create_connection(("127.0.0.1", int(relay.url.rsplit(":", 1)[1]))) as sock:
            sock.sendall(b"GET /health/live HTTP/1.1\r\nHost: x\r\n")  # and nothing more
            sock.settimeout(5)
            started = time.monotonic()
            answer = b""
            try:
                while chunk := sock.recv(65536):
                    answer += chunk
            except TimeoutError:
                pytest.fail("the relay still held the connection after 5 s")
            assert time.monotonic() - started < 4
        assert answer.startswith(b"HTTP/1.1 408 "), answer


# -- finding 9: SIGTERM answers every pending long-poll -------------------------------------------


def test_sigterm_answers_200_pending_long_polls_with_the_current_state(
    amqp_url: str, postgres_url: str, tmp_path: Path, forget_namespace: Callable[[str], None]
) -> None:
    polls = 200
    with tacoq_relay(
        amqp_url, postgres_url, tmp_path, forget_namespace, "--max-wait", "60"
    ) as relay:
        created = httpx.post(
            f"{relay.url}/tasks",
            json={"task_kind": "sleep", "worker_kind": f"nobody-{uuid.uuid4().hex[:8]}"},
        )
        assert created.status_code == 201, created.text
        task_id = created.json()["id"]

        async def long_polls() -> list[httpx.Response | BaseException]:
            limits = httpx.Limits(max_connections=polls + 10)
            async with httpx.AsyncClient(base_url=relay.url, timeout=60, limits=limits) as http:
                waits = [
                    asyncio.ensure_future(http.get(f"/tasks/{task_id}", params={"wait": 60}))
                    for _ in range(polls)
                ]
                await asyncio.sleep(3)  # every long-poll is now held by the relay
                assert not any(w.done() for w in waits), [w.result() for w in waits if w.done()]
                relay.proc.send_signal(signal.SIGTERM)
                return await asyncio.wait_for(asyncio.gather(*waits, return_exceptions=True), 30)

        answers = asyncio.run(long_polls())
        assert relay.proc.wait(30) == 0
        relay.stop()  # collects stderr
    statuses = [a.status_code if isinstance(a, httpx.Response) else repr(a) for a in answers]
    assert statuses == [200] * polls, {s: statuses.count(s) for s in set(statuses)}
    assert all(a.json()["status"] == "PENDING" for a in answers if isinstance(a, httpx.Response))
    assert "Traceback" not in relay.stderr, relay.stderr


# -- finding 10: --worker-kinds -------------------------------------------------------------------


@pytest.mark.parametrize("how", ["option", "environment"])
def test_worker_kinds_restrict_rest_publishes(
    amqp_url: str,
    postgres_url: str,
    tmp_path: Path,
    forget_namespace: Callable[[str], None],
    how: str,
) -> None:
    args = ("--worker-kinds", "images, mail") if how == "option" else ()
    env = {"TACOQ_RELAY_WORKER_KINDS": "images,mail"} if how == "environment" else {}
    with tacoq_relay(amqp_url, postgres_url, tmp_path, forget_namespace, *args, env=env) as relay:
        ok = httpx.post(f"{relay.url}/tasks", json={"task_kind": "a", "worker_kind": "mail"})
        assert ok.status_code == 201, ok.text
        refused = httpx.post(f"{relay.url}/tasks", json={"task_kind": "a", "worker_kind": "x"})
        assert refused.status_code == 422, refused.text
        assert "worker_kind" in refused.json()["error"]["message"]


# -- finding 12: the token from a file ------------------------------------------------------------


def test_the_token_can_come_from_a_file_and_is_never_printed(
    amqp_url: str, postgres_url: str, tmp_path: Path, forget_namespace: Callable[[str], None]
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("file-secret-4242\n")
    auth = {"Authorization": "Bearer file-secret-4242"}
    with tacoq_relay(
        amqp_url,
        postgres_url,
        tmp_path,
        forget_namespace,
        "--token-file",
        str(token_file),
        headers=auth,
    ) as relay:
        assert httpx.get(f"{relay.url}/tasks").status_code == 401
        assert httpx.get(f"{relay.url}/tasks", headers=auth).status_code == 200
        assert httpx.get(f"{relay.url}/health", headers=auth).status_code == 200
        assert relay.stop() == 0
    assert "file-secret-4242" not in relay.stderr
