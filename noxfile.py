"""Nox sessions for TacoQ: ``nox`` runs lint, types and tests; ``nox -s demo`` and ``-s bench``.

Every session installs OUR packages from their folders in this checkout, all in one pip
invocation, and never from an index: PyPI has an unrelated ``tacoq`` (0.1-0.4). Plugins under
``plugins/*/`` are found by their ``pyproject.toml``, so a new plugin needs no change here.
"""

from __future__ import annotations

import shlex
from pathlib import Path

import nox

ROOT = Path(__file__).resolve().parent
#: The fault-injection suite: run by ``nox -s faults`` only, never by ``nox -s tests``.
FAULTS = ROOT / "tests" / "faults"
#: The benchmark harness's unit tests: run by ``nox -s bench_tests``, not by ``nox -s tests``.
BENCH_TESTS = ROOT / "bench" / "tests"

nox.needs_version = ">=2024.4.15"  # for @nox.session(default=False)
nox.options.default_venv_backend = "venv"
nox.options.sessions = ["lint", "types", "tests"]

#: schemathesis fuzzes the relay's HTTP API from its OpenAPI document (tests/test_relay_fuzz.py).
TEST_TOOLS = (
    "pytest>=8",
    "pytest-asyncio>=0.23",
    "hypothesis>=6.100",
    "pytest-docker>=3",
    # raw AMQP in tests (poison messages, queue depths); the plugin itself uses aiormq
    "aio-pika>=9.4,<11",
    "schemathesis>=4.32,<5",
)
#: Extras selected when a plugin is installed from its folder (``tacoq-postgres[binary]``
#: brings libpq inside psycopg's wheels, so a machine without libpq works).
PLUGIN_EXTRAS = {"tacoq-postgres": "binary"}
LINT_TOOLS = ("ruff>=0.17,<0.18", "import-linter>=2.17,<3")
#: types-jsonschema: the relay checks REST inputs with jsonschema (untyped itself).
TYPE_TOOLS = ("mypy>=2.4,<3", "types-jsonschema")
#: The peers the benchmark compares TacoQ with, and what they need to store results in
#: Postgres (Celery's ``db+postgresql://`` backend is SQLAlchemy over psycopg2), plus psutil
#: for CPU time and peak RSS. Installed from PyPI into the bench session only.
BENCH_TOOLS = (
    "celery>=5.3,<6",
    "sqlalchemy>=2,<3",
    "psycopg2-binary>=2.9,<3",
    "dramatiq[rabbitmq]>=1.15,<2",
    "psutil>=5.9",
    # the raw-library baselines (tacoq-rabbit itself talks to aiormq)
    "aio-pika>=9.4,<11",
)


def plugin_dirs() -> list[Path]:
    """Return every ``plugins/*/`` folder that holds a package (has a ``pyproject.toml``)."""
    return sorted(pyproject.parent for pyproject in ROOT.glob("plugins/*/pyproject.toml"))


def plugin_requirement(folder: Path) -> str:
    """The pip requirement that installs the plugin in ``folder``, with its selected extras."""
    extras = PLUGIN_EXTRAS.get(folder.name)
    return relative(folder) + (f"[{extras}]" if extras else "")


def relative(path: Path) -> str:
    """Return ``path`` as ``./relative/path`` from the repository root (for pip and pytest)."""
    return f"./{path.relative_to(ROOT).as_posix()}"


def local_packages(core_extras: str = "relay,testing", *, plugins: bool = True) -> list[str]:
    """Return the pip requirements that install our packages from their folders, not an index."""
    packages = [f"./core[{core_extras}]", "./cli"]
    if plugins:
        packages += [plugin_requirement(folder) for folder in plugin_dirs()]
    return packages


def install_local(
    session: nox.Session, *tools: str, core_extras: str = "relay,testing", plugins: bool = True
) -> None:
    """Install our packages (non-editable, from their folders) and ``tools`` in ONE pip call.

    One call lets pip resolve every ``tacoq-core==<this version>`` pin against the local
    folder instead of looking for it on an index.
    """
    session.install(*local_packages(core_extras, plugins=plugins), *tools)


def test_paths() -> list[str]:
    """Return the test folders that exist: core, cli, every plugin's, and the cross-package ones."""
    candidates = [ROOT / "core" / "tests", ROOT / "cli" / "tests"]
    candidates += [folder / "tests" for folder in plugin_dirs()]
    candidates.append(ROOT / "tests")
    return [relative(path) for path in candidates if path.is_dir()]


