"""Fixtures for the CLI tests: run ``tacoq`` as a real process, make throw-away plugins, and
serve a relay with a worker for ``tacoq task`` to talk to.

A throw-away plugin is a module plus a ``*.dist-info`` directory with an ``entry_points.txt``
in the ``tacoq`` group, in a temporary directory the subprocess gets on ``PYTHONPATH`` — the
same discovery path an installed plugin takes.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any, Protocol

import pytest

from tacoq.relay.service import RelayService
from tacoq.testing import fresh_namespace
from tacoq.worker import WorkerApp


class RunTacoq(Protocol):
    def __call__(
        self,
        *args: str,
        env: Mapping[str, str] | None = None,
        pythonpath: Sequence[Path] = (),
        timeout: float = 60,
    ) -> subprocess.CompletedProcess[str]: ...


MakePlugin = Callable[[str, str], Path]


def clean_env(
    extra: Mapping[str, str] | None = None, pythonpath: Sequence[Path] = ()
) -> dict[str, str]:
    """The current environment without TACOQ_* settings, wide enough that rich never wraps."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TACOQ_")}
    env["COLUMNS"] = "250"
    env["NO_COLOR"] = "1"
    env.pop("FORCE_COLOR", None)
    paths = [str(p) for p in pythonpath]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    if paths:
        env["PYTHONPATH"] = os.pathsep.join(paths)
    env.update(extra or {})
    return env


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """The directory ``tacoq`` runs in (``MODULE:ATTR`` is imported from here)."""
    path = tmp_path / "work"
    path.mkdir()
    return path


@pytest.fixture
def run_tacoq(workdir: Path) -> RunTacoq:
    """Run ``python -m tacoq_cli ARGS`` in ``workdir`` and capture its output."""

    def run(
        *args: str,
        env: Mapping[str, str] | None = None,
        pythonpath: Sequence[Path] = (),
        timeout: float = 60,
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "tacoq_cli", *args],
            capture_output=True,
            text=True,
            cwd=workdir,
            env=clean_env(env, pythonpath),
            timeout=timeout,
            check=False,
        )

    return run


@pytest.fixture
def plugin_site(tmp_path: Path) -> Path:
    """A directory for throw-away plugins (put it on the subprocess's ``PYTHONPATH``)."""
    path = tmp_path / "site"
    path.mkdir()
    return path


@pytest.fixture
def make_plugin(plugin_site: Path) -> MakePlugin:
    """``make_plugin(name, source)``: an installed-looking plugin ``name`` with that module.

    The distribution is ``tacoq-throwaway-<name>`` 0.1; the entry point ``<name>`` in group
    ``tacoq`` points at the module ``tacoq_throwaway_<name>``. Returns the site directory.
    """

    def make(name: str, source: str) -> Path:
        module = f"tacoq_throwaway_{name.replace('-', '_')}"
        dist = f"tacoq-throwaway-{name}"
        (plugin_site / f"{module}.py").write_text(textwrap.dedent(source))
        info = plugin_site / f"{dist.replace('-', '_')}-0.1.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
        (info / "entry_points.txt").write_text(f"[tacoq]\n{name} = {module}\n")
        return plugin_site

    return make


def _assert_one_line_error(result: subprocess.CompletedProcess[str], *needles: str) -> str:
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "Traceback" not in output, output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, output
    line = lines[0]
    assert line.startswith("error: "), output
    for needle in needles:
        assert needle in line, output
    return line


@pytest.fixture
def expect_one_line_error() -> Callable[..., str]:
    """``expect_one_line_error(result, *needles)``: assert the run failed with exactly one
    ``error:`` line on stderr (no traceback) containing every needle; returns the line."""
    return _assert_one_line_error


@pytest.fixture
def clean_env_for() -> Callable[..., dict[str, str]]:
    """``clean_env_for(extra=None, pythonpath=())``: the environment ``run_tacoq`` uses."""
    return clean_env


#: The worker the in-thread relay serves: ``area`` multiplies, and fails on a negative width.
APP = WorkerApp("cli-shapes", name="cli-worker")


@APP.task
async def area(req: dict[str, int]) -> int:
    if req["w"] < 0:
        raise ValueError("negative width")
    return req["w"] * req["h"]


@contextmanager
def relay_in_thread(**options: Any) -> Iterator[RelayService]:
    """A relay and a worker of APP on a memory broker and store, on a thread's own loop."""
    started: list[RelayService] = []
    ready = threading.Event()
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()

    async def main() -> None:
        ns = fresh_namespace("cli")
        url = f"memory://{ns}"
        service = RelayService(url, url, namespace=ns, port=0, **options)
        jobs = [asyncio.create_task(service.run(stop))]
        await asyncio.wait_for(service.ready.wait(), 10)
        jobs.append(asyncio.create_task(APP.serve(stop, broker_url=url, namespace=ns)))
        started.append(service)
        ready.set()
        await asyncio.gather(*jobs)

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    try:
        assert ready.wait(15), "the relay did not start"
        yield started[0]
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(15)
        loop.close()


@pytest.fixture
def start_relay() -> Callable[..., AbstractContextManager[RelayService]]:
    """``with start_relay(**options) as service``: a relay (``RelayService`` options) and a
    worker of ``cli-shapes`` (task ``area``) on a memory broker and store, in a thread."""
    return relay_in_thread


@pytest.fixture
def relay() -> Iterator[RelayService]:
    """A relay and a worker of ``cli-shapes`` (task ``area``), as :func:`start_relay` makes."""
    with relay_in_thread() as service:
        yield service
