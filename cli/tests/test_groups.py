"""Mounting plugin command groups: collisions are refused naming both sides (in-process)."""

from __future__ import annotations

import pytest
import typer
from typer.testing import CliRunner

from tacoq.contracts.hookspecs import hookimpl
from tacoq.plugins import PluginHost, build_plugin_host
from tacoq_cli.main import build_app


class GroupPlugin:
    """A throw-away plugin offering one command group."""

    def __init__(self, name: str, group: object, said: str = "") -> None:
        self.name, self.group, self.said = name, group, said

    @hookimpl
    def tacoq_cli_group(self) -> tuple[str, object]:
        return (self.name, self.group)


def greeting(text: str) -> typer.Typer:
    app = typer.Typer()

    @app.command()
    def say() -> None:
        print(text)

    @app.command()
    def other() -> None:
        print("other")

    return app


@pytest.fixture
def host() -> PluginHost:
    return build_plugin_host(env={"TACOQ_DISABLE_PLUGIN_AUTOLOAD": "1"})


def test_second_plugin_with_the_same_group_name_is_refused(
    host: PluginHost, capsys: pytest.CaptureFixture[str]
) -> None:
    host.register(GroupPlugin("greet", greeting("first")), "first", ("tacoq-first", "1.0"))
    host.register(GroupPlugin("greet", greeting("second")), "second", ("tacoq-second", "2.0"))

    app = build_app(host)

    warning = capsys.readouterr().err.strip()
    assert warning.startswith("warning: ")
    assert "'first'" in warning
    assert "'second'" in warning
    assert "\n" not in warning
    result = CliRunner().invoke(app, ["greet", "say"])
    assert result.exit_code == 0, result.output
    # Hook-call order decides which one is kept; the kept one is named as the owner.
    kept = result.output.strip()
    assert kept in {"first", "second"}
    assert f"which plugin '{kept}'" in warning


@pytest.mark.parametrize("name", ["worker", "demo", "plugins", "relay", "publish", "task"])
def test_core_command_names_are_refused(
    name: str, host: PluginHost, capsys: pytest.CaptureFixture[str]
) -> None:
    host.register(GroupPlugin(name, greeting("hijacked")), "hijacker", ("tacoq-hijack", "1"))
    build_app(host)
    warning = capsys.readouterr().err
    assert "'hijacker'" in warning
    assert f"`tacoq {name}`" in warning


def test_a_group_that_is_not_a_typer_app_is_skipped(
    host: PluginHost, capsys: pytest.CaptureFixture[str]
) -> None:
    host.register(GroupPlugin("odd", object()), "odd", ("tacoq-odd", "1"))
    app = build_app(host)
    assert "not a typer.Typer" in capsys.readouterr().err
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "odd" not in result.output


def test_a_group_hook_that_raises_leaves_the_core_commands(
    host: PluginHost, capsys: pytest.CaptureFixture[str]
) -> None:
    class Exploding:
        @hookimpl
        def tacoq_cli_group(self) -> tuple[str, object]:
            raise RuntimeError("boom")

    host.register(Exploding(), "exploding", ("tacoq-exploding", "1"))
    app = build_app(host)
    assert "boom" in capsys.readouterr().err
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0
    assert "tacoq-core" in result.output
