"""The plugin system, exercised with real throw-away plugins.

Two kinds of plugin are used: objects and modules registered through ``PluginHost.register``,
and real installed distributions — a ``*.dist-info`` directory with ``METADATA`` and an
``entry_points.txt`` (group ``tacoq``) next to the plugin's module, on ``sys.path`` — found by
``build_plugin_host`` through ``importlib.metadata`` exactly as a pip-installed plugin is.
"""

from __future__ import annotations

import importlib
import logging
import sys
import textwrap
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest

from tacoq.builtin.serializers import JsonSerializer
from tacoq.contracts.hookspecs import hookimpl
from tacoq.contracts.runner import WorkerRunRequest
from tacoq.contracts.serializer import Codec
from tacoq.errors import ConfigError, PluginError, UnknownSchemeError
from tacoq.plugins import (
    BUILTIN_PLUGINS,
    PluginFailure,
    PluginHost,
    build_plugin_host,
    get_plugin_host,
    require_scheme_kind,
    reset_plugin_host,
)
from tacoq.serialization import JSON_CONTENT_TYPE
from tacoq.worker.runner import BuiltinRunner

NO_AUTOLOAD = {"TACOQ_DISABLE_PLUGIN_AUTOLOAD": "1"}


# -- throw-away distributions ----------------------------------------------------------------


@dataclass
class Site:
    """A directory on ``sys.path`` holding throw-away plugin modules and distributions."""

    root: Path
    tag: str
    modules: list[str] = field(default_factory=list)

    def name(self, label: str) -> str:
        """A name unique to this test (entry points, distributions, schemes)."""
        return f"t{self.tag}-{label}"

    def module(self, label: str, source: str) -> str:
        """Write a plugin module; return its import name."""
        module_name = f"tacoq_throwaway_{self.tag}_{label}"
        (self.root / f"{module_name}.py").write_text(textwrap.dedent(source), encoding="utf-8")
        self.modules.append(module_name)
        return module_name

    def dist(self, label: str, entry_points: Mapping[str, str], version: str = "1.2.3") -> str:
        """Write an installed distribution declaring ``entry_points``; return its name."""
        dist_name = self.name(label)
        info = self.root / f"{dist_name.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: {dist_name}\nVersion: {version}\n", encoding="utf-8"
        )
        lines = "".join(f"{name} = {value}\n" for name, value in entry_points.items())
        (info / "entry_points.txt").write_text(f"[tacoq]\n{lines}", encoding="utf-8")
        return dist_name


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Site]:
    root = tmp_path / "site-packages"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))
    made = Site(root, uuid.uuid4().hex[:8])
    yield made
    for module_name in made.modules:
        sys.modules.pop(module_name, None)


def plugin_names(host: PluginHost) -> list[str]:
    """Registered plugin names in registration order."""
    return [name for name, plugin in host.pm.list_name_plugin() if plugin is not None]


def mine(names: list[str], site: Site) -> list[str]:
    """The names this test created (the environment may hold real plugins too)."""
    return [n for n in names if n.startswith(f"t{site.tag}-")]


def failures_of(host: PluginHost, site: Site) -> list[PluginFailure]:
    return [f for f in host.failures if f.name.startswith(f"t{site.tag}-")]


BROKER_PLUGIN = """
    from tacoq.contracts.hookspecs import hookimpl

    class FakeBroker:
        def __init__(self, url, *, namespace):
            self.url = url
            self.namespace = namespace

    def make(url, *, namespace):
        return FakeBroker(url, namespace=namespace)

    @hookimpl
    def tacoq_broker_schemes():
        return {{"{scheme}": make}}
"""


# -- objects and modules registered directly -------------------------------------------------


class FakeBroker:
    def __init__(self, url: str, *, namespace: str) -> None:
        self.url = url
        self.namespace = namespace


class BrokerPlugin:
    def __init__(self, scheme: str) -> None:
        self.scheme = scheme

    @hookimpl
    def tacoq_broker_schemes(self) -> Mapping[str, Any]:
        return {self.scheme: FakeBroker}


