"""The `tacoq` command as a user runs it: real processes, real plugin discovery.

Throw-away plugins are installed the way a real one is (a dist-info with an entry point on the
path); nothing in TacoQ is mocked.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

import pytest

from tacoq.plugins import BUILTIN_PLUGINS

Run = Callable[..., subprocess.CompletedProcess[str]]
ExpectOneLineError = Callable[..., str]

BROKEN_PLUGIN = """
raise ImportError("tacoq-throwaway-broken needs libfrobnicate, which is missing")
"""

GREET_PLUGIN = """
from tacoq.contracts.hookspecs import hookimpl


@hookimpl
def tacoq_cli_group():
    import typer

    app = typer.Typer(help="Greetings from a plugin.")

    @app.command()
    def hello(name: str = "world") -> None:
        print(f"hello {name}, from a plugin group")

    @app.command()
    def bye() -> None:
        print("bye")

    return ("greet", app)
"""

WORKER_GROUP_PLUGIN = """
from tacoq.contracts.hookspecs import hookimpl


@hookimpl
def tacoq_cli_group():
    import typer

    app = typer.Typer()

    @app.command()
    def hijack() -> None:
        print("the plugin's worker group ran")

    return ("worker", app)
"""

WORKER_APP_MODULE = """
import tacoq

worker = tacoq.WorkerApp("cli-test")
secret_worker = tacoq.WorkerApp("cli-test", broker="nats://alice:hunter2@broker.example:4222")
"""


# -- version and help -----------------------------------------------------------------------


def test_version_prints_cli_and_core_versions(run_tacoq: Run) -> None:
    result = run_tacoq("--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"tacoq {metadata.version('tacoq')}",
        f"tacoq-core {metadata.version('tacoq-core')}",
    ]


def test_no_arguments_shows_help_and_succeeds(run_tacoq: Run) -> None:
    result = run_tacoq()
    assert result.returncode == 0, result.stderr
    for command in ("worker", "demo", "plugins"):
        assert command in result.stdout


@pytest.mark.parametrize("group", ["dlq", "task", "namespace", "rabbit", "postgres"])
def test_a_group_alone_shows_its_help_and_succeeds(run_tacoq: Run, group: str) -> None:
    """``tacoq dlq`` with no command asks for help, as ``tacoq`` alone does: the page on
    stdout, exit 0, nothing on stderr."""
    result = run_tacoq(group)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"Usage: tacoq {group} ")
    assert "Commands:" in result.stdout
    assert result.stderr == ""


# -- plugins ----------------------------------------------------------------------------------


def test_plugins_table_lists_the_builtins(run_tacoq: Run) -> None:
    result = run_tacoq("plugins")
    assert result.returncode == 0, result.stderr
    for name in BUILTIN_PLUGINS:
        assert name in result.stdout
    assert "broker:memory://" in result.stdout
    assert "tacoq-core" in result.stdout


OBSERVER_PLUGIN = """
from tacoq.contracts.hookspecs import hookimpl


class Quiet:
    def on_task_event(self, event):
        return None


@hookimpl
def tacoq_task_listener():
    return Quiet()


@hookimpl
def tacoq_handler_middleware():
    async def passthrough(ctx, call_next):
        return await call_next()

    return passthrough
