"""Workers online and task contracts, in one process: real worker runtimes and a real relay
(HTTP over TCP) on the built-in ``memory://`` broker and a ``memory://`` or SQLite store.

The same behaviour over RabbitMQ and Postgres, with real processes, is in
tests/test_workers_processes.py.
"""

import asyncio
import base64
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

import httpx
import pydantic
import pytest

from tacoq.errors import ConfigError
from tacoq.model.wire import Envelope, encode_control
from tacoq.model.workers import Goodbye
from tacoq.relay.service import RelayService
from tacoq.testing import eventually, fresh_namespace
from tacoq.testing.workers import SizeIn, SizeOut, contract_app
from tacoq.worker import WorkerApp

INTERVAL = 0.2


def make_app(worker_kind: str, name: str, *, v2: bool = False) -> WorkerApp:
    return contract_app(worker_kind, name, quality=v2, heartbeat_interval=INTERVAL)


Started = tuple[RelayService, httpx.AsyncClient]


@pytest.fixture(params=["memory", "sqlite"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "memory":
        return f"memory://{uuid.uuid4().hex}"
    return f"sqlite:///{tmp_path / 'relay.db'}"


@pytest.fixture
def namespace() -> str:
    return fresh_namespace("workers")


@pytest.fixture
def broker_url(namespace: str) -> str:
    return f"memory://{namespace}"


@asynccontextmanager
async def relay(
    broker_url: str, store_url: str, namespace: str, **options: Any
) -> AsyncIterator[Started]:
    service = RelayService(broker_url, store_url, namespace=namespace, port=0, **options)
    stop = asyncio.Event()
    job = asyncio.create_task(service.run(stop))
    ready = asyncio.ensure_future(service.ready.wait())
    await asyncio.wait([job, ready], return_when=asyncio.FIRST_COMPLETED, timeout=10)
    if job.done():
        await job
    try:
        async with httpx.AsyncClient(base_url=service.url, timeout=30) as client:
            yield service, client
    finally:
        stop.set()
        await asyncio.wait_for(job, 15)


@asynccontextmanager
async def serving(app: WorkerApp, broker_url: str, namespace: str) -> AsyncIterator[asyncio.Event]:
    """Serve ``app``; on exit stop it cleanly (it says goodbye). Yields the stop event."""
    stop = asyncio.Event()
    job = asyncio.create_task(app.serve(stop, broker_url=broker_url, namespace=namespace))
    try:
        yield stop
    finally:
        stop.set()
        await asyncio.wait_for(job, 15)


StartRelay = Callable[..., AbstractAsyncContextManager[Started]]


@pytest.fixture
def start_relay(broker_url: str, store_url: str, namespace: str) -> StartRelay:
    return lambda **options: relay(broker_url, store_url, namespace, **options)


async def workers(client: httpx.AsyncClient, **params: Any) -> list[dict[str, Any]]:
    answer = await client.get("/workers", params=params)
    assert answer.status_code == 200, answer.text
    return list(answer.json()["workers"])


async def test_workers_appear_with_their_kinds_and_leave_on_goodbye(
    start_relay: StartRelay, broker_url: str, namespace: str
) -> None:
    async with start_relay() as (_, client):
        async with (
            serving(make_app("images", "img-1"), broker_url, namespace),
            serving(make_app("text", "txt-1"), broker_url, namespace) as stop_text,
        ):
            await eventually(lambda: _count(client), until=lambda n: n == 2, timeout=10)
            listed = {w["name"]: w for w in await workers(client)}
            assert listed["img-1"]["worker_kind"] == "images"
            assert listed["img-1"]["task_kinds"] == ["blob", "echo", "resize"]
            assert listed["img-1"]["state"] == "online"
            assert listed["img-1"]["announced"] is True
            assert listed["img-1"]["heartbeat_interval"] == INTERVAL
            # heartbeats arrive: the counters of the last one are shown
            await eventually(lambda: _heartbeat_seen(client, "txt-1"), timeout=10)
            only = await workers(client, worker_kind="text")
            assert [w["name"] for w in only] == ["txt-1"]
            stop_text.set()  # a clean stop: goodbye, gone at once
            await eventually(lambda: _names(client, {"img-1"}), timeout=5)
        assert await workers(client) == []


async def _count(client: httpx.AsyncClient) -> int:
    return len(await workers(client))


async def _names(client: httpx.AsyncClient, names: set[str]) -> bool:
    return {w["name"] for w in await workers(client)} == names


async def _heartbeat_seen(client: httpx.AsyncClient, name: str) -> bool:
    return any(w["name"] == name and w["running"] is not None for w in await workers(client))


async def test_a_worker_that_stops_beating_leaves_after_three_intervals(
    start_relay: StartRelay, broker_url: str, namespace: str
) -> None:
    async with start_relay() as (service, client):
        runtime_app = make_app("images", "img-dies")
        stop = asyncio.Event()
        job = asyncio.create_task(
            runtime_app.serve(stop, broker_url=broker_url, namespace=namespace)
        )
        await eventually(lambda: _names(client, {"img-dies"}), timeout=10)
        job.cancel()  # dies: no goodbye
        await asyncio.gather(job, return_exceptions=True)
        loop = asyncio.get_running_loop()
        gone_at = loop.time()
        await eventually(lambda: _names(client, set()), timeout=10)
        # left within three intervals (and the relay's read), not at once
        assert loop.time() - gone_at <= 3 * INTERVAL + 1.5
        gone = await workers(client, all="true")
        assert [(w["name"], w["state"]) for w in gone] == [("img-dies", "gone")]
        assert service.engine.control.stats.goodbyes == 0


async def test_kinds_serve_each_handlers_json_schema(
    start_relay: StartRelay, broker_url: str, namespace: str
) -> None:
    async with (
        start_relay() as (_, client),
        serving(make_app("images", "img-1"), broker_url, namespace),
    ):
        await eventually(lambda: _names(client, {"img-1"}), timeout=10)
        answer = await client.get("/kinds")
        assert answer.status_code == 200
        kinds = {(k["worker_kind"], k["task_kind"]): k for k in answer.json()["kinds"]}
        assert set(kinds) == {("images", "resize"), ("images", "echo"), ("images", "blob")}
        resize = kinds["images", "resize"]
        assert resize["conflict"] is False
        (contract,) = resize["contracts"]
        assert contract["workers"] == ["img-1"]
        assert contract["input"]["content_type"] == "application/json"
        assert contract["input"]["json_schema"] == SizeIn.model_json_schema()
        assert contract["output"]["json_schema"] == SizeOut.model_json_schema()
        echo = kinds["images", "echo"]["contracts"][0]
        assert echo["input"] == {
            "content_type": "text/plain; charset=utf-8",
            "json_schema": {"type": "string"},
        }
        blob = kinds["images", "blob"]["contracts"][0]
        assert blob["input"] == {
            "content_type": "application/octet-stream",
            "json_schema": None,
        }
        one = await client.get("/kinds/images/resize")
        assert one.status_code == 200
        assert one.json() == resize
        missing = await client.get("/kinds/images/nope")
        assert missing.status_code == 404
        assert "nope" in missing.json()["error"]["message"]
        assert (await client.get("/kinds", params={"worker_kind": "other"})).json() == {"kinds": []}


async def test_a_redeploy_shows_both_schemas_until_the_old_worker_leaves(
    start_relay: StartRelay, broker_url: str, namespace: str
) -> None:
    async with (
        start_relay(check_input=True) as (_, client),
        serving(make_app("images", "old"), broker_url, namespace) as stop_old,
        serving(make_app("images", "new", v2=True), broker_url, namespace),
    ):
        await eventually(lambda: _names(client, {"old", "new"}), timeout=10)
        resize = (await client.get("/kinds/images/resize")).json()
        assert resize["conflict"] is True
        assert sorted(c["workers"] for c in resize["contracts"]) == [["new"], ["old"]]
        # valid for either contract: accepted
        old_shape = {"width": 2, "height": 3}
        assert (await _publish(client, "resize", old_shape)).status_code == 201
        stop_old.set()
        await eventually(lambda: _names(client, {"new"}), timeout=10)
        resize = (await client.get("/kinds/images/resize")).json()
        assert resize["conflict"] is False
        assert [c["workers"] for c in resize["contracts"]] == [["new"]]
        schema = resize["contracts"][0]["input"]["json_schema"]
        assert "quality" in schema["required"]
        refused = await _publish(client, "resize", old_shape)
        assert refused.status_code == 422, refused.text
        assert refused.json()["error"]["errors"] == [
            {"loc": ["input"], "msg": "'quality' is a required property"}
        ]


async def _publish(client: httpx.AsyncClient, task_kind: str, value: Any) -> httpx.Response:
    return await client.post(
        "/tasks", json={"task_kind": task_kind, "worker_kind": "images", "input": value}
    )


async def test_check_input_refuses_a_wrong_shape_with_the_field_path(
    start_relay: StartRelay, broker_url: str, namespace: str
) -> None:
    async with (
        start_relay(check_input=True) as (_, client),
        serving(make_app("images", "img-1"), broker_url, namespace),
    ):
        await eventually(lambda: _names(client, {"img-1"}), timeout=10)
        bad = await _publish(client, "resize", {"width": "wide", "height": 3})
        assert bad.status_code == 422
        error = bad.json()["error"]
        assert error["type"] == "invalid_input"
        assert error["errors"] == [
            {"loc": ["input", "width"], "msg": "'wide' is not of type 'integer'"}
        ]
        assert "input.width" in error["message"]
        nested = await _publish(client, "resize", [1, 2])
        assert nested.status_code == 422
        assert (await _publish(client, "echo", 5)).status_code == 422
        assert (await _publish(client, "echo", "hi")).status_code == 201
        unknown = await _publish(client, "nope", {})
        assert unknown.status_code == 422
        assert "nope" in unknown.json()["error"]["message"]
        raw = await client.post(
            "/tasks",
            json={"task_kind": "blob", "worker_kind": "images", "input_base64": "AAEC"},
        )
        assert raw.status_code == 201, raw.text
        raw_for_json = await client.post(
            "/tasks",
            json={"task_kind": "resize", "worker_kind": "images", "input_base64": "AAEC"},
        )
        assert raw_for_json.status_code == 422
        # a kind nobody announced is published unchecked (it waits for its workers)
        other = await client.post(
            "/tasks", json={"task_kind": "x", "worker_kind": "later", "input": {"a": 1}}
        )
        assert other.status_code == 201


class CodeIn(pydantic.BaseModel):
    code: Annotated[str, pydantic.Field(pattern=r"^(a+)+$")]
    tags: set[str] = set()
    extra: dict[Annotated[str, pydantic.Field(pattern=r"^(b+)+$")], int] = {}


async def test_check_input_stays_linear_for_inputs_built_to_be_slow(
    start_relay: StartRelay, broker_url: str, namespace: str
) -> None:
    """A REST client must not stall the relay with the input it checks: a regex of the schema
    that backtracks under ``re`` (pydantic's own engine does not), ``uniqueItems`` (a ``set``)
    over thousands of objects (jsonschema compares those pairwise), and base64 "JSON" too deep
    for Python's json."""
    app = WorkerApp("codes", name="codes-1", heartbeat_interval=INTERVAL)

    @app.task(kind="code")
    async def code(job: CodeIn) -> int:
        return len(job.code)

    async with (
        start_relay(check_input=True) as (_, client),
        serving(app, broker_url, namespace),
    ):
        await eventually(lambda: _names(client, {"codes-1"}), timeout=10)

        async def publish(value: Any) -> httpx.Response:
            # under re and jsonschema's pairwise uniqueItems each of these took 15 s or more,
            # the relay's event loop blocked all along (nothing can time it out)
            body = {"task_kind": "code", "worker_kind": "codes", "input": value}
            started = time.monotonic()
            answer = await client.post("/tasks", json=body)
            assert time.monotonic() - started < 3
            return answer

        slow = await publish({"code": "a" * 28 + "!"})
        assert slow.status_code == 422
        assert "does not match" in slow.json()["error"]["message"]
        # pydantic's dict keys with a pattern: patternProperties, which allow other keys
        slow_key = await publish({"code": "a", "extra": {"b" * 28 + "!": 1}})
        assert slow_key.status_code == 201, slow_key.text
        wrong_value = await publish({"code": "aaa", "extra": {"bb": "x"}})
        assert wrong_value.status_code == 422
        assert "input.extra.bb" in wrong_value.json()["error"]["message"]
        many = await publish({"code": "a", "tags": [{"n": i % 2} for i in range(5_000)]})
        assert many.status_code == 422
        assert "non-unique" in many.json()["error"]["message"]
        assert (await publish({"code": "a", "tags": ["x", "y"]})).status_code == 201
        for data in (b"[" * 100_000, b"[" * 5_000 + b"]" * 5_000, b'{"code": NaN}', b"\xff"):
            answer = await asyncio.wait_for(
                client.post(
                    "/tasks",
                    json={
                        "task_kind": "code",
                        "worker_kind": "codes",
                        "input_base64": base64.b64encode(data).decode(),
                        "content_type": "application/json",
                    },
                ),
                5,
            )
            assert answer.status_code == 422, answer.text
            assert "not valid JSON" in answer.json()["error"]["message"]


async def test_without_the_flag_a_wrong_shape_completes_as_invalid_input(
    start_relay: StartRelay, broker_url: str, namespace: str
) -> None:
    async with (
        start_relay() as (_, client),
        serving(make_app("images", "img-1"), broker_url, namespace),
    ):
        await eventually(lambda: _names(client, {"img-1"}), timeout=10)
        answer = await _publish(client, "resize", {"width": "wide", "height": 3})
        assert answer.status_code == 201
        task_id = answer.json()["id"]
        done = await client.get(f"/tasks/{task_id}", params={"wait": 10})
        assert done.json()["status"] == "COMPLETED"
        assert done.json()["error"]["type"] == "InvalidInput"


async def test_announced_mode_refuses_kinds_no_live_worker_announced(
    start_relay: StartRelay, broker_url: str, namespace: str
) -> None:
    async with start_relay(worker_kinds="announced") as (_, client):
        refused = await _publish(client, "resize", {"width": 1, "height": 1})
        assert refused.status_code == 422
        assert "announced" in refused.json()["error"]["message"]
        async with serving(make_app("images", "img-1"), broker_url, namespace):
            await eventually(lambda: _names(client, {"img-1"}), timeout=10)
            assert (await _publish(client, "resize", {"width": 1, "height": 1})).status_code == 201
            # announced mode alone does not check shapes: the worker does
            assert (await _publish(client, "resize", {"width": "x"})).status_code == 201
            assert (await _publish(client, "nope", {})).status_code == 422


async def test_malformed_control_messages_are_dead_lettered_and_unknown_kinds_skipped(
    start_relay: StartRelay, broker_url: str, namespace: str
) -> None:
    async with start_relay() as (service, client):
        broker = service.broker
        good = encode_control(Goodbye(name="w", worker_kind="k", sent_at=_now()))
        bad_bodies = [
            b"",
            b"\xff\xfe",
            b"null",
            b'{"type": "goodbye"}',
            b'{"type":"goodbye","name":"a\\u0000b","worker_kind":"k","sent_at":"2026-01-01T00:00:00Z"}',
            b'{"type":"goodbye","name":"w","worker_kind":"k","sent_at":"99999-01-01T00:00:00Z"}',
            b'{"type":"goodbye","name":"w","worker_kind":"k","sent_at":"2026-01-01T00:00:00"}',
            b"[" * 5000,
            good.body.replace(b'"goodbye"', b'"heartbeat"'),
        ]
        for body in bad_bodies:
            await broker.send_control(Envelope(good.headers, good.content_type, body))
        await broker.send_control(Envelope(good.headers, "text/plain", good.body))
        await broker.send_control(
            Envelope({**good.headers, "tacoq-event": "future-kind"}, good.content_type, b"{}")
        )
        await broker.send_control(good)
        stats = service.engine.control.stats

        async def received() -> int:
            return stats.control_messages

        await eventually(received, until=lambda n: n == len(bad_bodies) + 3, timeout=10)
        assert stats.control_dead_lettered == len(bad_bodies) + 1
        assert stats.unknown_control_messages == 1
        assert stats.goodbyes == 1
        health = (await client.get("/health")).json()
        assert health["stats"]["control_dead_lettered"] == len(bad_bodies) + 1


@pytest.mark.parametrize("seconds", [0, 0.01, -1, float("nan"), float("inf"), 7200, True, "5"])
def test_a_heartbeat_interval_out_of_range_is_refused(seconds: Any) -> None:
    from tacoq.worker.presence import check_heartbeat_interval

    with pytest.raises(ConfigError, match="heartbeat interval"):
        check_heartbeat_interval(seconds)


@pytest.mark.parametrize(
    "params",
    [
        {"worker_kind": ""},
        {"worker_kind": "a\x00b"},
        {"worker_kind": "x" * 300},
        {"all": "maybe"},
    ],
)
async def test_malformed_worker_queries_are_422(start_relay: StartRelay, params: Any) -> None:
    async with start_relay() as (_, client):
        answer = await client.get("/workers", params=params)
        assert answer.status_code == 422, answer.text
        assert (await client.get("/kinds/a%00b/c")).status_code == 422
        assert (await client.get("/kinds/" + "x" * 300 + "/c")).status_code == 422


async def test_a_worker_announces_again_once_control_messages_get_through_again(
    caplog: pytest.LogCaptureFixture, namespace: str
) -> None:
    from tacoq.builtin.memory_broker import MemoryBroker
    from tacoq.contracts.broker import CONTROL_QUEUE
    from tacoq.model.wire import decode_control
    from tacoq.worker.presence import Presence
    from tacoq.worker.report import WorkerStats

    broker = MemoryBroker(f"memory://{namespace}", namespace=namespace)
    await broker.connect()
    presence = Presence(
        broker,
        name="w1",
        worker_kind="k",
        contracts={},
        concurrency=1,
        prefetch=1,
        interval=INTERVAL,
        stats=WorkerStats(),
        running=lambda: [],
    )
    assert await presence.announce()
    assert await presence.beat()
    await broker.close()  # the broker goes away: sends fail, logged once
    assert not await presence.beat()
    assert not await presence.beat()
    assert caplog.text.count("could not send") == 1
    await broker.connect()
    assert await presence.beat()  # announces first, then beats
    consumer = await broker.consume(CONTROL_QUEUE, prefetch=10)
    kinds = []
    while (delivery := consumer.get_nowait()) is not None:
        kinds.append(decode_control(delivery.envelope).type)
    assert kinds == ["announce", "heartbeat", "announce", "heartbeat"]
    await consumer.close()
    await broker.close()


async def test_an_announcement_over_the_limit_goes_without_schemas(
    caplog: pytest.LogCaptureFixture, namespace: str
) -> None:
    """Thousands of task kinds with a few fields each pass the relay's 4 MiB: the worker
    announced them anyway, the relay dead-lettered every announcement, and nobody said why."""
    from tacoq.builtin.memory_broker import MemoryBroker
    from tacoq.contracts.broker import CONTROL_QUEUE
    from tacoq.model.wire import MAX_CONTROL_BYTES, decode_control
    from tacoq.model.workers import Announcement, PayloadContract, TaskContract
    from tacoq.worker.presence import Presence
    from tacoq.worker.report import WorkerStats

    schema = {"properties": {f"field_{i}": {"type": "integer"} for i in range(40)}}
    big = PayloadContract(content_type="application/json", json_schema=schema)
    contract = TaskContract(input=big, output=big)
    broker = MemoryBroker(f"memory://{namespace}", namespace=namespace)
    await broker.connect()
    presence = Presence(
        broker,
        name="w1",
        worker_kind="k",
        contracts={f"kind-{i}": contract for i in range(2_000)},
        concurrency=1,
        prefetch=1,
        interval=INTERVAL,
        stats=WorkerStats(),
        running=lambda: [],
    )
    assert presence.unseen is None
    assert "announced without its JSON Schemas" in caplog.text
    assert await presence.announce()
    consumer = await broker.consume(CONTROL_QUEUE, prefetch=10)
    delivery = await asyncio.wait_for(consumer.get(), 5)
    assert len(delivery.envelope.body) <= MAX_CONTROL_BYTES
    message = decode_control(delivery.envelope)
    assert isinstance(message, Announcement)
    assert len(message.task_kinds) == 2_000
    assert message.contracts["kind-7"].input.json_schema is None
    await consumer.close()
    await broker.close()


async def test_a_worker_with_more_kinds_than_an_announcement_holds_runs_unseen(
    caplog: pytest.LogCaptureFixture, start_relay: StartRelay, broker_url: str, namespace: str
) -> None:
    """Over 10,000 task kinds: the first announcement raised inside the worker, which ran on
    unseen without a word and, when stopped, raised pydantic's error instead of draining."""
    app = WorkerApp("wide", name="wide-1", heartbeat_interval=INTERVAL)
    for i in range(10_001):

        async def handler(text: str) -> str:
            return text

        app.task(kind=f"kind-{i}")(handler)
    async with start_relay() as (_, client), serving(app, broker_url, namespace):
        answer = await client.post(
            "/tasks", json={"task_kind": "kind-9", "worker_kind": "wide", "input": "hi"}
        )
        assert answer.status_code == 201
        done = await client.get(f"/tasks/{answer.json()['id']}", params={"wait": 10})
        assert done.json()["status"] == "COMPLETED"
        assert done.json()["output"]["data"] == "hi"
        assert await workers(client) == []
    assert "its announcement is invalid (task_kinds: List should have at most 10000" in caplog.text


async def test_heartbeats_nobody_takes_in_time_are_dropped_unread(namespace: str) -> None:
    from tacoq.builtin.memory_broker import MemoryBroker
    from tacoq.contracts.broker import CONTROL_QUEUE

    broker = MemoryBroker(f"memory://{namespace}", namespace=namespace)
    await broker.connect()
    beat = encode_control(Goodbye(name="w", worker_kind="k", sent_at=_now()))
    for _ in range(100):
        await broker.send_control(beat, ttl=0.05)
    await broker.send_control(beat)  # persistent
    await asyncio.sleep(0.1)
    consumer = await broker.consume(CONTROL_QUEUE, prefetch=200)
    got = []
    while (delivery := consumer.get_nowait()) is not None:
        got.append(delivery)
    assert len(got) == 1
    await consumer.close()
    await broker.close()


def _now() -> Any:
    from tacoq.model.task import utcnow

    return utcnow()
