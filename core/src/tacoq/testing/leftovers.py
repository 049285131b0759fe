"""Pytest plugin: a test session that leaves RabbitMQ queues or Postgres schemas behind fails.

Load it from a ``conftest.py`` (the repository's root one does)::

    pytest_plugins = ["tacoq.testing.services", "tacoq.testing.leftovers"]

Its session-scoped autouse fixture :func:`leave_nothing_behind` lists, before the first test,
the queues and exchanges of the RabbitMQ at ``TACOQ_TEST_AMQP_URL`` and the schemas of the
Postgres at ``TACOQ_TEST_POSTGRES_URL``, lists them again after the last test, and fails the
session (an error at the teardown of the last test, so the exit code is not 0) naming what is
new: at most :data:`SHOWN` names, and a count. It lists with the services' own command-line
tools, so it needs no client library: ``rabbitmqctl list_queues``/``list_exchanges`` on the
URL's virtual host (AMQP cannot list, and the management plugin may be missing; rabbitmqctl
talks to the node on this machine, so a RabbitMQ elsewhere is not checked) and ``psql``
(``pg_namespace``). A service whose variable is unset is not checked; one whose tool is missing
or fails is named in the terminal summary, and fails the session under
``TACOQ_REQUIRE_SERVICES=1`` (as CI runs), where a check that cannot run must not pass.

Which new names count is :data:`SCOPE_VAR` (``TACOQ_TEST_LEFTOVERS``):

- ``session`` (the default): the names of this session's own namespaces, those made by
  :func:`~tacoq.testing.eventually.fresh_namespace` in this process, which all carry
  :data:`~tacoq.testing.eventually.NAMESPACE_MARK`, and those of the default namespace
  ``tacoq``, which no test should use. Other processes (a benchmark, another checkout's test
  run) may create names on the same services meanwhile; they are not this session's to delete.
- ``all``: every name that appeared during the session, for a machine where nothing else runs
  (CI: ``.ci/run`` sets it). It also catches namespaces a test did not make with
  ``fresh_namespace``.
- ``off``: no check.

Not counted in any scope: queues RabbitMQ deletes by itself (exclusive ones, and those with an
``x-expires`` argument such as a publisher's reply queue) and Postgres's own ``pg_*`` schemas.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

import pytest

from tacoq.config import DEFAULT_NAMESPACE
from tacoq.testing.eventually import NAMESPACE_MARK
from tacoq.testing.services import AMQP, POSTGRES, services_required

__all__ = [
    "SCOPE_VAR",
    "SHOWN",
    "Snapshot",
    "is_ours",
    "leave_nothing_behind",
    "leftovers",
    "report",
    "take_snapshot",
]

SCOPE_VAR = "TACOQ_TEST_LEFTOVERS"
"""``session`` (default), ``all`` or ``off``: which new names fail the session (see above)."""
SCOPES = ("session", "all", "off")
#: At most this many leftover names are shown; the rest are counted.
SHOWN = 20

QUEUES = "RabbitMQ queues"
EXCHANGES = "RabbitMQ exchanges"
SCHEMAS = "Postgres schemas"

_RABBITMQCTL_TIMEOUT_S = 60.0
_POSTGRES_TIMEOUT_S = 10
_LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", ""})
_MARKED = re.compile(rf"[-_]{NAMESPACE_MARK}[0-9a-f]{{10}}")
_unchecked_key = pytest.StashKey[dict[str, str]]()
_scope_key = pytest.StashKey[str]()


@dataclass(frozen=True)
class Snapshot:
    """The names found in each place (:data:`QUEUES`, :data:`EXCHANGES`, :data:`SCHEMAS`), and
    why a place could not be listed."""

    names: dict[str, frozenset[str]] = field(default_factory=dict)
    unlisted: dict[str, str] = field(default_factory=dict)


def is_ours(name: str) -> bool:
    """Whether a queue, exchange or schema belongs to this session's namespaces (``session``
    scope): one of :func:`~tacoq.testing.eventually.fresh_namespace`'s made in this process, or
    the default namespace's."""
    default = name.startswith(f"{DEFAULT_NAMESPACE}.") or name == f"tacoq_{DEFAULT_NAMESPACE}"
    return default or bool(_MARKED.search(name))


