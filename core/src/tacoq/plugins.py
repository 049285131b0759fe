"""Building the plugin manager, and a typed facade over its hooks.

Loading order: the built-ins first, then the ``tacoq`` entry points sorted by name. A plugin
that fails to import is recorded in :attr:`PluginHost.failures` (name, distribution, error,
remedy) and skipped — or raises under ``TACOQ_STRICT_PLUGINS=1``. ``check_pending()`` always
runs, so a misspelled hook fails loudly.

Environment switches:

- ``TACOQ_DISABLE_PLUGIN_AUTOLOAD=1``: load only the built-ins;
- ``TACOQ_PLUGINS=a,b``: load only these entry points;
- ``TACOQ_BLOCK_PLUGINS=a,b``: never load these entry points;
- ``TACOQ_STRICT_PLUGINS=1``: a plugin that fails to load is an error, not a warning;
- ``TACOQ_TRACE_HOOKS=1``: print every hook call to stderr.
"""

from __future__ import annotations

import difflib
import functools
import logging
import os
import sys
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from types import ModuleType
from typing import TYPE_CHECKING, Any, TypeVar

import pluggy

from tacoq.bus import EventBus
from tacoq.config import redact_url, url_scheme
from tacoq.contracts import hookspecs
from tacoq.errors import ConfigError, PluginError, UnknownSchemeError

if TYPE_CHECKING:
    from tacoq.contracts.broker import Broker, BrokerFactory
    from tacoq.contracts.lifecycle import HandlerMiddleware, LifecycleEvent, TaskListener
    from tacoq.contracts.runner import WorkerRunner, WorkerRunRequest
    from tacoq.contracts.serializer import Serializer
    from tacoq.contracts.store import Store, StoreFactory
    from tacoq.serialization import SerializerRegistry

__all__ = [
    "BUILTIN_PLUGINS",
    "LOCAL_DISTRIBUTIONS",
    "PluginFailure",
    "PluginHost",
    "PluginInfo",
    "build_plugin_host",
    "default_registry",
    "get_plugin_host",
    "install_hint",
    "reset_plugin_host",
]

log = logging.getLogger("tacoq.plugins")

#: Built-in plugin modules, registered first, in this order.
BUILTIN_PLUGINS = (
    "tacoq.builtin.memory",
    "tacoq.builtin.sqlite",
    "tacoq.builtin.serializers",
    "tacoq.builtin.runner",
)
CORE_DISTRIBUTION = "tacoq-core"
_TRUE = {"1", "true", "yes", "on"}

F = TypeVar("F")


@dataclass(frozen=True, slots=True)
class PluginFailure:
    """A plugin that could not be loaded, and what to do about it."""

    name: str
    distribution: str
    error: str
    remedy: str


@dataclass(frozen=True, slots=True)
class PluginInfo:
    """One loaded plugin, as ``tacoq plugins`` lists it."""

    name: str
    distribution: str
    version: str
    hooks: tuple[str, ...]
    provides: tuple[str, ...] = field(default_factory=tuple)


def _flag(env: Mapping[str, str], name: str) -> bool:
    return env.get(name, "").strip().lower() in _TRUE


def _names(env: Mapping[str, str], name: str) -> set[str]:
    return {n.strip() for n in env.get(name, "").split(",") if n.strip()}