class StorePlugin:
    def __init__(self, scheme: str) -> None:
        self.scheme = scheme

    @hookimpl
    def tacoq_store_schemes(self) -> Mapping[str, Any]:
        return {self.scheme: FakeBroker}


def test_builtins_only() -> None:
    host = build_plugin_host(env=NO_AUTOLOAD)
    assert plugin_names(host) == list(BUILTIN_PLUGINS)
    assert host.failures == []
    assert host.broker_schemes() == {"memory": "tacoq.builtin.memory"}
    assert host.store_schemes() == {
        "memory": "tacoq.builtin.memory",
        "sqlite": "tacoq.builtin.sqlite",
    }


def test_register_an_object_plugin() -> None:
    host = build_plugin_host(env=NO_AUTOLOAD)
    host.register(BrokerPlugin("fakemq"), name="fake-broker", distribution=("tacoq-fake", "0.1"))
    assert host.broker_schemes()["fakemq"] == "fake-broker"
    broker: Any = host.create_broker("FakeMQ://host/vhost", namespace="ns1")
    assert isinstance(broker, FakeBroker)
    assert broker.url == "FakeMQ://host/vhost"
    assert broker.namespace == "ns1"
    # the built-in is still there
    assert host.broker_schemes()["memory"] == "tacoq.builtin.memory"


def test_register_a_module_plugin(site: Site) -> None:
    module_name = site.module("modbroker", BROKER_PLUGIN.format(scheme="modmq"))
    module = importlib.import_module(module_name)
    host = build_plugin_host(env=NO_AUTOLOAD)
    host.register(module, name="mod-broker")
    broker: Any = host.create_broker("modmq://x", namespace="ns")
    assert type(broker).__module__ == module_name
    assert broker.namespace == "ns"


def test_unregister() -> None:
    host = build_plugin_host(env=NO_AUTOLOAD)
    host.register(BrokerPlugin("gone"), name="gone")
    assert "gone" in host.broker_schemes()
    host.unregister("gone")
    assert "gone" not in host.broker_schemes()
    host.register(BrokerPlugin("gone"), name="gone")  # the name is free again


def test_store_plugin_and_create_store() -> None:
    host = build_plugin_host(env=NO_AUTOLOAD)
    host.register(StorePlugin("fakedb"), name="fake-store")
    store: Any = host.create_store("fakedb://h/db", namespace="n")
    assert isinstance(store, FakeBroker)
    assert host.store_schemes()["fakedb"] == "fake-store"


# -- entry-point discovery -------------------------------------------------------------------


def test_entry_points_load_after_builtins_sorted_by_name(site: Site) -> None:
    alpha = site.module("alpha", BROKER_PLUGIN.format(scheme=site.name("alpha")))
    zeta = site.module("zeta", BROKER_PLUGIN.format(scheme=site.name("zeta")))
    mid = site.module("mid", BROKER_PLUGIN.format(scheme=site.name("mid")))
    # declared out of order, across two distributions
    site.dist("dist-one", {site.name("zeta"): zeta, site.name("alpha"): alpha})
    site.dist("dist-two", {site.name("mid"): mid})

    host = build_plugin_host(env={})

    names = plugin_names(host)
    assert names[: len(BUILTIN_PLUGINS)] == list(BUILTIN_PLUGINS)
    assert mine(names, site) == [site.name("alpha"), site.name("mid"), site.name("zeta")]
    assert failures_of(host, site) == []
    schemes = host.broker_schemes()
    assert schemes[site.name("alpha")] == site.name("alpha")
    assert schemes[site.name("zeta")] == site.name("zeta")
    broker: Any = host.create_broker(f"{site.name('mid')}://h", namespace="ns")
    assert type(broker).__name__ == "FakeBroker"