def leftovers(
    before: Snapshot, after: Snapshot, counts: Callable[[str], bool] = lambda _: True
) -> dict[str, list[str]]:
    """The names of each place listed in both snapshots that only ``after`` has and that
    ``counts``; places with none are left out."""
    found: dict[str, list[str]] = {}
    for place, names in after.names.items():
        if place in before.names:
            new = sorted(name for name in names - before.names[place] if counts(name))
            if new:
                found[place] = new
    return found


def report(found: Mapping[str, list[str]], scope: str = "session") -> str:
    """What a test session left behind, for humans: at most :data:`SHOWN` names, shared by the
    places, and how many each place has."""
    total = sum(len(names) for names in found.values())
    which = "of its own namespaces" if scope == "session" else "that appeared while it ran"
    lines = [
        f"the test session left {total} name(s) behind {which} "
        f"({SCOPE_VAR}={scope}; checked after the last test, not by it):"
    ]
    each = max(1, SHOWN // max(1, len(found)))  # every place shows some of its names
    for place, names in found.items():
        shown = names[:each]
        lines.append(f"  {place} ({len(names)}):")
        lines += [f"    {name}" for name in shown]
        if len(names) > len(shown):
            lines.append(f"    ... and {len(names) - len(shown)} more")
    lines.append(
        "A name starts with the prefix the test that made it gave fresh_namespace; every test "
        "deletes what it creates (tacoq_rabbit.link.delete_namespace for a namespace's queues "
        "and exchanges, tacoq_postgres.testing.drop_schemas). By hand: "
        "`rabbitmqctl delete_queue NAME`, `DROP SCHEMA NAME CASCADE`."
    )
    return "\n".join(lines)


def _vhost(amqp_url: str) -> str:
    """The virtual host an AMQP URL names (``/`` when its path is empty or ``/``)."""
    path = urlsplit(amqp_url).path
    return unquote(path[1:]) if len(path) > 1 else "/"


def _rabbitmqctl(amqp_url: str) -> dict[str, frozenset[str]]:
    """The queues (less those RabbitMQ deletes by itself) and exchanges of the URL's virtual
    host, by ``rabbitmqctl``; raises ``RuntimeError`` saying why they cannot be listed."""
    host = urlsplit(amqp_url).hostname or ""
    if host not in _LOCAL_HOSTS:
        raise RuntimeError(f"{host} is not this machine, where rabbitmqctl runs")
    ctl = shutil.which("rabbitmqctl")
    if ctl is None:
        raise RuntimeError("rabbitmqctl is not installed")
    base = [ctl, "-s", "-p", _vhost(amqp_url)]
    commands = {
        QUEUES: [*base, "list_queues", "name", "exclusive", "arguments"],
        EXCHANGES: [*base, "list_exchanges", "name"],
    }
    running = {
        place: subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            errors="replace",
        )
        for place, argv in commands.items()
    }
    outputs: dict[str, str] = {}
    for place, process in running.items():
        try:
            out, err = process.communicate(timeout=_RABBITMQCTL_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
            why = f"rabbitmqctl did not answer in {_RABBITMQCTL_TIMEOUT_S:.0f}s"
            raise RuntimeError(why) from None
        if process.returncode != 0:
            said = (err.strip() or out.strip()).splitlines()
            raise RuntimeError(f"rabbitmqctl failed: {said[0] if said else process.returncode}")
        outputs[place] = out
    queues = set()
    for line in outputs[QUEUES].splitlines():
        name, _, rest = line.partition("\t")
        exclusive, _, arguments = rest.partition("\t")
        if name and exclusive != "true" and '"x-expires"' not in arguments:
            queues.add(name)
    exchanges = {line for line in outputs[EXCHANGES].splitlines() if line}
    return {QUEUES: frozenset(queues), EXCHANGES: frozenset(exchanges)}


def _schemas(postgres_url: str) -> frozenset[str]:
    """The schemas of the URL's database, less Postgres's own (``pg_*``,
    ``information_schema``), by ``psql``; raises ``RuntimeError`` saying why they cannot be
    listed."""
    psql = shutil.which("psql")
    if psql is None:
        raise RuntimeError("psql is not installed")
    query = (
        "SELECT nspname FROM pg_catalog.pg_namespace "
        "WHERE nspname NOT LIKE 'pg\\_%' AND nspname <> 'information_schema'"
    )
    argv = [psql, "--no-psqlrc", "--no-align", "--tuples-only", "--quiet"]
    argv += ["--set=ON_ERROR_STOP=1", f"--command={query}", postgres_url]
    env = {**os.environ, "PGCONNECT_TIMEOUT": str(_POSTGRES_TIMEOUT_S)}
    try:
        done = subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            errors="replace",
            env=env,
            timeout=_POSTGRES_TIMEOUT_S * 3,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"psql did not answer in {_POSTGRES_TIMEOUT_S * 3}s") from None
    if done.returncode != 0:
        said = (done.stderr.strip() or done.stdout.strip()).splitlines()
        raise RuntimeError(f"psql failed: {said[0] if said else done.returncode}")
    return frozenset(line for line in done.stdout.splitlines() if line)


