"""The reloading runner: a watcher process that runs the worker as a child and restarts it.

Process model: ``tacoq worker app:w --reload`` is the watcher. It never imports the app; it
starts ``python -m tacoq_cli worker app:w ...`` (the same command without ``--reload``) as a
child in a new session, so the child has its own process group and a terminal's Ctrl-C reaches
only the watcher, which forwards it to the child exactly once. On a relevant change it checks
the syntax of the changed Python files: an error is reported and the running worker is kept
until a save that compiles; otherwise the old worker is stopped gracefully (SIGTERM to its
group, SIGKILL after the grace period) and a new one is started. A worker that exits by itself
(for instance an import error) is reported and restarted on the next change.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from tacoq_hotreload.watch import check_syntax, is_relevant, watch_roots

if TYPE_CHECKING:
    from tacoq.contracts.runner import WorkerRunRequest

__all__ = ["ReloadRunner", "child_command"]

log = logging.getLogger("tacoq.hotreload")

#: The grace period when the request does not give one (the worker's default too).
DEFAULT_GRACE = 30.0
#: Extra seconds after the grace before a stopping worker is killed.
KILL_MARGIN = 5.0
#: Milliseconds of quiet that end a burst of changes, and the longest burst collected.
DEBOUNCE_STEP_MS = 200
DEBOUNCE_MAX_MS = 1600
#: How often (milliseconds) the watcher wakes without changes to check on the worker.
TICK_MS = 500


def child_command(request: WorkerRunRequest) -> list[str]:
    """The ``tacoq worker`` command line of the child: the request without ``--reload`` (its
    log level and format included, so the child logs as the watcher does)."""
    command = [sys.executable, "-m", "tacoq_cli", "worker", request.app_ref]
    options: list[tuple[str, object]] = [
        ("--broker", request.broker_url),
        ("--namespace", request.namespace),
        ("--concurrency", request.concurrency),
        ("--prefetch", request.prefetch),
        ("--name", request.name),
        ("--grace", request.grace),
        ("--heartbeat-interval", request.heartbeat_interval),
        ("--log-level", request.log_level),
        ("--log-format", request.log_format),
    ]
    for flag, value in options:
        if value is not None:
            command += [flag, str(value)]
    return command


class ReloadRunner:
    """Runs the worker in a child process and restarts it when the project's files change."""

    def __init__(self) -> None:
        self._child: subprocess.Popen[bytes] | None = None
        self._stop = threading.Event()
        self._signals = 0

    def run(self, request: WorkerRunRequest) -> int:
        """Watch and restart until SIGINT/SIGTERM; return the last worker's exit code."""
        from watchfiles import watch

        cwd = Path.cwd()
        roots = watch_roots(request.app_ref, request.reload_dirs, cwd)
        grace = DEFAULT_GRACE if request.grace is None else request.grace
        command = child_command(request)
        previous = {
            sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM)
        }
        log.info("watching %s for changes", ", ".join(str(r) for r in roots))
        try:
            self._start(command)
            changes_seen = watch(
                *roots,
                watch_filter=lambda _change, path: is_relevant(path, roots),
                debounce=DEBOUNCE_MAX_MS,
                step=DEBOUNCE_STEP_MS,
                stop_event=self._stop,
                rust_timeout=TICK_MS,
                yield_on_timeout=True,
                raise_interrupt=False,
            )
            for changes in changes_seen:
                self._check_child()
                if not changes or self._stop.is_set():
                    continue
                paths = {path for _, path in changes}
                shown = ", ".join(sorted(os.path.relpath(p, cwd) for p in paths)[:5])
                error = check_syntax(paths)
                if error is not None:
                    log.error(
                        "syntax error in %s; keeping the running worker until the next save", error
                    )
                    continue
                log.info("change detected (%s): restarting the worker", shown)
                self._terminate(grace)
                if not self._stop.is_set():
                    self._start(command)
            return self._finish(grace)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    # -- the child ---------------------------------------------------------------------------

    def _start(self, command: list[str]) -> None:
        self._child = subprocess.Popen(command, start_new_session=True)

    def _check_child(self) -> None:
        child = self._child
        if child is not None and child.poll() is not None and not self._stop.is_set():
            log.warning(
                "the worker exited with code %d; waiting for a change to start it again",
                child.returncode,
            )
            self._child = None

    def _signal_child(self, signum: int) -> None:
        child = self._child
        if child is None or child.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):  # it just exited
            os.killpg(child.pid, signum)

    def _terminate(self, grace: float) -> int | None:
        """Stop the child gracefully; kill its process group after the grace period."""
        child = self._child
        if child is None:
            return None
        self._signal_child(signal.SIGTERM)
        code = self._wait(child, grace + KILL_MARGIN)
        self._child = None
        return code

    def _wait(self, child: subprocess.Popen[bytes], timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while True:
            try:
                return child.wait(timeout=max(0.0, min(0.2, deadline - time.monotonic())))
            except subprocess.TimeoutExpired:
                if time.monotonic() >= deadline:
                    log.warning("the worker did not stop within %.0fs; killing it", timeout)
                    self._signal_child(signal.SIGKILL)
                    return child.wait(timeout=10)

    def _finish(self, grace: float) -> int:
        """After a stop signal: wait for the child the signal was forwarded to."""
        child = self._child
        if child is None:
            return 0
        return self._wait(child, grace + KILL_MARGIN)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        """Forward each SIGINT/SIGTERM to the worker once; the first also stops watching."""
        self._signals += 1
        self._stop.set()
        self._signal_child(signum)
