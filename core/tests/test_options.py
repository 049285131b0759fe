"""Task options: every option validated once, when the options are made; malformed values of
every kind are a ConfigError naming the option, never a later failure."""

import dataclasses
import math
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from tacoq.errors import ConfigError
from tacoq.model.options import (
    DEFAULT_OPTIONS,
    MAX_DELAY_SECONDS,
    OPTION_NAMES,
    PublishOptions,
    TaskOptions,
    options_json,
)
from tacoq.model.task import MAX_PRIORITY
from tacoq.model.wire import MAX_TTL

NOW = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)


def test_the_typed_keywords_and_the_options_name_the_same_options() -> None:
    assert set(PublishOptions.__annotations__) == OPTION_NAMES
    assert {field.name for field in dataclasses.fields(TaskOptions)} == OPTION_NAMES


def test_no_options_are_the_defaults_and_cost_nothing() -> None:
    assert TaskOptions.of() is DEFAULT_OPTIONS
    assert TaskOptions.of(None, {}) is DEFAULT_OPTIONS
    assert TaskOptions() == DEFAULT_OPTIONS
    assert DEFAULT_OPTIONS.delay(NOW) is None
    assert DEFAULT_OPTIONS.as_json() == {"priority": 0}


def test_keywords_override_an_options_object() -> None:
    base = TaskOptions(priority=3, ttl=60)
    merged = TaskOptions.of(base, {"priority": 9})
    assert (merged.priority, merged.ttl) == (9, 60)
    assert base.priority == 3  # frozen: the object given is not changed


def test_an_id_may_be_given_as_its_text() -> None:
    chosen = uuid.uuid4()
    assert TaskOptions.of(None, {"id": str(chosen)}).id == chosen
    assert TaskOptions(id=chosen).id == chosen


def test_the_bounds_are_accepted() -> None:
    options = TaskOptions(priority=MAX_PRIORITY, ttl=MAX_TTL, countdown=MAX_DELAY_SECONDS)
    assert options.delay(NOW) == MAX_DELAY_SECONDS
    assert TaskOptions(priority=0, ttl=0, countdown=0).delay(NOW) is None


@pytest.mark.parametrize(
    ("values", "needle"),
    [
        ({"priority": -1}, "priority"),
        ({"priority": 256}, "priority"),
        ({"priority": 10**100}, "priority"),
        ({"priority": True}, "priority"),
        ({"priority": 5.0}, "priority"),
        ({"priority": "5"}, "priority"),
        ({"priority": None}, "priority"),
        ({"ttl": -1}, "ttl"),
        ({"ttl": MAX_TTL + 1}, "ttl"),
        ({"ttl": 1.5}, "ttl"),
        ({"ttl": False}, "ttl"),
        ({"ttl": "60"}, "ttl"),
        ({"worker_kind": ""}, "worker_kind must not be empty"),
        ({"worker_kind": "a\x00b"}, "worker_kind"),
        ({"worker_kind": "a\x01b"}, "worker_kind"),
        ({"worker_kind": "\ud800"}, "worker_kind"),
        ({"worker_kind": "k" * 256}, "worker_kind is 256 characters"),
        ({"worker_kind": b"images"}, "worker_kind must be a string"),
        ({"id": "nope"}, "id is not a UUID"),
        ({"id": ""}, "id is not a UUID"),
        ({"id": "\x00" * 10_000}, "id is not a UUID"),
        ({"id": 12}, "id must be a UUID"),
        ({"countdown": math.nan}, "countdown"),
        ({"countdown": math.inf}, "countdown"),
        ({"countdown": MAX_DELAY_SECONDS + 1}, "countdown"),
        ({"countdown": 1e300}, "countdown"),
        ({"countdown": "10"}, "countdown"),
        ({"countdown": True}, "countdown"),
        ({"eta": "2026-12-03T10:00:00Z"}, "eta must be a datetime"),
        ({"eta": datetime(2026, 12, 3, 10)}, "eta must be timezone-aware"),
        ({"countdown": 1, "eta": NOW}, "countdown or eta: give one, not both"),
    ],
)
def test_a_bad_option_is_a_config_error_naming_it(values: dict[str, Any], needle: str) -> None:
    with pytest.raises(ConfigError, match="^" + needle.split()[0]) as caught:
        TaskOptions.of(None, values)
    assert needle in str(caught.value)
    assert len(str(caught.value)) < 300  # a huge value is cut in the message