def test_entry_point_to_an_object(site: Site) -> None:
    module_name = site.module(
        "obj",
        """
        from tacoq.contracts.hookspecs import hookimpl

        class Plugin:
            @hookimpl
            def tacoq_store_schemes(self):
                return {"objdb": lambda url, *, namespace: (url, namespace)}

        PLUGIN = Plugin()
        """,
    )
    site.dist("obj", {site.name("obj"): f"{module_name}:PLUGIN"})
    host = build_plugin_host(env={})
    assert host.store_schemes()["objdb"] == site.name("obj")
    assert host.create_store("objdb://x", namespace="n") == ("objdb://x", "n")  # type: ignore[comparison-overlap]


def _broken_site(site: Site) -> tuple[str, str, str]:
    good = site.module("good", BROKER_PLUGIN.format(scheme=site.name("good")))
    site.dist("good-dist", {site.name("good"): good})
    broken = site.module(
        "broken",
        """
        import tacoq_this_dependency_is_not_installed  # noqa: F401
        """,
    )
    dist = site.dist("broken-dist", {site.name("broken"): broken})
    return site.name("good"), site.name("broken"), dist


def test_a_plugin_that_fails_to_import_is_recorded_and_skipped(
    site: Site, caplog: pytest.LogCaptureFixture
) -> None:
    good, broken, dist = _broken_site(site)
    with caplog.at_level(logging.WARNING, logger="tacoq.plugins"):
        host = build_plugin_host(env={})

    assert mine(plugin_names(host), site) == [good]
    assert host.pm.get_plugin(broken) is None
    [failure] = failures_of(host, site)
    assert failure.name == broken
    assert failure.distribution == dist
    assert failure.error.startswith("ModuleNotFoundError: ")
    assert "tacoq_this_dependency_is_not_installed" in failure.error
    assert f"pip install --upgrade {dist}" in failure.remedy  # not one of this repository's
    assert f"TACOQ_BLOCK_PLUGINS={broken}" in failure.remedy
    assert broken in caplog.text
    assert "was skipped" in caplog.text
    # the host still works
    assert site.name("good") in host.broker_schemes()


def test_a_plugin_whose_attribute_is_missing_is_recorded(site: Site) -> None:
    module_name = site.module("noattr", "X = 1\n")
    site.dist("noattr", {site.name("noattr"): f"{module_name}:MISSING"})
    host = build_plugin_host(env={})
    [failure] = failures_of(host, site)
    assert failure.error.startswith("AttributeError")


def test_a_plugin_that_raises_on_import_is_recorded(site: Site) -> None:
    module_name = site.module("raises", "raise RuntimeError('configuration missing')\n")
    site.dist("raises", {site.name("raises"): module_name})
    host = build_plugin_host(env={})
    [failure] = failures_of(host, site)
    assert failure.error == "RuntimeError: configuration missing"


def test_strict_plugins_raise_instead(site: Site) -> None:
    _, broken, dist = _broken_site(site)
    with pytest.raises(PluginError) as info:
        build_plugin_host(env={"TACOQ_STRICT_PLUGINS": "1"})
    message = str(info.value)
    assert repr(broken) in message
    assert dist in message
    assert "ModuleNotFoundError" in message
    assert isinstance(info.value.__cause__, ModuleNotFoundError)


@pytest.mark.parametrize("value", ["1", "true", "YES", " on "])
def test_disable_autoload_loads_only_builtins(site: Site, value: str) -> None:
    _broken_site(site)
    host = build_plugin_host(env={"TACOQ_DISABLE_PLUGIN_AUTOLOAD": value})
    assert plugin_names(host) == list(BUILTIN_PLUGINS)
    assert host.failures == []


@pytest.mark.parametrize("value", ["0", "", "no"])
def test_disable_autoload_off_values(site: Site, value: str) -> None:
    good, _, _ = _broken_site(site)
    host = build_plugin_host(env={"TACOQ_DISABLE_PLUGIN_AUTOLOAD": value})
    assert good in plugin_names(host)


