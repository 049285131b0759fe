"""A real ``tacoq worker app:w --reload`` over RabbitMQ: edit the handler, the next task gets the
new code; a syntax error is reported and the running worker kept; Ctrl-C reaches the worker once.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio

from tacoq.publishing.publisher import Publisher
from tacoq.relay.engine import RelayEngine
from tacoq.testing import fresh_namespace
from tacoq_rabbit.link import delete_namespace

KIND = "reloading"
TIMEOUT = 30.0
APP = """
import os
from pathlib import Path

import tacoq

# Record who imports this module: the watcher process must never do it.
Path(__file__).with_name("importers.txt").open("a").write(f"{{os.getpid()}}\\n")

w = tacoq.WorkerApp("reloading")


@w.task
async def answer(question: str) -> str:
    return {answer!r}
"""


class Reloader:
    """``tacoq worker app:w --reload`` in its own session, like a shell's foreground job."""

    def __init__(self, project: Path, amqp_url: str, namespace: str) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TACOQ_")}
        self.proc = subprocess.Popen(
            [
                sys.executable, "-m", "tacoq_cli", "worker", "app:w", "--reload",
                "--broker", amqp_url, "--namespace", namespace, "--grace", "5",
            ],
            cwd=project,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )  # fmt: skip
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    async def wait_for(self, needle: str, occurrences: int = 1) -> None:
        deadline = time.monotonic() + TIMEOUT
        while sum(needle in line for line in list(self.lines)) < occurrences:
            assert self.proc.poll() is None, f"the reloader exited:\n{self.output}"
            assert time.monotonic() < deadline, f"no {needle!r} x{occurrences}:\n{self.output}"
            await asyncio.sleep(0.05)

    def worker_pids(self) -> list[int]:
        return [int(pid) for pid in re.findall(r"worker \S+:(\d+) serving ", self.output)]

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        for pid in self.worker_pids():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)


@pytest_asyncio.fixture
async def namespace(amqp_url: str) -> AsyncIterator[str]:
    ns = fresh_namespace("reload")
    yield ns
    await delete_namespace(amqp_url, ns, [KIND])


@contextlib.asynccontextmanager
async def relay(amqp_url: str, namespace: str) -> AsyncIterator[RelayEngine]:
    engine = RelayEngine(amqp_url, f"memory://{namespace}", namespace=namespace, cleanup=False)
    stop = asyncio.Event()
    job = asyncio.create_task(engine.run(stop))
    try:
        await asyncio.wait_for(engine.ready.wait(), TIMEOUT)
        yield engine
    finally:
        stop.set()
        await asyncio.wait_for(job, TIMEOUT)


async def ask(pub: Publisher, engine: RelayEngine) -> str:
    task = await pub.publish("answer", "?", worker_kind=KIND)
    row = await engine.store.wait(task.id, TIMEOUT)
    assert row is not None
    assert row.is_completed, row
    return str(row.result(str))


def write(path: Path, source: str) -> None:
    """Replace the file's content in one step, as editors that save atomically do."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(source, encoding="utf-8")
    tmp.replace(path)


async def test_an_edit_restarts_the_worker_and_the_next_task_gets_the_new_code(
    amqp_url: str, namespace: str, tmp_path: Path
) -> None:
    app = tmp_path / "app.py"
    app.write_text(APP.format(answer="A"), encoding="utf-8")
    reloader = Reloader(tmp_path, amqp_url, namespace)
    try:
        async with (
            relay(amqp_url, namespace) as engine,
            Publisher(amqp_url, namespace=namespace) as pub,
        ):
            await reloader.wait_for("serving reloading")
            assert await ask(pub, engine) == "A"

            write(app, APP.format(answer="B"))
            await reloader.wait_for("serving reloading", occurrences=2)
            assert await ask(pub, engine) == "B"

            write(app, APP.format(answer="C").replace("async def answer(", "async def answer(("))
            await reloader.wait_for("syntax error")
            assert "app.py:" in reloader.output
            assert await ask(pub, engine) == "B"  # the running worker was kept

            write(app, APP.format(answer="C"))
            await reloader.wait_for("serving reloading", occurrences=3)
            assert await ask(pub, engine) == "C"

            # Ctrl-C in a terminal signals the foreground process group: the watcher's. The
            # worker, in a group of its own, gets it once, forwarded, and stops gracefully.
            os.killpg(reloader.proc.pid, signal.SIGINT)
            code = await asyncio.to_thread(reloader.proc.wait, TIMEOUT)
        assert code == 0, reloader.output
        assert "received again" not in reloader.output
        assert "Traceback" not in reloader.output
        pids = reloader.worker_pids()
        assert len(pids) == 3
        for pid in pids:
            assert not _alive(pid), f"worker {pid} outlived the reloader"
        importers = {int(p) for p in (tmp_path / "importers.txt").read_text().split()}
        assert reloader.proc.pid not in importers  # the watcher never imported the app
        assert importers == set(pids)
    finally:
        reloader.stop()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie (exited, not reaped by its parent yet) is not alive either
    with contextlib.suppress(OSError):
        return " Z " not in Path(f"/proc/{pid}/stat").read_text().replace(")", ") ", 1)[:64]
    return True
