"""Child processes for tests: a real command, its merged output collected while it runs.

``ChildProcess(argv, cwd=..., env=..., name=...)`` starts a command with stdout and stderr
merged into one pipe, which a daemon thread reads line by line into :attr:`ChildProcess.lines`.
A test waits for a line (:meth:`~ChildProcess.wait_for`, or
:meth:`~ChildProcess.wait_for_async` in a coroutine), signals the process, waits for its exit
code, and kills it (with the process group it leads) at the end::

    with ChildProcess(tacoq_argv("worker", "app:worker"), cwd=project, env=clean_environ()) as w:
        w.wait_for("serving")
        w.signal(signal.SIGTERM)
        assert w.wait(30) == 0, w.output

Every failure is an ``AssertionError`` that shows what the process wrote.
:func:`tacoq_argv` is the command line of the ``tacoq`` CLI under this interpreter, and
:func:`clean_environ` the current environment without inherited ``TACOQ_*`` settings.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

__all__ = ["ChildProcess", "clean_environ", "tacoq_argv"]

#: How many output lines :attr:`ChildProcess.tail` shows.
TAIL_LINES = 60
_POLL = 0.05


def tacoq_argv(*args: str) -> list[str]:
    """The command line of ``tacoq ARGS`` run by this interpreter (``python -m tacoq_cli``)."""
    return [sys.executable, "-m", "tacoq_cli", *args]


def clean_environ(**extra: str) -> dict[str, str]:
    """This process's environment without any ``TACOQ_*`` variable, updated with ``extra``.

    A child started with it takes its settings from its command line and ``extra`` only, not
    from whatever the test run happens to export.
    """
    env = {key: value for key, value in os.environ.items() if not key.startswith("TACOQ_")}
    env.update(extra)
    return env


class ChildProcess:
    """One child process; its merged stdout and stderr lines are in :attr:`lines`.

    ``cwd`` and ``env`` are passed to :class:`subprocess.Popen` (``env=None`` inherits this
    process's environment). ``name`` is used in failure messages (default: the program's
    name). With ``new_session`` the child starts in a session, and so a process group, of its
    own, like a shell's job: :meth:`kill` then kills the whole group. Its stdin is
    ``/dev/null``; its output is decoded as UTF-8 (undecodable bytes replaced).
    """

    def __init__(
        self,
        argv: Sequence[str | os.PathLike[str]],
        *,
        cwd: str | os.PathLike[str] | None = None,
        env: Mapping[str, str] | None = None,
        name: str | None = None,
        new_session: bool = False,
    ) -> None:
        self.name = name or Path(argv[0]).name
        self.popen = subprocess.Popen(
            list(argv),
            cwd=cwd,
            env=None if env is None else dict(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            encoding="utf-8",
            errors="replace",
            start_new_session=new_session,
        )
        #: Every line written so far, line ends included (appended by the reader thread).
        self.lines: list[str] = []
        self._reader = threading.Thread(
            target=self._read, name=f"output of {self.name}", daemon=True
        )
        self._reader.start()

    def _read(self) -> None:
        assert self.popen.stdout is not None
        with self.popen.stdout:
            for line in self.popen.stdout:
                self.lines.append(line)

    def __repr__(self) -> str:
        return f"<ChildProcess {self.name} pid={self.pid} returncode={self.popen.returncode}>"

    @property
    def pid(self) -> int:
        """The process id."""
        return self.popen.pid

    @property
    def output(self) -> str:
        """Everything the process wrote so far."""
        return "".join(self.lines)

    @property
    def tail(self) -> str:
        """The last :data:`TAIL_LINES` lines written (for failure messages)."""
        return "".join(self.lines[-TAIL_LINES:])

    def alive(self) -> bool:
        """True while the process runs (an exited process is reaped)."""
        return self.popen.poll() is None

    def count(self, needle: str) -> int:
        """How many output lines contain ``needle``."""
        return sum(needle in line for line in list(self.lines))

    def wait_for(self, needle: str, timeout: float = 30.0, *, occurrences: int = 1) -> str:
        """Wait until ``occurrences`` output lines contain ``needle``; return the last of them.

        Fails with ``AssertionError``, showing the output, if the process exits (and all its
        output is read) before that, or after ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        while (line := self._found(needle, occurrences, deadline, timeout)) is None:
            time.sleep(_POLL)
        return line

    async def wait_for_async(
        self, needle: str, timeout: float = 30.0, *, occurrences: int = 1
    ) -> str:
        """:meth:`wait_for` for a coroutine: the event loop runs while it waits."""
        deadline = time.monotonic() + timeout
        while True:
            line = self._found(needle, occurrences, deadline, timeout)
            if line is not None:
                return line
            await asyncio.sleep(_POLL)

    def _found(self, needle: str, occurrences: int, deadline: float, timeout: float) -> str | None:
        """The ``occurrences``-th line with ``needle``, ``None`` to keep waiting, or fail."""
        exited = not self.alive() and not self._reader.is_alive()  # before reading the lines
        matching = [line for line in list(self.lines) if needle in line]
        if len(matching) >= occurrences:
            return matching[occurrences - 1]
        wanted = f"{needle!r}" if occurrences == 1 else f"{needle!r} x{occurrences}"
        if exited:
            code = self.popen.returncode
            raise AssertionError(f"{self.name} exited ({code}) before {wanted}:\n{self.output}")
        if time.monotonic() > deadline:
            raise AssertionError(f"{self.name}: no {wanted} within {timeout}s:\n{self.tail}")
        return None

    def signal(self, signum: int = signal.SIGTERM, *, group: bool = False) -> None:
        """Send ``signum`` to the process, or with ``group`` to the process group it leads
        (as a terminal's Ctrl-C signals its foreground job)."""
        if group:
            os.killpg(self.pid, signum)
        else:
            self.popen.send_signal(signum)

    def wait(self, timeout: float) -> int:
        """Wait for the process to exit and return its exit code (all its output is read then).

        If it still runs after ``timeout`` seconds it is killed (see :meth:`kill`) and the wait
        fails with ``AssertionError``, showing the output.
        """
        try:
            code = self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(
                f"{self.name} still running after {timeout}s:\n{self.tail}"
            ) from None
        self._reader.join(5)
        return code

    def kill(self) -> None:
        """SIGKILL the process group the process leads (a ``new_session`` child, or one that
        made a group of its own), else the process alone, and reap it. Nothing to do once it
        has exited."""
        if self.alive():
            if self._leads_group():
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(self.pid, signal.SIGKILL)
            with contextlib.suppress(ProcessLookupError):
                self.popen.kill()
            self.popen.wait(10)
        self._reader.join(5)

    def _leads_group(self) -> bool:
        try:
            return os.getpgid(self.pid) == self.pid
        except (ProcessLookupError, PermissionError):
            return False

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.kill()
