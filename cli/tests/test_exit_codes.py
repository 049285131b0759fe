"""The exit codes documented in docs/cli.md ("Exit codes") are the codes ``tacoq`` exits with.

The table is read from the document: for each row, its example command runs as a real ``tacoq``
process against a real ``tacoq relay`` and ``tacoq worker`` (processes too, on RabbitMQ and
PostgreSQL, in a fresh namespace removed afterwards), and must exit with the row's code. A row
without a case below, a case without a row, or a code missing from the table fails.

``ID`` in an example is a task published first to a worker kind no worker serves, so it stays
``PENDING``. The example of 130 is interrupted: SIGINT is sent once the process is waiting on
the relay (its connection to the relay's port is open), as Ctrl-C in a terminal would.
"""

from __future__ import annotations

import asyncio
import os
import re
import shlex
import signal
import socket
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tacoq.relay.client import SyncRelayClient
from tacoq.testing import fresh_namespace
from tacoq.testing.processes import ChildProcess, clean_environ, tacoq_argv
from tacoq_cli.errors import (
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_TASK_FAILED,
    EXIT_TIMED_OUT,
    EXIT_USAGE,
)

CLI_DOC = Path(__file__).resolve().parents[2] / "docs" / "cli.md"
#: The worker kind and task kind the examples name.
KIND = "shapes"
#: A worker kind no worker serves.
IDLE = "nobody"
APP_SOURCE = f"""
import tacoq

worker = tacoq.WorkerApp({KIND!r}, name="exit-codes")


@worker.task
async def area(req: dict[str, int]) -> int:
    if req["w"] < 0:
        raise ValueError("negative width")
    return req["w"] * req["h"]
"""


@dataclass(frozen=True)
class Case:
    """How a row's example runs: whether ``ID`` is replaced by a task no worker runs, and
    whether the process is interrupted once it waits."""

    pending_task: bool = False
    interrupt: bool = False


#: One case per documented code.
CASES = {
    0: Case(),
    EXIT_ERROR: Case(),
    EXIT_USAGE: Case(),
    EXIT_TASK_FAILED: Case(),
    EXIT_TIMED_OUT: Case(pending_task=True),
    EXIT_INTERRUPTED: Case(pending_task=True, interrupt=True),
}


def documented() -> dict[int, str]:
    """``{code: example command}`` from the table of docs/cli.md's "Exit codes" section (the
    first code span of the Example column)."""
    text = CLI_DOC.read_text()
    section = text.split("\n## Exit codes\n", 1)[1].split("\n## ", 1)[0]
    rows: dict[int, str] = {}
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[0].isdigit():
            example = re.search(r"`([^`]+)`", cells[2])
            assert example is not None, f"row {cells[0]} has no example command: {line}"
            assert int(cells[0]) not in rows, f"code {cells[0]} is documented twice"
            rows[int(cells[0])] = example[1]
    return rows


ROWS = documented()


def test_every_code_is_documented_once_and_has_a_case() -> None:
    codes = {0, EXIT_ERROR, EXIT_USAGE, EXIT_TASK_FAILED, EXIT_TIMED_OUT, EXIT_INTERRUPTED}
    assert set(ROWS) == codes
    assert set(CASES) == codes


