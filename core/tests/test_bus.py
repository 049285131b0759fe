"""The event bus: every lifecycle event reaches every plugin's listener through the host, and a
failing listener is logged with its plugin's name and never changes what happens to a task."""

import logging
import uuid
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any

import pytest

import tacoq.bus
from tacoq.bus import EventBus
from tacoq.contracts.hookspecs import hookimpl
from tacoq.contracts.lifecycle import LifecycleEvent, LifecycleKind
from tacoq.plugins import PluginHost, build_plugin_host
from tacoq.publishing.publisher import Publisher
from tacoq.testing import fresh_namespace

NO_AUTOLOAD = {"TACOQ_DISABLE_PLUGIN_AUTOLOAD": "1"}


def event(kind: LifecycleKind = LifecycleKind.STARTED) -> LifecycleEvent:
    return LifecycleEvent(kind, uuid.uuid4(), "area", "shapes")


class Recorder:
    def __init__(self) -> None:
        self.seen: list[LifecycleEvent] = []

    def on_task_event(self, note: LifecycleEvent) -> None:
        self.seen.append(note)


class Broken:
    def on_task_event(self, note: LifecycleEvent) -> None:
        raise RuntimeError("listener bug")


class AsyncBroken:
    def on_task_event(self, note: LifecycleEvent) -> Awaitable[None]:
        async def later() -> None:
            raise ValueError("async listener bug")

        return later()


class Provides:
    def __init__(self, listener: Any) -> None:
        self.listener = listener

    @hookimpl
    def tacoq_task_listener(self) -> Any:
        return self.listener


def host_with(**listeners: Any) -> PluginHost:
    host = build_plugin_host(env=NO_AUTOLOAD)
    for name, listener in listeners.items():
        host.register(Provides(listener), name=name)
    return host


def test_the_host_owns_one_bus_of_named_listeners() -> None:
    first, second = Recorder(), Recorder()
    host = host_with(first=first, second=second)
    assert host.bus is host.bus
    assert {name for name, _ in host.bus.listeners} == {"first", "second"}
    note = event()
    assert host.emit(note) is None  # every listener is synchronous: nothing to await
    assert first.seen == second.seen == [note]
    assert not host_with().bus  # an empty bus is false: emitters skip building events


def test_registering_a_plugin_renews_the_bus() -> None:
    host = host_with()
    assert not host.bus
    host.register(Provides(Recorder()), name="late")
    assert [name for name, _ in host.bus.listeners] == ["late"]


@dataclass
class CountingPlugin:
    """A plugin that is its own listener, written as a dataclass: equal by value, so
    unhashable (the demo's DemoCounters is one)."""

    seen: list[LifecycleKind] = field(default_factory=list)

    @hookimpl
    def tacoq_task_listener(self) -> "CountingPlugin":
        return self

    def on_task_event(self, note: LifecycleEvent) -> None:
        self.seen.append(note.kind)


def test_an_unhashable_plugin_object_gets_its_events() -> None:
    plugin = CountingPlugin()
    host = host_with()
    host.register(plugin, name="counting")
    assert [name for name, _ in host.bus.listeners] == ["counting"]
    host.emit(event(LifecycleKind.STARTED))
    host.emit(event(LifecycleKind.SUCCEEDED))
    assert plugin.seen == [LifecycleKind.STARTED, LifecycleKind.SUCCEEDED]


def test_a_failing_listener_is_logged_once_with_its_plugin_and_the_others_still_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    recorder = Recorder()
    host = host_with(broken=Broken(), recorder=recorder)
    caplog.set_level(logging.WARNING, logger="tacoq.bus")
    for _ in range(3):
        assert host.emit(event()) is None
    assert len(recorder.seen) == 3
    assert host.bus.failures("broken") == 3
    records = [r for r in caplog.records if r.name == "tacoq.bus"]
    assert len(records) == 1  # the later failures wait for the repeat interval
    assert "plugin 'broken'" in records[0].getMessage()
    assert records[0].exc_info is not None
    assert "listener bug" in str(records[0].exc_info[1])


def test_repeated_failures_are_one_line_per_interval(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    bus = EventBus([("broken", Broken())])
    caplog.set_level(logging.WARNING, logger="tacoq.bus")
    bus.emit(event())
    monkeypatch.setattr(tacoq.bus, "REPEAT_LOG_INTERVAL", 0.0)
    bus.emit(event())
    bus.emit(event())
    lines = [r for r in caplog.records if r.name == "tacoq.bus"]
    assert len(lines) == 3
    assert "failed 1 more times (3 in all)" in lines[2].getMessage()
    assert lines[2].exc_info is None


async def test_an_async_listener_is_awaited_and_its_failure_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    bus = EventBus([("late", AsyncBroken())])
    pending = bus.emit(event())
    assert pending is not None
    await pending  # never raises
    assert bus.failures("late") == 1
    assert "plugin 'late'" in caplog.text


async def test_a_publish_succeeds_whatever_its_listener_does(
    caplog: pytest.LogCaptureFixture,
) -> None:
    recorder = Recorder()
    host = host_with(broken=Broken(), slow=AsyncBroken(), recorder=recorder)
    ns = fresh_namespace("bus")
    async with Publisher(f"memory://{ns}", namespace=ns, plugins=host) as pub:
        task = await pub.publish("area", {"w": 1}, worker_kind="shapes")
    assert [(n.kind, n.task_id) for n in recorder.seen] == [(LifecycleKind.PUBLISHED, task.id)]
    assert host.bus.failures("broken") == host.bus.failures("slow") == 1
    assert "plugin 'broken'" in caplog.text
    assert "plugin 'slow'" in caplog.text