def test_allow_list_loads_only_the_named_plugins(site: Site) -> None:
    good, broken, _ = _broken_site(site)
    other = site.module("other", BROKER_PLUGIN.format(scheme=site.name("other")))
    site.dist("other", {site.name("other"): other})
    host = build_plugin_host(env={"TACOQ_PLUGINS": f" {good} , {site.name('other')},"})
    assert plugin_names(host) == [*BUILTIN_PLUGINS, good, site.name("other")]
    assert host.failures == []  # the broken plugin was never imported
    assert broken not in plugin_names(host)


def test_allow_list_with_the_broken_plugin_reports_it(site: Site) -> None:
    _, broken, _ = _broken_site(site)
    host = build_plugin_host(env={"TACOQ_PLUGINS": broken})
    assert plugin_names(host) == list(BUILTIN_PLUGINS)
    assert [f.name for f in host.failures] == [broken]


def test_block_list_skips_plugins(site: Site) -> None:
    good, broken, _ = _broken_site(site)
    host = build_plugin_host(env={"TACOQ_BLOCK_PLUGINS": broken})
    assert mine(plugin_names(host), site) == [good]
    assert failures_of(host, site) == []
    host = build_plugin_host(env={"TACOQ_BLOCK_PLUGINS": f"{broken},{good}"})
    assert mine(plugin_names(host), site) == []


def test_block_list_wins_over_allow_list(site: Site) -> None:
    good, _, _ = _broken_site(site)
    host = build_plugin_host(env={"TACOQ_PLUGINS": good, "TACOQ_BLOCK_PLUGINS": good})
    assert plugin_names(host) == list(BUILTIN_PLUGINS)


def test_block_list_does_not_remove_builtins() -> None:
    host = build_plugin_host(env={"TACOQ_BLOCK_PLUGINS": ",".join(BUILTIN_PLUGINS)})
    assert plugin_names(host)[: len(BUILTIN_PLUGINS)] == list(BUILTIN_PLUGINS)


# -- name and scheme collisions --------------------------------------------------------------


def test_two_plugins_with_one_name_name_both_distributions(site: Site) -> None:
    first = site.module("first", BROKER_PLUGIN.format(scheme=site.name("first")))
    second = site.module("second", BROKER_PLUGIN.format(scheme=site.name("second")))
    dist_a = site.dist("maker-a", {site.name("dup"): first})
    dist_b = site.dist("maker-b", {site.name("dup"): second})
    with pytest.raises(PluginError) as info:
        build_plugin_host(env={})  # not strict: still an error
    message = str(info.value)
    assert repr(site.name("dup")) in message
    assert dist_a in message
    assert dist_b in message
    assert "TACOQ_BLOCK_PLUGINS" in message


def test_registering_a_taken_name_names_both() -> None:
    host = build_plugin_host(env=NO_AUTOLOAD)
    host.register(BrokerPlugin("a1"), name="same", distribution=("dist-one", "1"))
    with pytest.raises(PluginError, match="one from dist-one, one from dist-two"):
        host.register(BrokerPlugin("a2"), name="same", distribution=("dist-two", "1"))
    with pytest.raises(PluginError, match="one from tacoq-core"):
        host.register(BrokerPlugin("a3"), name="tacoq.builtin.memory")
    assert host.broker_schemes()["a1"] == "same"


class Misspelled:
    @hookimpl
    def tacoq_brokr_schemes(self) -> Mapping[str, Any]:
        return {"typo": FakeBroker}


class Unprefixed:
    @hookimpl
    def broker_schemes(self) -> Mapping[str, Any]:
        return {"typo": FakeBroker}


def test_misspelled_hook_names_plugin_and_suggests_the_hook() -> None:
    host = build_plugin_host(env=NO_AUTOLOAD)
    with pytest.raises(PluginError) as info:
        host.register(Misspelled(), name="typo-plugin")
    message = str(info.value)
    assert "'typo-plugin'" in message
    assert "tacoq_brokr_schemes" in message
    assert "did you mean tacoq_broker_schemes?" in message
    # nothing half-registered is left behind
    assert host.pm.get_plugin("typo-plugin") is None
    host.pm.check_pending()
    host.register(BrokerPlugin("ok"), name="typo-plugin")


