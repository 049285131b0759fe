"""The third-party plugin shown in ``docs/plugins.md`` works as printed.

The test takes the code block that follows ``<!-- example: plugin -->`` in the document, runs
it as a module, registers that module as a plugin, runs a few tasks end to end on the
in-process broker and store, and checks what the plugin counted and logged.
"""

from __future__ import annotations

import asyncio
import logging
import re
import types
import uuid
from pathlib import Path

import pytest

import tacoq
from tacoq.plugins import get_plugin_host
from tacoq.relay.engine import RelayEngine
from tacoq.testing import fresh_namespace

DOC = Path(__file__).resolve().parents[1] / "docs" / "plugins.md"
MARKER = "<!-- example: plugin -->"
BLOCK = re.compile(re.escape(MARKER) + r"\s*```python\n(?P<code>.*?)```", re.DOTALL)


def example_module() -> types.ModuleType:
    """The documented plugin, executed as a fresh module."""
    found = BLOCK.search(DOC.read_text(encoding="utf-8"))
    assert found is not None, f"no python block after {MARKER!r} in {DOC}"
    module = types.ModuleType(f"tacoq_docs_example_{uuid.uuid4().hex[:8]}")
    exec(compile(found.group("code"), str(DOC), "exec"), module.__dict__)
    return module


def build_worker() -> tacoq.WorkerApp:
    """A worker with one task that succeeds and one that always fails."""
    app = tacoq.WorkerApp("docs-example")

    @app.task
    async def add(numbers: list[int]) -> int:
        return sum(numbers)

    @app.task
    def boom(reason: str) -> None:
        raise ValueError(reason)

    return app


async def test_documented_plugin_counts_and_logs_tasks(caplog: pytest.LogCaptureFixture) -> None:
    plugin = example_module()
    host = get_plugin_host()
    name = f"docs-example-{uuid.uuid4().hex[:8]}"
    host.register(plugin, name=name)
    broker_url = f"memory://docs-example-{uuid.uuid4().hex[:8]}"
    namespace = fresh_namespace("docs")
    stop = asyncio.Event()
    app = build_worker()
    jobs: list[asyncio.Task[None]] = []
    try:
        relay = RelayEngine(broker_url, "memory://", namespace=namespace, cleanup=False)
        jobs.append(asyncio.create_task(relay.run(stop)))
        jobs.append(
            asyncio.create_task(app.serve(stop, broker_url=broker_url, namespace=namespace))
        )
        await asyncio.wait_for(relay.ready.wait(), 10)
        with caplog.at_level(logging.WARNING, logger=plugin.log.name):
            async with tacoq.Publisher(broker_url, namespace=namespace) as pub:
                tasks = [await pub.publish(app.tasks["add"], [i, i]) for i in range(3)]
                tasks += [await pub.publish(app.tasks["boom"], f"no {i}") for i in range(2)]
            rows = [await relay.store.wait(task.id, timeout=10) for task in tasks]
        assert all(row is not None and row.is_completed for row in rows)
        assert [row.is_error for row in rows if row is not None] == [False] * 3 + [True] * 2
    finally:
        stop.set()
        try:
            await asyncio.wait_for(asyncio.gather(*jobs), 10)
        finally:
            host.unregister(name)

    assert plugin.stats.finished == {"add": 3, "boom": 2}
    failures = [r for r in caplog.records if r.name == plugin.log.name]
    assert len(failures) == 2
    assert all("ValueError" in r.getMessage() and "boom" in r.getMessage() for r in failures)
