"""A publisher process for the fault scenarios, on TacoQ's public API only.

``python publisher.py steady ...`` publishes ``--count`` tasks ``work`` (by name) at
``--rate`` per second and appends ``{"id", "n", "tries"}`` to ``--out`` for every publish
RabbitMQ confirmed (``tries``: how many times it was sent; a failed one may have arrived too).
A ``PublishError`` (the broker unreachable beyond the publish timeout) is retried with the same
task id until ``--give-up`` seconds pass for that task; only confirmed publishes are written.
``python publisher.py bad ...`` tries the publishes that must be refused and prints what was
raised, as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import uuid
from typing import Any

import tacoq
from tacoq.errors import PublishError, TacoqError


async def steady(args: argparse.Namespace) -> dict[str, Any]:
    """Publish ``args.count`` tasks; return counts of confirmed publishes and retried errors."""
    confirmed = errors = abandoned = 0
    interval = 1.0 / args.rate if args.rate > 0 else 0.0
    async with tacoq.Publisher(args.broker, namespace=args.namespace) as pub:
        with open(args.out, "a", encoding="utf-8") as out:  # noqa: ASYNC230 (a local file)
            for n in range(args.first, args.first + args.count):
                task_id = uuid.uuid4()
                give_up = time.monotonic() + args.give_up
                tries = 0
                while True:
                    tries += 1
                    try:
                        await pub.publish(
                            "work",
                            {"n": n, "sleep": args.sleep},
                            worker_kind=args.worker_kind,
                            id=task_id,
                        )
                    except PublishError as exc:
                        errors += 1
                        print(f"publish of n={n} failed, retrying: {exc}", file=sys.stderr)
                        if time.monotonic() > give_up:
                            abandoned += 1
                            break
                        await asyncio.sleep(0.2)
                        continue
                    out.write(json.dumps({"id": str(task_id), "n": n, "tries": tries}) + "\n")
                    out.flush()
                    confirmed += 1
                    break
                if interval:
                    await asyncio.sleep(interval)
    return {"confirmed": confirmed, "publish_errors": errors, "abandoned": abandoned}


async def bad(args: argparse.Namespace) -> dict[str, Any]:
    """Try an oversized input and an invalid typed input; return what each raised."""
    import faultapp  # the worker app, from the current directory

    results: dict[str, Any] = {}
    attempts = {
        "oversized": lambda pub: pub.publish(
            "work", {"n": 1, "pad": "x" * (2 * 1024 * 1024)}, worker_kind=args.worker_kind
        ),
        "invalid": lambda pub: pub.publish(faultapp.work, {"n": -5, "sleep": "soon"}),
    }
    async with tacoq.Publisher(args.broker, namespace=args.namespace) as pub:
        for name, attempt in attempts.items():
            try:
                task = await attempt(pub)
            except TacoqError as exc:
                results[name] = {"error": type(exc).__name__, "message": str(exc)}
            else:
                results[name] = {"error": None, "id": str(task.id)}
    return results


def main() -> None:
    """Parse the arguments, run the mode, print its JSON summary on stdout."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("mode", choices=["steady", "bad"])
    parser.add_argument("--broker", required=True)
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--worker-kind", default="faults")
    parser.add_argument("--count", type=int, default=0)
    parser.add_argument("--first", type=int, default=0)
    parser.add_argument("--rate", type=float, default=0.0)
    parser.add_argument("--sleep", type=float, default=0.0)
    parser.add_argument("--give-up", type=float, default=60.0)
    parser.add_argument("--out", default="")
    args = parser.parse_args()
    summary = asyncio.run(steady(args) if args.mode == "steady" else bad(args))
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
