"""The submission kernel: one function makes the assignment of every publishing surface."""

import dataclasses
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import BaseModel

from tacoq.errors import ConfigError, PayloadTooLarge, SerializationError
from tacoq.model.options import TaskOptions
from tacoq.model.task import Payload, Phase, TaskEvent
from tacoq.plugins import default_registry
from tacoq.publishing.kernel import Submission, serialize_input, submission
from tacoq.worker import WorkerApp

NOW = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)


class Size(BaseModel):
    w: int


APP = WorkerApp("shapes")


@APP.task
async def area(size: Size) -> int:
    return size.w


def make(task: Any, value: Any, **options: Any) -> Submission:
    return submission(
        task,
        value,
        TaskOptions.of(None, options),
        serializers=default_registry(),
        max_payload_bytes=1024,
        default_ttl=77,
        now=NOW,
    )


def test_a_typed_publish_uses_the_handlers_codec_and_its_worker_kind() -> None:
    made = make(area, {"w": 3})
    event = made.event
    assert (event.phase, event.attempt, event.task_kind, event.worker_kind) == (
        Phase.ASSIGNED,
        1,
        "area",
        "shapes",
    )
    assert event.input == Payload("application/json", b'{"w":3}')
    assert (event.created_at, event.ttl, event.priority, made.delay) == (NOW, 77, 0, None)
    assert make(area, {"w": 3}, worker_kind="other").event.worker_kind == "other"


def test_a_typed_publish_with_a_bad_input_fails_naming_the_task() -> None:
    with pytest.raises(SerializationError, match="input of task 'area' is invalid"):
        make(area, {"w": "wide"})


def test_by_name_serializes_with_the_plugins_or_sends_a_payload_as_it_is() -> None:
    assert make("area", {"w": 1}, worker_kind="shapes").event.input == Payload(
        "application/json", b'{"w":1}'
    )
    raw = Payload("image/png", b"\x89PNG")
    assert make("thumb", raw, worker_kind="images").event.input is raw
    with pytest.raises(ConfigError, match="only a Payload"):
        submission("thumb", b"x", TaskOptions(worker_kind="images"), serializers=None)


@pytest.mark.parametrize(
    ("task", "needle"),
    [("", "task_kind must not be empty"), ("a\x00b", "task_kind"), ("k" * 300, "task_kind")],
)
def test_a_bad_task_kind_is_a_config_error(task: str, needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        make(task, 1, worker_kind="shapes")


def test_by_name_without_a_worker_kind_and_not_a_task_are_refused() -> None:
    with pytest.raises(ConfigError, match="needs worker_kind"):
        make("area", 1)
    with pytest.raises(TypeError, match="not int"):
        make(12, 1)


def test_limits_apply_to_every_input() -> None:
    with pytest.raises(PayloadTooLarge, match="input of task 'thumb' is 2,000 bytes"):
        make("thumb", Payload("image/png", b"x" * 2000), worker_kind="images")
    deep = Payload("application/json", b"[" * 200 + b"]" * 200)
    with pytest.raises(SerializationError, match="input of task 'nested'"):
        make("nested", deep, worker_kind="images")


def test_the_options_reach_the_assignment() -> None:
    chosen = uuid.uuid4()
    made = make("area", 1, worker_kind="shapes", priority=9, ttl=5, id=chosen, countdown=2)
    assert (made.event.id, made.event.priority, made.event.ttl, made.delay) == (chosen, 9, 5, 2)
    later = make("area", 1, worker_kind="shapes", eta=NOW + timedelta(seconds=30))
    assert later.delay == 30


def test_every_option_the_event_has_is_carried_without_naming_it() -> None:
    """A new option with a field of the same name on TaskEvent needs no change in the kernel."""
    carried = {f.name for f in dataclasses.fields(TaskOptions)} & {
        f.name for f in dataclasses.fields(TaskEvent)
    } - {"worker_kind", "id"}  # set apart: a typed task's own kind, a new random id
    assert carried == {"priority", "ttl"}
    made = make("area", 1, worker_kind="shapes", priority=200, ttl=0)
    assert {name: getattr(made.event, name) for name in carried} == {"priority": 200, "ttl": 0}


def test_at_once_refuses_a_delay() -> None:
    assert make("area", 1, worker_kind="shapes").at_once().task_kind == "area"
    with pytest.raises(ConfigError, match="countdown and eta need the submission"):
        make("area", 1, worker_kind="shapes", countdown=1).at_once()


def test_serialize_input_says_what_it_made() -> None:
    assert serialize_input(area, {"w": 2}, None)[:2] == ("area", "shapes")
    assert serialize_input("area", Payload("text/plain", b"hi"), None)[:2] == ("area", None)
