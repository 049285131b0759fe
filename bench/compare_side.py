"""One side of an A/B comparison, run by THAT side's interpreter (``--compare REV``).

``<side's python> -m bench.compare_side identify`` or
``<side's python> -m bench.compare_side measure SCENARIO LABEL --tasks N --timeout S [--quick]``,
from the repository root: the bench code is the current checkout's (the working directory is on
``sys.path``), TacoQ is whatever that interpreter has installed, and every process the scenario
starts (``tacoq worker``, ``tacoq relay``, ``tacoq demo``, ``python -m bench...``) is that
interpreter's or a console script beside it. Prints one JSON line:

- ``identify``: ``python``, ``prefix`` (its environment), ``tacoq_file`` (where ``import
  tacoq`` came from), ``versions`` of our distributions, ``files`` (each installed module of
  theirs -> its SHA-256) and ``digest`` (one hash over them: two sides with the same digest
  run the same TacoQ code);
- ``measure``: ``value``, ``notes`` (the scenario's side numbers), ``cpu_s`` (CPU-seconds of this
  process and every child it waited for, during the measurement) and ``digest``; or ``skipped``
  or ``error`` with the reason.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import resource
import sys
from importlib.metadata import distributions
from pathlib import Path
from typing import Any

from bench.harness import MeasurementError, Sample, Settings, SkipScenario


def installed_files() -> dict[str, str]:
    """Every ``.py`` file of the installed distributions named ``tacoq`` or ``tacoq-*``, by path
    relative to where it is installed, with its SHA-256."""
    files: dict[str, str] = {}
    for dist in distributions():
        name = str(dist.metadata["Name"] or "").lower()
        if name != "tacoq" and not name.startswith("tacoq-"):
            continue
        for entry in dist.files or ():
            if entry.suffix != ".py" or ".." in entry.parts:
                continue
            try:
                data = Path(str(dist.locate_file(entry))).read_bytes()
            except OSError:
                continue
            files[entry.as_posix()] = hashlib.sha256(data).hexdigest()
    return files


def code_digest(files: dict[str, str]) -> str:
    """One SHA-256 over ``files`` (path -> hash), independent of their order."""
    text = "".join(f"{path} {sha}\n" for path, sha in sorted(files.items()))
    return hashlib.sha256(text.encode()).hexdigest()


def identify() -> dict[str, Any]:
    """Which TacoQ this interpreter runs (see the module docstring)."""
    import tacoq

    files = installed_files()
    versions = {
        str(dist.metadata["Name"]): dist.version
        for dist in distributions()
        if str(dist.metadata["Name"] or "").lower().startswith("tacoq")
    }
    return {
        "python": sys.executable,
        "prefix": sys.prefix,
        "tacoq_file": tacoq.__file__,
        "versions": dict(sorted(versions.items())),
        "files": files,
        "digest": code_digest(files),
    }


def _cpu_s() -> float:
    """User + system CPU-seconds of this process and of the children it waited for."""
    usages = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return sum(usage.ru_utime + usage.ru_stime for usage in usages)


def measure(scenario_name: str, label: str, settings: Settings) -> dict[str, Any]:
    """One sample of variant ``label`` of scenario ``scenario_name``, as the JSON to print."""
    digest = code_digest(installed_files())
    try:
        from bench.scenarios import SCENARIOS
    except Exception as exc:  # the bench imports a module an older TacoQ lacks
        return {
            "error": f"importing the scenarios: {type(exc).__name__}: {exc}"[:300],
            "digest": digest,
        }
    scenario = next((s for s in SCENARIOS if s.name == scenario_name), None)
    if scenario is None:
        return {"error": f"no scenario {scenario_name!r} in this bench", "digest": digest}
    variant = next((v for v in scenario.tacoq_variants() if v.label == label), None)
    if variant is None:
        return {"error": f"{scenario_name} has no TacoQ variant {label!r}", "digest": digest}
    before = _cpu_s()
    try:
        measured = variant.measure(settings)
    except SkipScenario as exc:
        return {"skipped": str(exc), "digest": digest}
    except MeasurementError as exc:
        return {"error": str(exc), "digest": digest}
    except Exception as exc:  # an older TacoQ may lack what the bench uses: say what
        return {"error": f"{type(exc).__name__}: {exc}"[:300], "digest": digest}
    cpu = _cpu_s() - before
    sample = measured if isinstance(measured, Sample) else Sample(float(measured))
    return {"value": sample.value, "notes": sample.notes, "cpu_s": cpu, "digest": digest}


def main(argv: list[str] | None = None) -> int:
    """Identify or measure; print the JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("identify")
    one = commands.add_parser("measure")
    one.add_argument("scenario")
    one.add_argument("label")
    one.add_argument("--tasks", type=int, required=True)
    one.add_argument("--timeout", type=float, required=True)
    one.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    if args.command == "identify":
        result = identify()
    else:
        settings = Settings(repeats=1, tasks=args.tasks, timeout_s=args.timeout, quick=args.quick)
        result = measure(args.scenario, args.label, settings)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
