"""The README's quickstart runs as written: a worker module and an in-process publisher."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)


def _block_with(needle: str) -> str:
    """The README's one python block that holds ``needle``."""
    [block] = [block for block in _python_blocks() if needle in block]
    return block


def test_quickstart_worker_and_publisher_run_as_written(tmp_path: Path) -> None:
    worker_module, main_script = _python_blocks()[0], _block_with("RelayEngine()")
    (tmp_path / "tasks.py").write_text(worker_module, encoding="utf-8")
    (tmp_path / "main.py").write_text(main_script, encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "main.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["pixels=307200", "pixels=64"]


def test_readme_has_exactly_the_two_setup_commands_ci_runs() -> None:
    text = README.read_text(encoding="utf-8")
    ci = (README.parent / ".ci" / "run").read_text(encoding="utf-8")
    test_command = "python3 -m pip install --upgrade nox && python3 -m nox -s tests"
    assert test_command in text
    assert test_command in ci
    assert "tacoq demo" in text