def take_snapshot(env: Mapping[str, str] | None = None) -> Snapshot:
    """List the queues, exchanges and schemas of the services the environment's
    ``TACOQ_TEST_AMQP_URL`` and ``TACOQ_TEST_POSTGRES_URL`` name (unset: not listed)."""
    env = os.environ if env is None else env
    snapshot = Snapshot()
    amqp_url = env.get(AMQP.env_var, "").strip()
    if amqp_url:
        try:
            snapshot.names.update(_rabbitmqctl(amqp_url))
        except (OSError, RuntimeError) as exc:
            snapshot.unlisted["RabbitMQ"] = str(exc)
    postgres_url = env.get(POSTGRES.env_var, "").strip()
    if postgres_url:
        try:
            snapshot.names[SCHEMAS] = _schemas(postgres_url)
        except (OSError, RuntimeError) as exc:
            snapshot.unlisted["Postgres"] = str(exc)
    return snapshot


def pytest_configure(config: pytest.Config) -> None:
    """Read :data:`SCOPE_VAR` once; a value that is not a scope is a usage error naming them."""
    raw = os.environ.get(SCOPE_VAR, "")
    scope = raw.strip().lower() or "session"
    if scope not in SCOPES:
        shown = raw if len(raw) <= 40 else f"{raw[:40]}..."
        raise pytest.UsageError(
            f"{SCOPE_VAR}={shown!r} is not a scope: use one of {', '.join(SCOPES)}"
        )
    config.stash[_scope_key] = scope


@pytest.fixture(scope="session", autouse=True)
def leave_nothing_behind(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail the session when it leaves queues, exchanges or schemas behind (module docstring).

    Session-scoped and autouse, so it is set up before any other fixture that could create
    something, and torn down after the last test's, when its error fails the session.
    """
    scope = request.config.stash.get(_scope_key, "session")
    if scope == "off":
        yield
        return
    before = take_snapshot()
    yield
    after = take_snapshot()
    unlisted = {**before.unlisted, **after.unlisted}
    request.config.stash[_unchecked_key] = unlisted
    found = leftovers(before, after, is_ours if scope == "session" else lambda _: True)
    problems = [report(found, scope)] if found else []
    if unlisted and services_required():
        problems += [f"{place} could not be checked: {why}" for place, why in unlisted.items()]
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Say which service the leftover check could not list, and why."""
    for place, why in terminalreporter.config.stash.get(_unchecked_key, {}).items():
        terminalreporter.write_line(f"leftover check: {place} not checked ({why})")