def test_unknown_hook_without_the_prefix_is_a_plugin_error() -> None:
    host = build_plugin_host(env=NO_AUTOLOAD)
    with pytest.raises(PluginError, match=r"'bare'.*broker_schemes"):
        host.register(Unprefixed(), name="bare")
    host.pm.check_pending()


def test_misspelled_hook_in_an_entry_point(site: Site) -> None:
    module_name = site.module(
        "typo",
        """
        from tacoq.contracts.hookspecs import hookimpl

        @hookimpl
        def tacoq_brokr_schemes():
            return {}
        """,
    )
    dist = site.dist("typo", {site.name("typo"): module_name})
    host = build_plugin_host(env={})  # check_pending() ran and passed
    [failure] = failures_of(host, site)
    assert failure.distribution == dist
    assert "did you mean tacoq_broker_schemes?" in failure.error
    with pytest.raises(PluginError, match="did you mean tacoq_broker_schemes"):
        build_plugin_host(env={"TACOQ_STRICT_PLUGINS": "1"})


def test_hookimpl_with_a_wrong_argument_is_recorded(site: Site) -> None:
    module_name = site.module(
        "badarg",
        """
        from tacoq.contracts.hookspecs import hookimpl

        @hookimpl
        def tacoq_worker_runner(request, extra):
            return None
        """,
    )
    site.dist("badarg", {site.name("badarg"): module_name})
    host = build_plugin_host(env={})
    [failure] = failures_of(host, site)
    assert "extra" in failure.error
    assert host.pm.get_plugin(site.name("badarg")) is None


class WrongArgument:
    @hookimpl
    def tacoq_broker_schemes(self) -> Mapping[str, Any]:
        return {"half": FakeBroker}

    @hookimpl
    def tacoq_worker_runner(self, request: Any, extra: Any) -> Any:
        return None


def test_a_plugin_failing_validation_is_not_left_half_registered() -> None:
    """pluggy registers hooks one by one; a later invalid one must not leave earlier ones."""
    host = build_plugin_host(env=NO_AUTOLOAD)
    with pytest.raises(Exception, match="extra"):
        host.register(WrongArgument(), name="half")
    assert host.pm.get_plugin("half") is None
    assert "half" not in host.broker_schemes()
    host.register(BrokerPlugin("whole"), name="half")  # the name is free


def test_broker_scheme_claimed_twice_names_both_plugins() -> None:
    host = build_plugin_host(env=NO_AUTOLOAD)
    host.register(BrokerPlugin("clash"), name="plugin-one")
    host.register(BrokerPlugin("CLASH"), name="plugin-two")
    with pytest.raises(PluginError) as info:
        host.broker_schemes()
    message = str(info.value)
    assert "broker scheme 'clash'" in message
    assert "'plugin-one'" in message
    assert "'plugin-two'" in message
    with pytest.raises(PluginError):
        host.create_broker("clash://h", namespace="n")


def test_claiming_a_builtin_scheme_names_the_builtin() -> None:
    host = build_plugin_host(env=NO_AUTOLOAD)
    host.register(BrokerPlugin("memory"), name="my-memory")
    with pytest.raises(PluginError, match=r"'tacoq\.builtin\.memory'") as info:
        host.broker_schemes()
    assert "'my-memory'" in str(info.value)


def test_store_scheme_claimed_twice_names_both_plugins(site: Site) -> None:
    source = """
        from tacoq.contracts.hookspecs import hookimpl

        @hookimpl
        def tacoq_store_schemes():
            return {{"{scheme}": lambda url, *, namespace: None}}
    """
    scheme = site.name("db").replace("-", "")
    one = site.module("db1", source.format(scheme=scheme))
    two = site.module("db2", source.format(scheme=scheme))
    site.dist("db", {site.name("db-one"): one, site.name("db-two"): two})
    host = build_plugin_host(env={})  # loading is fine: schemes are collected on use
    with pytest.raises(PluginError) as info:
        host.store_schemes()
    message = str(info.value)
    assert f"store scheme {scheme!r}" in message
    assert repr(site.name("db-one")) in message
    assert repr(site.name("db-two")) in message