def names_tests(arg: str) -> bool:
    """Return True when a pytest argument selects tests by path (``path`` or ``path::node``)."""
    return not arg.startswith("-") and (ROOT / arg.split("::", 1)[0]).exists()


@nox.session
def tests(session: nox.Session) -> None:
    """Run every package's tests and the cross-package ones (``-- ARGS`` go to pytest).

    Paths among the arguments replace the default test folders. Service tests take
    ``TACOQ_TEST_AMQP_URL`` / ``TACOQ_TEST_POSTGRES_URL`` (see ``tacoq.testing.services``).
    """
    install_local(session, *TEST_TOOLS)
    args = list(session.posargs)
    paths = [] if any(names_tests(arg) for arg in args) else test_paths()
    if paths:  # the fault-injection suite restarts services: only `nox -s faults` runs it
        paths.append(f"--ignore={relative(FAULTS)}")
    session.run("pytest", *paths, *args)


@nox.session(default=False)
def faults(session: nox.Session) -> None:
    """Run the fault-injection suite (``tests/faults``): real worker and relay processes, worker
    kills, RabbitMQ and Postgres restarts, poison messages (``-- ARGS`` go to pytest).

    Paths among the arguments (``-- tests/faults/FILE.py::TEST``) replace the suite's folder,
    so one scenario can run alone. The suite restarts the services it uses (briefly): run it
    against RabbitMQ and Postgres you may restart (``TACOQ_TEST_AMQP_URL`` /
    ``TACOQ_TEST_POSTGRES_URL``, as ``.ci/run`` sets). Each scenario's counts go to
    ``TACOQ_FAULTS_SUMMARY`` (default: a JSON file in the temp dir), from which
    ``docs/reliability.md`` is written.
    """
    install_local(session, *TEST_TOOLS)
    args = list(session.posargs)
    # ``-- tests/faults/x.py::test`` runs that scenario only, not the whole suite besides
    paths = [] if any(names_tests(arg) for arg in args) else [relative(FAULTS)]
    session.run("pytest", *paths, *args)


@nox.session
def lint(session: nox.Session) -> None:
    """Check the code: ruff's lint rules and formatting, then the core's import contracts
    (import-linter, ``[tool.importlinter]`` in the root ``pyproject.toml``: the layout by role
    of docs/architecture.md, read from the source, nothing installed)."""
    session.install(*LINT_TOOLS)
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("lint-imports", env={"PYTHONPATH": str(ROOT / "core" / "src")})


@nox.session
def types(session: nox.Session) -> None:
    """Type-check with ``mypy --strict`` (configured in the root ``pyproject.toml``)."""
    install_local(session, *TYPE_TOOLS)
    session.run("mypy", *session.posargs)


@nox.session
def demo(session: nox.Session) -> None:
    """Run ``tacoq demo`` on the embedded defaults (``-- ARGS`` go to the demo)."""
    install_local(session, core_extras="relay", plugins=False)
    session.run("tacoq", "demo", *session.posargs)


@nox.session(default=False)
def bench(session: nox.Session) -> None:
    """Run the benchmark harness (``python -m bench``; ``-- --quick`` for a short run).

    Besides TacoQ (from this checkout) it installs Celery 5 and Dramatiq with their Postgres
    result storage from PyPI: the peer scenarios measure them in the same run. ``-- --compare
    REV`` compares this checkout with revision REV instead, built into its own virtual
    environment under ``.bench/`` (docs/benchmarks.md, "A/B comparisons").
    """
    install_local(session, *BENCH_TOOLS)
    passed_on = ["--", *session.posargs] if session.posargs else []
    # The harness writes the command that produced the numbers into docs/benchmarks.md.
    command = shlex.join(["nox", "-s", "bench", *passed_on])
    session.run("python", "-m", "bench", *session.posargs, env={"TACOQ_BENCH_COMMAND": command})


@nox.session(default=False)
def bench_tests(session: nox.Session) -> None:
    """Run the benchmark harness's unit tests (``bench/tests``: the pure parts of ``--compare``,
    no service, no measurement; ``-- ARGS`` go to pytest).

    ``python -m pytest`` puts the checkout on ``sys.path``, where the ``bench`` package lives.
    """
    install_local(session)  # the root conftest loads tacoq.testing's fixtures
    session.run("python", "-m", "pytest", relative(BENCH_TESTS), *session.posargs)
