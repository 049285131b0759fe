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


def _bash_block_with(needle: str) -> str:
    """The README's one bash block that holds ``needle``."""
    blocks = re.findall(r"```bash\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    [block] = [block for block in blocks if needle in block]
    return block


def _commands(block: str) -> list[str]:
    """The block's commands, backslash continuations joined."""
    return [c.strip() for c in block.replace("\\\n", " ").splitlines() if c.strip()]


def test_the_second_terminal_reaches_the_readers_own_worker(
    tmp_path: Path, amqp_url: str, postgres_url: str
) -> None:
    """The README's worker, relay and publishing commands, run as written (only the service
    URLs, the namespace and the relay's port differ): `tacoq task publish --wait`, curl and
    Python each get an answer from the reader's own `tacoq worker`."""
    import asyncio
    import json
    import os
    import socket

    from tacoq.testing import fresh_namespace
    from tacoq.testing.processes import ChildProcess, clean_environ
    from tacoq_postgres.settings import schema_for_namespace
    from tacoq_postgres.testing import drop_schemas
    from tacoq_rabbit.link import delete_namespace

    readme_amqp = "amqp://guest:guest@127.0.0.1:5672/"
    readme_pg = "postgresql://postgres@127.0.0.1:5432/test"
    readme_relay = "http://127.0.0.1:8080"
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    relay_url = f"http://127.0.0.1:{port}"
    namespace = fresh_namespace("readme")

    def ours(text: str) -> str:
        return (
            text.replace(readme_amqp, amqp_url)
            .replace(readme_pg, postgres_url)
            .replace(readme_relay, relay_url)
        )

    (tmp_path / "tasks.py").write_text(_python_blocks()[0], encoding="utf-8")
    env = clean_environ(TACOQ_NAMESPACE=namespace, TACOQ_RELAY_PORT=str(port))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(tmp_path), env.get("PYTHONPATH")]))
    relay_env = dict(env)
    for command in _commands(_bash_block_with("tacoq relay")):
        if command.startswith("export "):
            name, _, value = command.removeprefix("export ").partition("=")
            relay_env[name] = ours(value)
    [worker_command] = _commands(_bash_block_with("tacoq worker tasks:worker"))
    publish_block = _bash_block_with("tacoq task publish")
    try:
        with (
            ChildProcess(["bash", "-c", "exec tacoq relay"], cwd=tmp_path, env=relay_env) as relay,
            ChildProcess(
                ["bash", "-c", "exec " + ours(worker_command)], cwd=tmp_path, env=env
            ) as worker,
        ):
            relay.wait_for("relay ready")
            worker.wait_for("serving")
            third = {**env, "TACOQ_RELAY_URL": relay_url}
            outputs = []
            for command in _commands(publish_block):
                done = subprocess.run(
                    ["bash", "-c", ours(command)],
                    cwd=tmp_path, env=third, capture_output=True, text=True, timeout=60,
                )  # fmt: skip
                assert done.returncode == 0, (command, done.stdout, done.stderr)
                outputs.append(done.stdout)
            assert "307200" in outputs[0]  # the worker's answer, printed by --wait
            posted = json.loads(outputs[1])["id"]
            shown = subprocess.run(
                ["bash", "-c", f"tacoq task show {posted} --wait 10 --json"],
                cwd=tmp_path, env=third, capture_output=True, text=True, timeout=60,
            )  # fmt: skip
            assert shown.returncode == 0, shown.stderr
            assert json.loads(shown.stdout)["output"]["data"] == {"pixels": 6}
            assert "resize" in outputs[2]
            script = ours(_block_with("SyncRelayClient"))
            (tmp_path / "publish.py").write_text(script, encoding="utf-8")
            answered = subprocess.run(
                [sys.executable, "publish.py"],
                cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
            )  # fmt: skip
            assert answered.returncode == 0, answered.stderr
            assert answered.stdout.split() == ["pixels=64"]
    finally:
        asyncio.run(delete_namespace(amqp_url, namespace, ["images"]))
        asyncio.run(drop_schemas(postgres_url, [schema_for_namespace(namespace)]))