@dataclass(frozen=True)
class System:
    """A running relay and worker: the relay's URL and the environment for ``tacoq``."""

    url: str
    env: dict[str, str]
    cwd: Path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _until_ready(url: str, relay: ChildProcess, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(f"{url}/health/ready", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert relay.alive(), f"the relay exited:\n{relay.output}"
        assert time.monotonic() < deadline, f"the relay was not ready in {timeout}s:\n{relay.tail}"
        time.sleep(0.1)


@pytest.fixture(scope="module")
def system(
    amqp_url: str, postgres_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[System]:
    """``tacoq relay`` and ``tacoq worker`` processes in a fresh namespace; its queues,
    exchanges and schema are removed afterwards."""
    from tacoq_postgres.settings import schema_for_namespace
    from tacoq_postgres.testing import drop_schemas, worker_kinds_in
    from tacoq_rabbit.link import delete_namespace

    cwd = tmp_path_factory.mktemp("exit-codes")
    (cwd / "exit_app.py").write_text(APP_SOURCE)
    namespace = fresh_namespace("exits")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    common = ["--broker", amqp_url, "--namespace", namespace]
    relay = ChildProcess(
        tacoq_argv("relay", *common, "--store", postgres_url, "--port", str(port)),
        cwd=cwd,
        env=clean_environ(),
        name="tacoq relay",
    )
    worker = ChildProcess(
        tacoq_argv("worker", "exit_app:worker", *common),
        cwd=cwd,
        env=clean_environ(),
        name="tacoq worker",
    )
    try:
        _until_ready(url, relay)
        worker.wait_for(f"serving {KIND}")
        yield System(url, clean_environ(TACOQ_RELAY_URL=url), cwd)
    finally:
        for child in (worker, relay):
            if child.alive():
                child.signal(signal.SIGTERM)
        codes = [child.wait(30) for child in (worker, relay)]
        kinds = {KIND, IDLE, *asyncio.run(worker_kinds_in(postgres_url, namespace))}
        asyncio.run(delete_namespace(amqp_url, namespace, sorted(kinds)))
        asyncio.run(drop_schemas(postgres_url, [schema_for_namespace(namespace)]))
    assert codes == [0, 0], f"{worker.tail}\n{relay.tail}"


def _connected(pid: int, port: int) -> bool:
    """Whether process ``pid`` has an open TCP connection to ``port`` on this host (Linux:
    its sockets in ``/proc/PID/fd`` matched against ``/proc/PID/net/tcp*``)."""
    try:
        inodes = {
            link[len("socket:[") : -1]
            for fd in os.listdir(f"/proc/{pid}/fd")
            if (link := os.readlink(f"/proc/{pid}/fd/{fd}")).startswith("socket:[")
        }
    except (FileNotFoundError, ProcessLookupError):
        return False
    for table in ("tcp", "tcp6"):
        try:
            lines = Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
        except FileNotFoundError:
            continue
        for line in lines:
            fields = line.split()
            remote_port = int(fields[2].rsplit(":", 1)[1], 16)
            if remote_port == port and fields[3] == "01" and fields[9] in inodes:  # ESTABLISHED
                return True
    return False


def _interrupted(child: ChildProcess, port: int) -> int:
    """SIGINT ``child`` once it waits on the relay at ``port``; its exit code."""
    if not sys.platform.startswith("linux"):
        pytest.skip("telling when the process waits reads /proc (Linux)")
    deadline = time.monotonic() + 30
    while not _connected(child.pid, port):
        assert child.alive(), f"exited before it waited:\n{child.output}"
        assert time.monotonic() < deadline, f"never connected to the relay:\n{child.output}"
        time.sleep(0.05)
    child.signal(signal.SIGINT)
    return child.wait(30)


@pytest.mark.parametrize("code", sorted(ROWS))
def test_the_documented_example_exits_with_its_code(code: int, system: System) -> None:
    case = CASES.get(code)
    if case is None:
        pytest.fail(f"docs/cli.md documents exit code {code}, which has no case in this test")
    words = shlex.split(ROWS[code])
    assert words[0] == "tacoq", ROWS[code]
    if case.pending_task:
        with SyncRelayClient(system.url) as client:
            task_id = str(client.publish("area", {"w": 1, "h": 1}, worker_kind=IDLE))
        words = [task_id if word == "ID" else word for word in words]
    assert "ID" not in words, f"no task id for {ROWS[code]!r}"
    with ChildProcess(tacoq_argv(*words[1:]), cwd=system.cwd, env=system.env) as child:
        if case.interrupt:
            exit_code = _interrupted(child, int(system.url.rsplit(":", 1)[1]))
        else:
            exit_code = child.wait(60)
        output = child.output
    assert exit_code == code, f"`{ROWS[code]}` exited {exit_code}, documented {code}:\n{output}"
    if code in (EXIT_ERROR, EXIT_USAGE, EXIT_TASK_FAILED, EXIT_TIMED_OUT):
        assert output.strip().splitlines()[-1].startswith("error: "), output
    if code != EXIT_TASK_FAILED:  # a failed task is shown with its own traceback
        assert "Traceback" not in output, output
