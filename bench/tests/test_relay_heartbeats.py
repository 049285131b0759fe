"""The pure parts of the relay-heartbeats scenario: how many heartbeats, in which rounds, which
are each worker's last, and the messages the driver pre-loads. No service, no measurement."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from bench.compare_stats import higher_is_better
from bench.harness import Settings
from bench.relay_heartbeats import (
    MAX_BEATS,
    MIN_BEATS,
    RUNNING_IDS,
    WORKERS,
    _announcement,
    _heartbeat,
    beats_plan,
    final_floor,
    heartbeat_count,
    worker_name,
)
from bench.scenarios import SCENARIOS


@pytest.mark.parametrize(
    ("tasks", "beats"), [(1, MIN_BEATS), (MIN_BEATS + 1, MIN_BEATS + 1), (10**6, MAX_BEATS)]
)
def test_a_sample_sends_a_bounded_number_of_heartbeats(tasks: int, beats: int) -> None:
    assert heartbeat_count(Settings(tasks=tasks)) == beats


@pytest.mark.parametrize("beats", [1, 99, 100, 101, 250, 5_000])
def test_the_floor_picks_exactly_each_workers_last_heartbeat(beats: int) -> None:
    rounds = beats_plan(beats, workers=100)
    sent = [index for indexes in rounds for index in indexes]
    assert sent == list(range(beats))
    assert all(len({i % 100 for i in indexes}) == len(indexes) for indexes in rounds)
    last = {i % 100: i for i in sent}
    assert {i for i in sent if i >= final_floor(beats, workers=100)} == set(last.values())


def test_the_preloaded_messages_are_what_a_relay_takes() -> None:
    from tacoq.model.wire import decode_control, encode_control
    from tacoq.model.workers import Announcement, Heartbeat

    now = datetime.now(UTC)
    announcement = decode_control(encode_control(_announcement(7, now)))
    assert isinstance(announcement, Announcement)
    assert announcement.name == worker_name(7)
    ids = [uuid.uuid4() for _ in range(RUNNING_IDS)]
    heartbeat = decode_control(encode_control(_heartbeat(WORKERS + 7, ids, now)))
    assert isinstance(heartbeat, Heartbeat)
    assert (heartbeat.name, heartbeat.succeeded, heartbeat.running) == (
        worker_name(7),
        WORKERS + 7,
        RUNNING_IDS,
    )


def test_the_scenario_is_registered_lower_is_better() -> None:
    (scenario,) = [s for s in SCENARIOS if s.name == "relay-heartbeats"]
    assert not higher_is_better(scenario.unit)
    assert [variant.tacoq for variant in (*scenario.candidates, scenario.baseline)] == [True, False]
    assert scenario.sample_tasks is not None
    assert scenario.sample_tasks(Settings(tasks=1)) == MIN_BEATS
