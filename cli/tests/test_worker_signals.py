"""A running `tacoq worker` stops cleanly on SIGTERM and SIGINT and exits 0.

There is no network broker yet, and `tacoq worker` (rightly) refuses ``memory://``. So a
throw-away plugin serves the real built-in memory broker under a ``loopback://`` scheme that
does not call itself in-process. Nothing else can reach that broker — this test only checks
what it can honestly check: the CLI starts the built-in runner, the worker reaches "serving",
and a signal makes the process drain and exit 0 promptly, without a traceback.
"""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tacoq.testing.processes import ChildProcess, tacoq_argv

LOOPBACK_PLUGIN = """
from tacoq.contracts.hookspecs import hookimpl


def loopback_broker(url, *, namespace):
    from tacoq.builtin.memory_broker import MemoryBroker

    class LoopbackBroker(MemoryBroker):
        scheme = "loopback"
        in_process = False  # the only pretence: let a separate `tacoq worker` accept it

    # The memory broker only parses memory:// URLs; loopback://NAME is memory://NAME.
    return LoopbackBroker("memory://" + url.partition("://")[2], namespace=namespace)


@hookimpl
def tacoq_broker_schemes():
    return {"loopback": loopback_broker}
"""

APP_MODULE = """
import tacoq

worker = tacoq.WorkerApp("signals")


@worker.task
async def echo(text: str) -> str:
    return text
"""


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_worker_stops_on_signal_and_exits_zero(
    signum: signal.Signals,
    make_plugin: Callable[..., Path],
    workdir: Path,
    clean_env_for: Callable[..., dict[str, str]],
) -> None:
    site = make_plugin("loopback", LOOPBACK_PLUGIN)
    (workdir / "sigapp.py").write_text(APP_MODULE)
    argv = tacoq_argv(
        "worker", "sigapp:worker", "--broker", "loopback://signals",
        "--name", "sig-worker", "--concurrency", "2",
    )  # fmt: skip
    with ChildProcess(argv, cwd=workdir, env=clean_env_for(pythonpath=[site])) as worker:
        worker.wait_for("serving", 30)
        assert worker.alive(), worker.output
        sent = time.monotonic()
        worker.signal(signum)
        code = worker.wait(15)
        elapsed = time.monotonic() - sent
    output = worker.output
    assert code == 0, output
    assert elapsed < 10, f"took {elapsed:.1f}s to stop\n{output}"
    assert "Traceback" not in output
    assert "sig-worker" in output  # the --name option reached the worker