"""


@pytest.mark.parametrize("columns", ["40", "80", "200"])
def test_plugins_listing_names_every_hook_and_never_cuts_a_name(
    run_tacoq: Run, make_plugin: Callable[..., Path], columns: str
) -> None:
    site = make_plugin("observer", OBSERVER_PLUGIN)
    result = run_tacoq("plugins", pythonpath=[site], env={"COLUMNS": columns})
    assert result.returncode == 0, result.stderr
    words = result.stdout.split()
    for whole in ("serializer:pydantic,", "broker:memory://,", "tacoq.builtin.serializers"):
        assert whole in words, result.stdout  # each on one line, never split inside
    block = result.stdout.split("observer", 1)[1].split("\n\n", 1)[0]
    assert "task listener" in block
    assert "handler middleware" in block
    assert all(len(line) <= max(40, int(columns)) for line in result.stdout.splitlines())


def test_plugins_json_is_a_list_with_status(run_tacoq: Run) -> None:
    result = run_tacoq("plugins", "--json")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    by_name = {row["name"]: row for row in rows}
    assert set(BUILTIN_PLUGINS) <= set(by_name)
    memory = by_name["tacoq.builtin.memory"]
    assert memory["status"] == "loaded"
    assert memory["distribution"] == "tacoq-core"
    assert "broker:memory://" in memory["provides"]


def test_broken_plugin_is_a_row_not_a_crash(
    run_tacoq: Run, make_plugin: Callable[..., Path]
) -> None:
    site = make_plugin("broken", BROKEN_PLUGIN)

    table = run_tacoq("plugins", pythonpath=[site])
    assert table.returncode == 0, table.stderr
    assert "Traceback" not in table.stdout + table.stderr
    assert "broken" in table.stdout
    assert "failed" in table.stdout
    assert "libfrobnicate" in table.stdout
    assert "TACOQ_BLOCK_PLUGINS=broken" in table.stdout  # the remedy

    listing = run_tacoq("plugins", "--json", pythonpath=[site])
    assert listing.returncode == 0, listing.stderr
    rows = {row["name"]: row for row in json.loads(listing.stdout)}
    broken = rows["broken"]
    assert broken["status"] == "failed"
    assert broken["distribution"] == "tacoq-throwaway-broken"
    assert broken["version"] == "0.1"
    assert "ImportError" in broken["error"]
    assert "libfrobnicate" in broken["error"]
    assert "TACOQ_BLOCK_PLUGINS" in broken["remedy"]
    assert rows["tacoq.builtin.memory"]["status"] == "loaded"  # the others still load


def test_broken_plugin_does_not_break_other_commands(
    run_tacoq: Run, make_plugin: Callable[..., Path]
) -> None:
    site = make_plugin("broken", BROKEN_PLUGIN)
    result = run_tacoq("--version", pythonpath=[site])
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr


# -- worker: every mistake is one line --------------------------------------------------------


def test_worker_unknown_module(run_tacoq: Run, expect_one_line_error: ExpectOneLineError) -> None:
    result = run_tacoq("worker", "nosuchmodule:app")
    expect_one_line_error(result, "nosuchmodule")
    assert result.returncode == 2


def test_worker_ref_without_attribute(
    run_tacoq: Run, expect_one_line_error: ExpectOneLineError
) -> None:
    expect_one_line_error(run_tacoq("worker", "nosuchmodule"), "MODULE:ATTR")


def test_worker_ref_that_is_not_a_worker_app(
    run_tacoq: Run, expect_one_line_error: ExpectOneLineError
) -> None:
    expect_one_line_error(run_tacoq("worker", "json:dumps"), "not a tacoq.WorkerApp")


def test_worker_refuses_an_explicit_memory_broker(
    run_tacoq: Run, expect_one_line_error: ExpectOneLineError
) -> None:
    result = run_tacoq("worker", "json:dumps", "--broker", "memory://")
    expect_one_line_error(result, "memory://", "separate process", "tacoq demo")
    assert result.returncode == 2


def test_worker_without_a_broker_says_none_is_configured(
    run_tacoq: Run, expect_one_line_error: ExpectOneLineError, workdir: Path
) -> None:
    # No --broker, no TACOQ_BROKER_URL and none in the app: nobody asked for memory://, so the
    # error says how to configure a broker instead of refusing one.
    (workdir / "cliapp.py").write_text(WORKER_APP_MODULE)
    result = run_tacoq("worker", "cliapp:worker")
    line = expect_one_line_error(result, "no broker configured", "TACOQ_BROKER_URL", "--broker")
    assert "memory://" not in line
    assert result.returncode == 2


def test_relay_without_a_store_or_broker_says_none_is_configured(
    run_tacoq: Run, expect_one_line_error: ExpectOneLineError
) -> None:
    line = expect_one_line_error(run_tacoq("relay"), "no store configured", "TACOQ_STORE_URL")
    assert "--store" in line
    result = run_tacoq("relay", "--store", "sqlite:///relay.db")
    expect_one_line_error(result, "no broker configured", "TACOQ_BROKER_URL", "--broker")
    assert result.returncode == 2


def test_worker_reload_without_the_hotreload_plugin(
    run_tacoq: Run, expect_one_line_error: ExpectOneLineError
) -> None:
    # Autoload off, so the answer does not depend on whether tacoq-hotreload is installed here.
    result = run_tacoq(
        "worker", "json:dumps", "--reload", env={"TACOQ_DISABLE_PLUGIN_AUTOLOAD": "1"}
    )
    expect_one_line_error(result, "pip install ./plugins/tacoq-hotreload from a TacoQ checkout")


def test_worker_unknown_scheme_lists_installed_schemes(
    run_tacoq: Run, expect_one_line_error: ExpectOneLineError
) -> None:
    result = run_tacoq("worker", "json:dumps", "--broker", "nats://broker.example:4222")
    expect_one_line_error(result, "'nats'", "installed broker schemes", "memory://")


@pytest.mark.parametrize(
    ("args", "env"),
    [
        (["worker", "json:dumps", "--broker", "nats://alice:hunter2@broker.example"], {}),
        (["worker", "json:dumps", "--broker", "memory://alice:hunter2@local"], {}),
        (["worker", "cliapp:worker"], {"TACOQ_BROKER_URL": "memory://alice:hunter2@local"}),
        (["worker", "cliapp:secret_worker"], {}),
        (["worker", "json:dumps", "amqp://alice:hunter2@broker.example"], {}),
    ],
    ids=["option", "refused-scheme", "environment", "app-argument", "stray-argument"],
)
def test_a_password_in_a_url_never_appears(
    args: list[str],
    env: dict[str, str],
    run_tacoq: Run,
    expect_one_line_error: ExpectOneLineError,
    workdir: Path,
) -> None:
    (workdir / "cliapp.py").write_text(WORKER_APP_MODULE)
    result = run_tacoq(*args, env=env)
    line = expect_one_line_error(result)
    assert "hunter2" not in result.stdout + result.stderr
    assert "alice" in line  # the URL is still recognisable, only the password is hidden


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["worker", "json:dumps", "--concurrency", "0"], "--concurrency"),
        (["worker", "json:dumps", "--prefetch", "many"], "--prefetch"),
        (["worker", "json:dumps", "--namespace", "no spaces"], "namespace"),
        (["worker", "json:dumps", "--reload-dir", "src"], "--reload"),
        (["worker"], "MODULE:ATTR"),
        (["worker", "json:dumps", "--bogus"], "--bogus"),
        (["no-such-command"], "no-such-command"),
        (["demo", "--tasks", "0"], "--tasks"),
    ],
)
def test_bad_usage_is_one_line_with_exit_code_2(
    args: list[str], needle: str, run_tacoq: Run, expect_one_line_error: ExpectOneLineError
) -> None:
    result = run_tacoq(*args)
    expect_one_line_error(result, needle)
    assert result.returncode == 2


# -- plugin command groups --------------------------------------------------------------------


def test_plugin_group_is_mounted_and_runs(run_tacoq: Run, make_plugin: Callable[..., Path]) -> None:
    site = make_plugin("greet", GREET_PLUGIN)

    result = run_tacoq("greet", "hello", "--name", "taco", pythonpath=[site])
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "hello taco, from a plugin group"
    assert result.stderr == ""

    help_text = run_tacoq("--help", pythonpath=[site])
    assert "greet" in help_text.stdout

    listing = run_tacoq("plugins", "--json", pythonpath=[site])
    rows = {row["name"]: row for row in json.loads(listing.stdout)}
    assert rows["greet"]["provides"] == ["cli:greet"]
    assert rows["greet"]["distribution"] == "tacoq-throwaway-greet"


def test_plugin_group_named_like_a_core_command_is_refused(
    run_tacoq: Run, make_plugin: Callable[..., Path], expect_one_line_error: ExpectOneLineError
) -> None:
    site = make_plugin("hijacker", WORKER_GROUP_PLUGIN)

    result = run_tacoq("plugins", pythonpath=[site])
    assert result.returncode == 0, result.stderr
    warnings = result.stderr.strip().splitlines()
    assert len(warnings) == 1, result.stderr
    assert warnings[0].startswith("warning: ")
    assert "'hijacker'" in warnings[0]  # the plugin ...
    assert "`tacoq worker`" in warnings[0]  # ... and the core command it collides with

    # `tacoq worker` is still the core command, not the plugin's group.
    worker = run_tacoq("worker", "json:dumps", pythonpath=[site])
    assert "not a tacoq.WorkerApp" in worker.stderr
    assert "hijack" not in worker.stdout
