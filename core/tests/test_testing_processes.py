"""The child-process helper of :mod:`tacoq.testing.processes`, with tiny real Python children."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from pathlib import Path

import pytest

from tacoq.testing.processes import ChildProcess, clean_environ, tacoq_argv

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals and groups")


def python(code: str) -> list[str]:
    """The command line running ``code`` in an unbuffered Python."""
    return [sys.executable, "-u", "-c", code]


def gone(pid: int) -> bool:
    """True once ``pid`` no longer runs (a zombie waiting to be reaped counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    with contextlib.suppress(OSError):
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        return state == "Z"
    return False


def test_stdout_and_stderr_are_collected_in_lines_and_the_exit_code_is_returned() -> None:
    code = "import sys; print('out one'); print('err one', file=sys.stderr); print('out two'); "
    code += "sys.exit(3)"
    with ChildProcess(python(code), name="talker") as child:
        assert child.wait(10) == 3
        assert not child.alive()
    assert child.lines == ["out one\n", "err one\n", "out two\n"]
    assert child.output == "out one\nerr one\nout two\n"
    assert child.count("one") == 2
    assert child.count("three") == 0


def test_wait_for_returns_the_line_of_the_wanted_occurrence() -> None:
    code = "import time\nfor n in range(3): print(f'tick {n}')\ntime.sleep(30)"
    with ChildProcess(python(code)) as child:
        assert child.wait_for("tick", 10) == "tick 0\n"
        assert child.wait_for("tick", 10, occurrences=3) == "tick 2\n"
        assert child.alive()


def test_wait_for_fails_after_the_timeout_showing_the_output() -> None:
    with ChildProcess(python("print('hello'); import time; time.sleep(30)"), name="sleeper") as c:
        c.wait_for("hello", 10)
        began = time.monotonic()
        with pytest.raises(AssertionError) as failure:
            c.wait_for("never said", 0.5)
        assert 0.5 <= time.monotonic() - began < 5
        assert c.alive()
    message = str(failure.value)
    assert message.startswith("sleeper: no 'never said' within 0.5s:")
    assert "hello" in message


def test_wait_for_fails_at_once_when_the_process_exits_first() -> None:
    code = "import sys; print('last words'); sys.exit(4)"
    with ChildProcess(python(code), name="quitter") as child:
        began = time.monotonic()
        with pytest.raises(AssertionError) as failure:
            child.wait_for("serving", 30, occurrences=2)
        assert time.monotonic() - began < 10
    message = str(failure.value)
    assert message.startswith("quitter exited (4) before 'serving' x2:")
    assert "last words" in message


def test_wait_kills_a_process_that_outlives_the_timeout_and_fails() -> None:
    child = ChildProcess(python("print('up'); import time; time.sleep(30)"), name="stayer")
    try:
        child.wait_for("up", 10)
        with pytest.raises(AssertionError, match=r"^stayer still running after 0.3s:\nup\n"):
            child.wait(0.3)
        assert not child.alive()
        assert child.popen.returncode == -signal.SIGKILL
    finally:
        child.kill()


def test_signal_reaches_the_process_and_its_handler_runs() -> None:
    code = (
        "import signal, sys, time\n"
        "signal.signal(signal.SIGTERM, lambda *_: (print('got TERM'), sys.exit(0)))\n"
        "print('ready')\n"
        "time.sleep(30)"
    )
    with ChildProcess(python(code)) as child:
        child.wait_for("ready", 10)
        child.signal(signal.SIGTERM)
        assert child.wait(10) == 0
    assert child.count("got TERM") == 1


# A child that starts a grandchild (in the child's process group, not holding its output pipe)
# and prints the grandchild's pid.
PARENT = (
    "import subprocess, sys, time\n"
    "grandchild = subprocess.Popen(\n"
    "    [sys.executable, '-c', 'import time; time.sleep(60)'],\n"
    "    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,\n"
    ")\n"
    "print(f'grandchild {grandchild.pid}')\n"
    "time.sleep(60)"
)


def grandchild_of(child: ChildProcess) -> int:
    return int(child.wait_for("grandchild", 10).split()[1])


def test_kill_of_a_new_session_child_kills_its_whole_process_group() -> None:
    child = ChildProcess(python(PARENT), new_session=True)
    try:
        grandchild = grandchild_of(child)
        assert os.getpgid(child.pid) == child.pid
        assert os.getpgid(grandchild) == child.pid
        child.kill()
        assert not child.alive()
        deadline = time.monotonic() + 10
        while not gone(grandchild):
            assert time.monotonic() < deadline, f"the grandchild {grandchild} outlived kill()"
            time.sleep(0.05)
    finally:
        child.kill()


def test_kill_of_a_child_in_our_group_kills_it_alone() -> None:
    child = ChildProcess(python(PARENT))
    grandchild = grandchild_of(child)
    try:
        assert os.getpgid(child.pid) == os.getpgid(0)  # it leads no group: ours is not killed
        child.kill()
        assert not child.alive()
        assert child.popen.returncode == -signal.SIGKILL
        time.sleep(0.2)
        assert not gone(grandchild)  # outside the child's own process: left alone
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(grandchild, signal.SIGKILL)


def test_a_group_signal_reaches_every_process_of_the_group() -> None:
    child = ChildProcess(python(PARENT), new_session=True)
    try:
        grandchild = grandchild_of(child)
        child.signal(signal.SIGTERM, group=True)
        assert child.wait(10) == -signal.SIGTERM
        deadline = time.monotonic() + 10
        while not gone(grandchild):
            assert time.monotonic() < deadline, f"the grandchild {grandchild} missed SIGTERM"
            time.sleep(0.05)
    finally:
        child.kill()


async def test_wait_for_async_lets_the_event_loop_run_while_it_waits() -> None:
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.01)

    ticker = asyncio.create_task(tick())
    try:
        with ChildProcess(python("import time; time.sleep(0.5); print('late')")) as child:
            assert await child.wait_for_async("late", 10) == "late\n"
            with pytest.raises(AssertionError, match="exited"):
                await child.wait_for_async("later", 10)
    finally:
        ticker.cancel()
    assert ticks >= 10


def test_clean_environ_drops_inherited_tacoq_settings_and_adds_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TACOQ_FROM_THE_RUN", "x")
    monkeypatch.setenv("NOT_TACOQ_KEPT", "y")
    env = clean_environ(TACOQ_GIVEN="1")
    code = "import os; print(sorted(k for k in os.environ if 'TACOQ' in k))"
    with ChildProcess(python(code), env=env) as child:
        assert child.wait(10) == 0
    assert child.output == "['NOT_TACOQ_KEPT', 'TACOQ_GIVEN']\n"


def test_tacoq_argv_runs_the_cli_of_this_interpreter(tmp_path: Path) -> None:
    with ChildProcess(tacoq_argv("--help"), cwd=tmp_path, env=clean_environ()) as child:
        assert child.wait(60) == 0, child.output
    assert child.name == Path(sys.executable).name
    assert "worker" in child.output