class PluginHost:
    """The plugin manager and typed accessors for what the plugins provide."""

    def __init__(self, pm: pluggy.PluginManager) -> None:
        self.pm = pm
        self.failures: list[PluginFailure] = []
        self.distributions: dict[str, tuple[str, str]] = {}

    # -- registration ----------------------------------------------------------------------

    def register(
        self, plugin: object, name: str, distribution: tuple[str, str] | None = None
    ) -> None:
        """Register a plugin object; two plugins with one name is an error naming both."""
        if self.pm.has_plugin(name) or self.pm.get_plugin(name) is not None:
            first = self.distributions.get(name, ("unknown", ""))[0]
            second = distribution[0] if distribution else "unknown"
            raise PluginError(
                f"two plugins are named {name!r}: one from {first}, one from {second}; "
                "uninstall one of them or block it with TACOQ_BLOCK_PLUGINS"
            )
        try:
            self.pm.register(plugin, name=name)
        except Exception:
            # pluggy leaves a plugin whose hook failed validation half-registered; undo that.
            if self.pm.get_plugin(name) is plugin:
                self.pm.unregister(name=name)
            raise
        self._check_hook_names(plugin, name)
        self.distributions[name] = distribution or (CORE_DISTRIBUTION, _version(CORE_DISTRIBUTION))
        self._clear_caches()

    def unregister(self, name: str) -> None:
        """Remove a plugin (used by tests that register throw-away plugins)."""
        self.pm.unregister(name=name)
        self.distributions.pop(name, None)
        self._clear_caches()

    def _check_hook_names(self, plugin: object, name: str) -> None:
        known = _HOOK_NAMES
        for attr in dir(plugin):
            if attr in known:
                continue
            target = getattr(plugin, attr, None)
            if callable(target) and hasattr(target, hookspecs.PROJECT_NAME + "_impl"):
                self.pm.unregister(name=name)
                close = difflib.get_close_matches(attr, sorted(known), n=1)
                hint = f" (did you mean {close[0]}?)" if close else ""
                raise PluginError(f"plugin {name!r} implements unknown hook {attr}{hint}")

    def _clear_caches(self) -> None:
        for attr in ("serializers", "bus"):
            self.__dict__.pop(attr, None)

    # -- schemes -----------------------------------------------------------------------------

    def _answers(self, hook_name: str) -> Iterator[tuple[str, Any]]:
        """``(plugin name, answer)`` of each implementation of a no-argument hook, in hook call
        order, for the accessors that must know which plugin answered what. Each call is
        written to the hook trace (``TACOQ_TRACE_HOOKS``) like any hook call."""
        trace = self.pm.trace.root.get("hook")
        for impl in reversed(getattr(self.pm.hook, hook_name).get_hookimpls()):
            trace(hook_name, f"({impl.plugin_name})")
            yield impl.plugin_name, impl.function()

    def _schemes(self, hook_name: str, what: str) -> dict[str, tuple[Callable[..., Any], str]]:
        claimed: dict[str, tuple[Callable[..., Any], str]] = {}
        for plugin_name, answer in self._answers(hook_name):
            if not answer:
                continue
            for scheme, factory in answer.items():
                scheme = scheme.lower()
                if scheme in claimed:
                    raise PluginError(
                        f"{what} scheme {scheme!r} is claimed by two plugins: "
                        f"{claimed[scheme][1]!r} and {plugin_name!r}"
                    )
                claimed[scheme] = (factory, plugin_name)
        return claimed

    def broker_schemes(self) -> dict[str, str]:
        """``{scheme: plugin name}`` for every installed broker scheme."""
        return {s: p for s, (_, p) in self._schemes("tacoq_broker_schemes", "broker").items()}

    def store_schemes(self) -> dict[str, str]:
        """``{scheme: plugin name}`` for every installed store scheme."""
        return {s: p for s, (_, p) in self._schemes("tacoq_store_schemes", "store").items()}

    def _factory(self, url: str, hook_name: str, what: str) -> Callable[..., Any]:
        scheme = url_scheme(url)
        schemes = self._schemes(hook_name, what)
        try:
            return schemes[scheme][0]
        except KeyError:
            installed = ", ".join(f"{s}://" for s in sorted(schemes)) or "none"
            raise UnknownSchemeError(
                f"no installed plugin provides the {what} scheme {scheme!r} "
                f"(in {redact_url(url)!r}); installed {what} schemes: {installed}"
            ) from None

    def create_broker(self, url: str, *, namespace: str) -> Broker:
        """A (not yet connected) broker for ``url`` from the plugin that owns its scheme."""
        factory: BrokerFactory = self._factory(url, "tacoq_broker_schemes", "broker")
        return factory(url, namespace=namespace)

    def create_store(self, url: str, *, namespace: str) -> Store:
        """A (not yet connected) store for ``url`` from the plugin that owns its scheme."""
        factory: StoreFactory = self._factory(url, "tacoq_store_schemes", "store")
        return factory(url, namespace=namespace)

    # -- the rest ----------------------------------------------------------------------------

    @functools.cached_property
    def serializers(self) -> SerializerRegistry:
        """The serializer registry: every plugin's serializers, built-ins last."""
        from tacoq.serialization import SerializerRegistry

        found: list[Serializer] = []
        for answer in self.pm.hook.tacoq_serializers():
            found.extend(answer or ())
        return SerializerRegistry(found)

    def task_listeners(self) -> list[TaskListener]:
        """Every plugin's lifecycle listener (the ones :attr:`bus` delivers to)."""
        return [listener for _, listener in self.bus.listeners]

    @functools.cached_property
    def bus(self) -> EventBus:
        """The event bus: every plugin's lifecycle listener, named by its plugin, in hook call
        order. Every lifecycle notification goes through it (:meth:`emit`)."""
        return EventBus(
            [
                (name, listener)
                for name, listener in self._answers("tacoq_task_listener")
                if listener
            ]
        )

    def emit(self, event: LifecycleEvent) -> Awaitable[None] | None:
        """Deliver a lifecycle event to every listener (:meth:`tacoq.bus.EventBus.emit`)."""
        return self.bus.emit(event)

    def middlewares(self) -> list[HandlerMiddleware]:
        """Every plugin's handler middleware, outermost first."""
        return [x for x in self.pm.hook.tacoq_handler_middleware() if x is not None]

    def worker_runner(self, request: WorkerRunRequest) -> WorkerRunner | None:
        """The first runner that accepts ``request`` (``firstresult``)."""
        runner: WorkerRunner | None = self.pm.hook.tacoq_worker_runner(request=request)
        return runner

    def cli_groups(self) -> list[tuple[str, Any, str]]:
        """``(group name, typer app, plugin name)`` for each plugin's CLI group."""
        groups: list[tuple[str, Any, str]] = []
        for plugin_name, answer in self._answers("tacoq_cli_group"):
            if answer is not None:
                name, app = answer
                groups.append((name, app, plugin_name))
        return groups

    def plugin_infos(self) -> list[PluginInfo]:
        """Every registered plugin with its distribution and what it provides."""
        infos = []
        for name, plugin in self.pm.list_name_plugin():
            if plugin is None:
                continue
            hooks = tuple(sorted(c.name for c in self.pm.get_hookcallers(plugin) or ()))
            try:
                provides = _provides(plugin, hooks)
            except Exception as exc:  # one broken hook must not hide the other plugins
                provides = [f"error: {type(exc).__name__}: {exc}"]
            dist, version = self.distributions.get(name, ("unknown", ""))
            infos.append(PluginInfo(name, dist, version, hooks, tuple(provides)))
        return infos


