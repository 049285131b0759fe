"""Baseline: the least the demo pipeline must do per task, with asyncio and pydantic only.

Per task: make an id, serialize a small pydantic input to JSON bytes, pass it through an
``asyncio.Queue`` to a consumer that validates it, awaits a trivial handler and serializes the
output, then pass the result through a second queue into a dict (the "store"). Prints a JSON
summary (``tasks``, ``elapsed_s``, ``throughput``) on stdout. Run as
``python -m bench.baseline_asyncio --tasks N``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid

from pydantic import BaseModel


class TaskInput(BaseModel):
    """A small typed input, like the demo's."""

    index: int
    name: str
    priority: int


class TaskOutput(BaseModel):
    """A small typed output, like the demo's."""

    index: int
    greeting: str


async def handler(task_input: TaskInput) -> TaskOutput:
    """The trivial task handler."""
    return TaskOutput(index=task_input.index, greeting=f"hello {task_input.name}")


async def run_pipeline(tasks: int) -> float:
    """Push ``tasks`` tasks through publisher -> consumer -> store; return the seconds taken."""
    assignments: asyncio.Queue[tuple[uuid.UUID, bytes] | None] = asyncio.Queue()
    results: asyncio.Queue[tuple[uuid.UUID, bytes] | None] = asyncio.Queue()
    store: dict[uuid.UUID, bytes] = {}

    async def publish() -> None:
        for index in range(tasks):
            task_input = TaskInput(index=index, name=f"task-{index}", priority=index % 256)
            await assignments.put((uuid.uuid4(), task_input.model_dump_json().encode()))
        await assignments.put(None)

    async def consume() -> None:
        while (assignment := await assignments.get()) is not None:
            task_id, payload = assignment
            output = await handler(TaskInput.model_validate_json(payload))
            await results.put((task_id, output.model_dump_json().encode()))
        await results.put(None)

    async def record() -> None:
        while (result := await results.get()) is not None:
            task_id, payload = result
            store[task_id] = payload

    started = time.perf_counter()
    await asyncio.gather(publish(), consume(), record())
    elapsed = time.perf_counter() - started
    if len(store) != tasks:
        raise RuntimeError(f"stored {len(store)} results for {tasks} tasks")
    return elapsed


def main(argv: list[str] | None = None) -> int:
    """Run the baseline and print its JSON summary."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--tasks", type=int, default=20_000)
    args = parser.parse_args(argv)
    elapsed = asyncio.run(run_pipeline(args.tasks))
    summary = {"tasks": args.tasks, "elapsed_s": elapsed, "throughput": args.tasks / elapsed}
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