def test_unknown_broker_scheme_lists_installed_schemes_without_the_password() -> None:
    host = build_plugin_host(env=NO_AUTOLOAD)
    host.register(BrokerPlugin("fakemq"), name="fake")
    with pytest.raises(UnknownSchemeError) as info:
        host.create_broker("amqp://guest:hunter2@rabbit:5672/", namespace="n")
    message = str(info.value)
    assert "hunter2" not in message
    assert "amqp://guest:***@rabbit:5672/" in message
    assert "broker scheme 'amqp'" in message
    assert "installed broker schemes: fakemq://, memory://" in message
    assert isinstance(info.value, ConfigError)


def test_unknown_store_scheme_lists_installed_schemes_without_the_password() -> None:
    host = build_plugin_host(env=NO_AUTOLOAD)
    with pytest.raises(UnknownSchemeError) as info:
        host.create_store("postgresql://app:s3cret@db/tacoq", namespace="n")
    message = str(info.value)
    assert "s3cret" not in message
    assert "installed store schemes: memory://, sqlite://" in message


def test_not_a_url_never_shows_the_password() -> None:
    host = build_plugin_host(env=NO_AUTOLOAD)
    with pytest.raises(ConfigError) as info:
        host.create_broker("guest:hunter2@rabbit", namespace="n")
    assert "hunter2" not in str(info.value)


def test_require_scheme_kind() -> None:
    require_scheme_kind("amqp://h", in_process=False, command="tacoq relay")
    with pytest.raises(ConfigError) as info:
        require_scheme_kind("memory://", in_process=True, command="tacoq relay")
    assert "tacoq relay" in str(info.value)
    assert "'memory://'" in str(info.value)


# -- tracing ---------------------------------------------------------------------------------


class Listener:
    def on_task_event(self, event: Any) -> None:
        return None


class ListenerPlugin:
    def __init__(self, listener: Any) -> None:
        self.listener = listener

    @hookimpl
    def tacoq_task_listener(self) -> Any:
        return self.listener


def test_trace_hooks_writes_hook_calls_to_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    host = build_plugin_host(env={**NO_AUTOLOAD, "TACOQ_TRACE_HOOKS": "1"})
    host.register(ListenerPlugin(Listener()), name="listening")
    capsys.readouterr()
    host.task_listeners()
    assert host.serializers is not None
    err = capsys.readouterr().err
    assert "tacoq_task_listener" in err
    assert "tacoq_serializers" in err
    assert "finish" in err


def test_no_trace_by_default(capsys: pytest.CaptureFixture[str]) -> None:
    host = build_plugin_host(env=NO_AUTOLOAD)
    host.task_listeners()
    assert host.serializers is not None
    assert "tacoq_task_listener" not in capsys.readouterr().err


# -- what plugins provide --------------------------------------------------------------------