def _provides(plugin: Any, hooks: tuple[str, ...]) -> list[str]:
    """What a plugin provides, from its own (light) hook answers."""
    provides: list[str] = []
    for hook_name, what in (("tacoq_broker_schemes", "broker"), ("tacoq_store_schemes", "store")):
        if hook_name in hooks:
            answer = getattr(plugin, hook_name)() or {}
            provides.extend(f"{what}:{s}://" for s in sorted(answer))
    if "tacoq_serializers" in hooks:
        serializers: Sequence[Serializer] = plugin.tacoq_serializers() or ()
        provides.extend(f"serializer:{s.name}" for s in serializers)
    if "tacoq_cli_group" in hooks:
        group: tuple[str, Any] | None = plugin.tacoq_cli_group()
        if group is not None:
            provides.append(f"cli:{group[0]}")
    provides.extend(label for hook, label in _HOOK_LABELS.items() if hook in hooks)
    return provides


#: How the hooks whose answers are not listed by name (they make objects) read in ``provides``.
_HOOK_LABELS = {
    "tacoq_worker_runner": "worker runner",
    "tacoq_task_listener": "task listener",
    "tacoq_handler_middleware": "handler middleware",
}


_HOOK_NAMES = frozenset(
    n for n in dir(hookspecs) if hasattr(getattr(hookspecs, n), hookspecs.PROJECT_NAME + "_spec")
)


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "unknown"


def _load_builtin(host: PluginHost, module_name: str) -> None:
    import importlib

    module: ModuleType = importlib.import_module(module_name)
    host.register(module, name=module_name)


