"""A real worker process stops cleanly on SIGTERM and SIGINT (the built-in runner's path).

`tacoq worker` refuses the in-process memory broker, and no network broker plugin exists in
this checkout yet, so the process serves through ``WorkerApp.run`` — the same runner and signal
handling `tacoq worker` uses, without the in-process refusal.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

WORKER_SCRIPT = """
import logging, sys
import tacoq

logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(name)s %(message)s")
app = tacoq.WorkerApp("signals", broker="memory://signals")

@app.task
async def noop(value: int) -> int:
    return value

app.run()
print("worker exited cleanly", flush=True)
"""


def _start_worker(tmp_path: Path) -> subprocess.Popen[str]:
    script = tmp_path / "worker_script.py"
    script.write_text(WORKER_SCRIPT, encoding="utf-8")
    proc = subprocess.Popen(
        [sys.executable, str(script)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if "serving signals" in line:
            return proc
        if not line and proc.poll() is not None:
            break
    proc.kill()
    pytest.fail(f"worker did not start: {proc.stderr.read()}")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_worker_process_stops_cleanly_on_signal(tmp_path: Path, sig: signal.Signals) -> None:
    proc = _start_worker(tmp_path)
    proc.send_signal(sig)
    try:
        out, err = proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail(f"worker did not stop within 20 s of {sig.name}")
    assert proc.returncode == 0, err
    assert "worker exited cleanly" in out
    assert "Traceback" not in err