def test_plugin_infos(site: Site) -> None:
    module_name = site.module(
        "full",
        """
        from tacoq.contracts.hookspecs import hookimpl
        from tacoq.builtin.serializers import JsonSerializer

        class Custom(JsonSerializer):
            name = "custom"

        @hookimpl
        def tacoq_broker_schemes():
            return {"fullmq": lambda url, *, namespace: None}

        @hookimpl
        def tacoq_store_schemes():
            return {"fulldb": lambda url, *, namespace: None}

        @hookimpl
        def tacoq_serializers():
            return [Custom()]

        @hookimpl
        def tacoq_cli_group():
            return ("full", object())
        """,
    )
    dist = site.dist("full-dist", {site.name("full"): module_name}, version="4.5.6")
    host = build_plugin_host(env={})
    infos = {info.name: info for info in host.plugin_infos()}

    full = infos[site.name("full")]
    assert full.distribution == dist
    assert full.version == "4.5.6"
    assert full.hooks == (
        "tacoq_broker_schemes",
        "tacoq_cli_group",
        "tacoq_serializers",
        "tacoq_store_schemes",
    )
    assert full.provides == (
        "broker:fullmq://",
        "store:fulldb://",
        "serializer:custom",
        "cli:full",
    )

    core_version = metadata.version("tacoq-core")
    memory = infos["tacoq.builtin.memory"]
    assert (memory.distribution, memory.version) == ("tacoq-core", core_version)
    assert memory.provides == ("broker:memory://", "store:memory://")
    assert infos["tacoq.builtin.sqlite"].provides == ("store:sqlite://",)
    assert infos["tacoq.builtin.serializers"].provides == (
        "serializer:bytes",
        "serializer:text",
        "serializer:pydantic",
        "serializer:json",
    )
    assert infos["tacoq.builtin.runner"].hooks == ("tacoq_worker_runner",)
    assert list(infos)[: len(BUILTIN_PLUGINS)] == list(BUILTIN_PLUGINS)


def test_plugin_infos_for_a_directly_registered_plugin() -> None:
    host = build_plugin_host(env=NO_AUTOLOAD)
    host.register(BrokerPlugin("x1"), name="direct", distribution=("tacoq-direct", "9.9"))
    [info] = [i for i in host.plugin_infos() if i.name == "direct"]
    assert (info.distribution, info.version) == ("tacoq-direct", "9.9")
    assert info.hooks == ("tacoq_broker_schemes",)
    assert info.provides == ("broker:x1://",)


# -- serializers, listeners, middleware, runner, cli groups ----------------------------------


class UpperCodec:
    content_type = "application/x-upper"

    def dump(self, value: Any) -> bytes:
        return str(value).upper().encode()

    def load(self, data: bytes) -> Any:
        return data.decode().lower()


class DictSerializer:
    """A third-party serializer claiming ``dict`` (and nothing else)."""

    name = "upper"
    content_type = "application/x-upper"

    def handles(self, tp: Any) -> bool:
        return tp is dict

    def codec(self, tp: Any) -> Codec:
        return UpperCodec()


class SerializerPlugin:
    @hookimpl
    def tacoq_serializers(self) -> list[Any]:
        return [DictSerializer()]


def test_third_party_serializer_wins_for_its_type() -> None:
    host = build_plugin_host(env=NO_AUTOLOAD)
    before = host.serializers
    assert before.codec_for(dict).content_type == JSON_CONTENT_TYPE

    host.register(SerializerPlugin(), name="upper")
    registry = host.serializers
    assert registry is not before  # the cache was cleared on register
    assert [s.name for s in registry.serializers] == ["upper", "bytes", "text", "pydantic", "json"]
    assert registry.codec_for(dict).content_type == "application/x-upper"
    assert registry.encode({"a": 1}, dict).content_type == "application/x-upper"
    # other types keep their built-in serializers
    assert registry.codec_for(dict[str, int]).content_type == JSON_CONTENT_TYPE
    assert registry.codec_for(str).content_type.startswith("text/plain")

    host.unregister("upper")
    assert host.serializers.codec_for(dict).content_type == JSON_CONTENT_TYPE


def test_third_party_serializer_from_an_entry_point(site: Site) -> None:
    module_name = site.module(
        "ser",
        """
        from tacoq.contracts.hookspecs import hookimpl
        from tacoq.builtin.serializers import JsonSerializer

        class IntSerializer(JsonSerializer):
            name = "ints"
            content_type = "application/x-ints+json"

            def handles(self, tp):
                return tp is int

        @hookimpl
        def tacoq_serializers():
            return [IntSerializer()]
        """,
    )
    site.dist("ser", {site.name("ser"): module_name})
    host = build_plugin_host(env={"TACOQ_PLUGINS": site.name("ser")})
    registry = host.serializers
    assert registry.serializers[0].name == "ints"
    assert next(s for s in registry.serializers if s.handles(int)).name == "ints"
    assert isinstance(registry.serializers[-1], JsonSerializer)