def test_an_unknown_option_is_a_type_error_listing_the_options() -> None:
    with pytest.raises(TypeError, match=r"unknown task option 'priorty'.*priority"):
        TaskOptions.of(None, {"priorty": 1})
    with pytest.raises(TypeError, match="unknown task option"):
        options_json({"colour": "red"})


def test_the_delay_of_an_eta_counts_from_now_and_a_past_eta_runs_at_once() -> None:
    assert TaskOptions(eta=NOW + timedelta(seconds=90)).delay(NOW) == 90
    assert TaskOptions(eta=NOW - timedelta(days=400)).delay(NOW) is None
    other_zone = NOW.astimezone(timezone(timedelta(hours=-5))) + timedelta(seconds=5)
    assert TaskOptions(eta=other_zone).delay(NOW) == 5
    assert TaskOptions(countdown=-3).delay(NOW) is None


def test_an_eta_beyond_the_longest_delay_is_refused_when_it_is_applied() -> None:
    far = TaskOptions(eta=NOW + timedelta(days=60))
    with pytest.raises(ConfigError, match=r"48\.5 days"):
        far.delay(NOW)
    assert far.delay(NOW + timedelta(days=30)) is not None  # the same eta, nearer


def test_as_json_writes_only_what_is_set_in_json_forms() -> None:
    chosen = uuid.uuid4()
    options = TaskOptions(worker_kind="images", priority=4, id=chosen, eta=NOW)
    assert options.as_json() == {
        "worker_kind": "images",
        "priority": 4,
        "id": str(chosen),
        "eta": "2026-12-03T10:00:00.000000Z",
    }
    # not validated: the relay does it and answers 422 naming the field
    assert options_json({"priority": 300, "eta": datetime(2026, 1, 1)}) == {
        "priority": 300,
        "eta": "2026-01-01T00:00:00",
    }


@pytest.mark.parametrize(
    ("texts", "expected"),
    [
        ({"priority": "7"}, {"priority": 7}),
        ({"ttl": "0"}, {"ttl": 0}),
        ({"countdown": "2.5"}, {"countdown": 2.5}),
        ({"eta": "2026-12-03T10:00:00Z"}, {"eta": NOW}),
        ({"eta": "2026-12-03T11:00:00+01:00"}, {"eta": NOW}),
    ],
)
def test_text_forms_parse_to_the_options(texts: dict[str, str], expected: dict[str, Any]) -> None:
    options = TaskOptions.from_text(texts)
    assert {name: getattr(options, name) for name in expected} == expected


@pytest.mark.parametrize(
    ("texts", "needle"),
    [
        ({"priority": "high"}, "priority: 'high' is not valid"),
        ({"priority": "256"}, "priority must be an integer from 0 to 255"),
        ({"priority": ""}, "priority: '' is not valid"),
        ({"ttl": "1.5"}, "ttl: '1.5' is not valid"),
        ({"countdown": "soon"}, "countdown: 'soon' is not valid"),
        ({"countdown": "nan"}, "countdown must be a finite number"),
        ({"eta": "2026-12-03T10:00:00"}, "eta: '2026-12-03T10:00:00' is not valid"),
        ({"eta": "0000-01-01T00:00:00Z"}, "eta:"),
        ({"eta": "9999-12-31T23:59:59-01:00"}, "eta:"),
        ({"id": "x"}, "id is not a UUID"),
        ({"colour": "red"}, "unknown task option 'colour'"),
    ],
)
def test_bad_text_forms_are_config_errors_naming_the_option(
    texts: dict[str, str], needle: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        TaskOptions.from_text(texts)
    assert needle in str(caught.value)
