"""A real ``tacoq worker app:w --reload`` over RabbitMQ: edit the handler, the next task gets the
new code; a syntax error is reported and the running worker kept; Ctrl-C reaches the worker once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio

from tacoq.publishing.publisher import Publisher
from tacoq.relay.engine import RelayEngine
from tacoq.testing import fresh_namespace
from tacoq.testing.processes import ChildProcess, clean_environ, tacoq_argv
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


class Reloader(ChildProcess):
    """``tacoq worker app:w --reload`` in its own session, like a shell's foreground job."""

    def __init__(self, project: Path, amqp_url: str, namespace: str, *options: str) -> None:
        super().__init__(
            tacoq_argv(
                "worker", "app:w", "--reload",
                "--broker", amqp_url, "--namespace", namespace, "--grace", "5", *options,
            ),
            cwd=project,
            env=clean_environ(),
            name="the reloader",
            new_session=True,
        )  # fmt: skip

    def worker_pids(self) -> list[int]:
        """The pids of the workers it started, from their start-up lines."""
        return [int(pid) for pid in re.findall(r"worker \S+:(\d+) serving ", self.output)]

    def kill(self) -> None:
        """Kill the watcher's process group, then each worker's (they run in groups of their
        own), and reap the watcher."""
        workers = self.worker_pids()
        if self.alive():  # the watcher first: it starts no other worker then
            with contextlib.suppress(ProcessLookupError):
                self.signal(signal.SIGKILL, group=True)
        for pid in workers:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
        super().kill()


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
            await reloader.wait_for_async("serving reloading", TIMEOUT)
            assert await ask(pub, engine) == "A"

            write(app, APP.format(answer="B"))
            await reloader.wait_for_async("serving reloading", TIMEOUT, occurrences=2)
            assert await ask(pub, engine) == "B"

            write(app, APP.format(answer="C").replace("async def answer(", "async def answer(("))
            await reloader.wait_for_async("syntax error", TIMEOUT)
            assert "app.py:" in reloader.output
            assert await ask(pub, engine) == "B"  # the running worker was kept

            write(app, APP.format(answer="C"))
            await reloader.wait_for_async("serving reloading", TIMEOUT, occurrences=3)
            assert await ask(pub, engine) == "C"

            # Ctrl-C in a terminal signals the foreground process group: the watcher's. The
            # worker, in a group of its own, gets it once, forwarded, and stops gracefully.
            reloader.signal(signal.SIGINT, group=True)
            code = await asyncio.to_thread(reloader.wait, TIMEOUT)
        assert code == 0, reloader.output
        assert "received again" not in reloader.output
        assert "Traceback" not in reloader.output
        pids = reloader.worker_pids()
        assert len(pids) == 3
        for pid in pids:
            assert not _alive(pid), f"worker {pid} outlived the reloader"
        importers = {int(p) for p in (tmp_path / "importers.txt").read_text().split()}
        assert reloader.pid not in importers  # the watcher never imported the app
        assert importers == set(pids)
    finally:
        reloader.kill()


async def test_the_worker_logs_at_the_level_and_in_the_format_of_the_watcher(
    amqp_url: str, namespace: str, tmp_path: Path
) -> None:
    (tmp_path / "app.py").write_text(APP.format(answer="A"), encoding="utf-8")
    reloader = Reloader(tmp_path, amqp_url, namespace, "--log-format", "json")
    try:
        await reloader.wait_for_async('"logger": "tacoq.worker"', TIMEOUT)
        reloader.signal(signal.SIGINT, group=True)
        assert await asyncio.to_thread(reloader.wait, TIMEOUT) == 0, reloader.output
    finally:
        reloader.kill()
    records = [json.loads(line) for line in reloader.lines]  # the watcher's and the worker's
    loggers = {record["logger"] for record in records}
    assert {"tacoq.hotreload", "tacoq.worker"} <= loggers, reloader.output

    reloader = Reloader(tmp_path, amqp_url, namespace, "--log-level", "warning")
    try:
        # at warning nothing is logged: a task answered is the sign that the worker runs
        async with (
            relay(amqp_url, namespace) as engine,
            Publisher(amqp_url, namespace=namespace) as pub,
        ):
            assert await ask(pub, engine) == "A"
        reloader.signal(signal.SIGINT, group=True)
        assert await asyncio.to_thread(reloader.wait, TIMEOUT) == 0, reloader.output
    finally:
        reloader.kill()
    assert reloader.lines == []


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie (exited, not reaped by its parent yet) is not alive either
    with contextlib.suppress(OSError):
        return " Z " not in Path(f"/proc/{pid}/stat").read_text().replace(")", ") ", 1)[:64]
    return True