class MiddlewarePlugin:
    def __init__(self, middleware: Any) -> None:
        self.middleware = middleware

    @hookimpl
    def tacoq_handler_middleware(self) -> Any:
        return self.middleware


async def test_task_listeners_and_middlewares_are_collected() -> None:
    host = build_plugin_host(env=NO_AUTOLOAD)
    assert host.task_listeners() == []
    assert host.middlewares() == []

    first, second = Listener(), Listener()
    host.register(ListenerPlugin(first), name="l1")
    host.register(ListenerPlugin(None), name="l-none")  # declines
    host.register(ListenerPlugin(second), name="l2")
    listeners = host.task_listeners()
    assert len(listeners) == 2
    assert {id(x) for x in listeners} == {id(first), id(second)}

    calls: list[str] = []

    def make(label: str) -> Any:
        async def middleware(ctx: Any, call_next: Any) -> Any:
            calls.append(f"{label}:before")
            result = await call_next()
            calls.append(f"{label}:after")
            return result

        return middleware

    outer, inner = make("outer"), make("inner")
    host.register(MiddlewarePlugin(inner), name="m-inner")
    host.register(MiddlewarePlugin(None), name="m-none")
    host.register(MiddlewarePlugin(outer), name="m-outer")  # registered last: called first
    middlewares: list[Any] = host.middlewares()
    assert middlewares == [outer, inner]

    async def handler() -> str:
        calls.append("handler")
        return "done"

    async def call_chain(index: int) -> Any:
        if index == len(middlewares):
            return await handler()
        return await middlewares[index](None, lambda: call_chain(index + 1))

    assert await call_chain(0) == "done"
    assert calls == ["outer:before", "inner:before", "handler", "inner:after", "outer:after"]


class ReloadRunner:
    pass


class ReloadPlugin:
    @hookimpl
    def tacoq_worker_runner(self, request: WorkerRunRequest) -> Any:
        return ReloadRunner() if request.reload else None


def test_worker_runner_is_first_result() -> None:
    host = build_plugin_host(env=NO_AUTOLOAD)
    assert isinstance(host.worker_runner(WorkerRunRequest(app_ref="m:app")), BuiltinRunner)
    assert host.worker_runner(WorkerRunRequest(app_ref="m:app", reload=True)) is None
    host.register(ReloadPlugin(), name="reload")
    reload: Any = host.worker_runner(WorkerRunRequest(app_ref="m:app", reload=True))
    assert isinstance(reload, ReloadRunner)
    plain = host.worker_runner(WorkerRunRequest(app_ref="m:app"))
    assert isinstance(plain, BuiltinRunner)


class CliPlugin:
    def __init__(self, name: str | None) -> None:
        self.name = name

    @hookimpl
    def tacoq_cli_group(self) -> Any:
        return None if self.name is None else (self.name, f"app-{self.name}")


def test_cli_groups() -> None:
    host = build_plugin_host(env=NO_AUTOLOAD)
    assert host.cli_groups() == []
    host.register(CliPlugin("rabbit"), name="p-rabbit")
    host.register(CliPlugin(None), name="p-none")
    host.register(CliPlugin("pg"), name="p-pg")
    assert host.cli_groups() == [("pg", "app-pg", "p-pg"), ("rabbit", "app-rabbit", "p-rabbit")]


# -- the process-wide host -------------------------------------------------------------------


def test_process_wide_host(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TACOQ_DISABLE_PLUGIN_AUTOLOAD", "1")
    reset_plugin_host(None)
    try:
        host = get_plugin_host()
        assert get_plugin_host() is host
        assert plugin_names(host) == list(BUILTIN_PLUGINS)
        replacement = build_plugin_host(env=NO_AUTOLOAD)
        reset_plugin_host(replacement)
        assert get_plugin_host() is replacement
    finally:
        reset_plugin_host(None)