def build_plugin_host(env: Mapping[str, str] | None = None) -> PluginHost:
    """A new plugin host: built-ins, then entry points (sorted by name), per the env switches."""
    env = os.environ if env is None else env
    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    host = PluginHost(pm)
    for module_name in BUILTIN_PLUGINS:
        _load_builtin(host, module_name)
    if not _flag(env, "TACOQ_DISABLE_PLUGIN_AUTOLOAD"):
        _load_entry_points(host, env)
    pm.check_pending()
    if _flag(env, "TACOQ_TRACE_HOOKS"):
        pm.trace.root.setwriter(sys.stderr.write)
        pm.enable_tracing()
    return host


def _load_entry_points(host: PluginHost, env: Mapping[str, str]) -> None:
    allow = _names(env, "TACOQ_PLUGINS")
    block = _names(env, "TACOQ_BLOCK_PLUGINS")
    strict = _flag(env, "TACOQ_STRICT_PLUGINS")
    for ep in sorted(metadata.entry_points(group=hookspecs.PROJECT_NAME), key=lambda e: e.name):
        if (allow and ep.name not in allow) or ep.name in block:
            continue
        dist_name = ep.dist.name if ep.dist is not None else "unknown"
        dist_version = ep.dist.version if ep.dist is not None else ""
        try:
            plugin = ep.load()
            host.register(plugin, name=ep.name, distribution=(dist_name, dist_version))
        except PluginError as exc:
            if strict or "two plugins are named" in str(exc):
                raise
            _record_failure(host, ep.name, dist_name, exc)
        except Exception as exc:
            if strict:
                raise PluginError(
                    f"plugin {ep.name!r} from {dist_name} failed to load: "
                    f"{type(exc).__name__}: {exc}"
                ) from exc
            _record_failure(host, ep.name, dist_name, exc)


#: The distributions of this repository, installed from its folders until they are on an index
#: (PyPI's ``tacoq`` is another project): ``{distribution: folder}``.
LOCAL_DISTRIBUTIONS = {
    "tacoq": "./cli",
    "tacoq-core": "./core",
    "tacoq-rabbit": "./plugins/tacoq-rabbit",
    "tacoq-postgres": "./plugins/tacoq-postgres",
    "tacoq-hotreload": "./plugins/tacoq-hotreload",
}


def install_hint(distribution: str) -> str:
    """How to install ``distribution``: from its folder in a TacoQ checkout for the project's
    own packages (not on an index yet), else from the index."""
    folder = LOCAL_DISTRIBUTIONS.get(distribution)
    if folder is None:
        return f"pip install --upgrade {distribution}"
    return f"pip install {folder} from a TacoQ checkout"


def _record_failure(host: PluginHost, name: str, dist: str, exc: Exception) -> None:
    failure = PluginFailure(
        name=name,
        distribution=dist,
        error=f"{type(exc).__name__}: {exc}",
        remedy=(
            f"the plugin does not follow the hook contract: report it to the authors of {dist}, "
            f"or skip it with TACOQ_BLOCK_PLUGINS={name}"
            if isinstance(exc, PluginError)
            else f"reinstall it ({install_hint(dist)}), or skip it with TACOQ_BLOCK_PLUGINS={name}"
        ),
    )
    host.failures.append(failure)
    log.warning("plugin %r (%s) was skipped: %s; %s", name, dist, failure.error, failure.remedy)


_host: PluginHost | None = None


def get_plugin_host() -> PluginHost:
    """The process-wide plugin host, built on first use."""
    global _host
    if _host is None:
        _host = build_plugin_host()
    return _host


def reset_plugin_host(host: PluginHost | None = None) -> None:
    """Replace (or forget) the process-wide plugin host; for tests and embedding."""
    global _host
    _host = host


def require_scheme_kind(url: str, *, in_process: bool, command: str) -> None:
    """Refuse an in-process backend (``memory://``) in a command that runs as its own process."""
    if in_process:
        raise ConfigError(
            f"{command} runs as a separate process and cannot use the in-process "
            f"{redact_url(url)!r}; use a network backend (for example amqp:// and "
            "postgresql://), or run everything in one process with `tacoq demo`"
        )


def default_registry() -> SerializerRegistry:
    """The registry built from every installed plugin's serializers (the process-wide host's)."""
    return get_plugin_host().serializers
