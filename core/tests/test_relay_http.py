"""The relay's HTTP API through a real uvicorn server on a loopback port.

Every test starts a :class:`RelayService` (the engine's consumer, the HTTP API, the cleanup job)
on the built-in ``memory://`` broker and a ``memory://`` or ``sqlite:///`` store, in a fresh
namespace, and talks to it with httpx over TCP. Faults are real: a closed broker, a closed store.
"""

import asyncio
import base64
import json
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tacoq.contracts.broker import worker_queue
from tacoq.model.task import ErrorInfo, Payload, Phase, TaskEvent, utcnow
from tacoq.model.wire import encode_updates, format_timestamp
from tacoq.publishing.publisher import Publisher
from tacoq.relay.service import RelayService
from tacoq.testing import eventually, fresh_namespace

Started = tuple[RelayService, httpx.AsyncClient]
StartRelay = Callable[..., AbstractAsyncContextManager[Started]]
Z_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


@asynccontextmanager
async def running(service: RelayService, token: str | None = None) -> AsyncIterator[Started]:
    """Run ``service`` on this loop; yield it with an httpx client on its URL; stop it."""
    stop = asyncio.Event()
    job = asyncio.create_task(service.run(stop))
    ready = asyncio.ensure_future(service.ready.wait())
    await asyncio.wait([job, ready], return_when=asyncio.FIRST_COMPLETED, timeout=10)
    if job.done():
        await job
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        async with httpx.AsyncClient(base_url=service.url, headers=headers, timeout=30) as client:
            yield service, client
    finally:
        stop.set()
        await asyncio.wait_for(job, 15)


@pytest.fixture(params=["memory", "sqlite"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each test runs on the memory store and on a SQLite file."""
    if request.param == "memory":
        return f"memory://{uuid.uuid4().hex}"
    return f"sqlite:///{tmp_path / 'relay.db'}"


@pytest.fixture
def namespace() -> str:
    return fresh_namespace("http")


@pytest.fixture
def broker_url(namespace: str) -> str:
    return f"memory://{namespace}"


@pytest.fixture
def start_relay(broker_url: str, store_url: str, namespace: str) -> StartRelay:
    """``async with start_relay(**options) as (service, client)``: a relay on port 0."""

    def start(**options: Any) -> AbstractAsyncContextManager[Started]:
        options.setdefault("port", 0)
        service = RelayService(broker_url, store_url, namespace=namespace, **options)
        return running(service, options.get("token"))

    return start


def completed(task_id: uuid.UUID, **fields: Any) -> TaskEvent:
    """A COMPLETED event as a worker would send it."""
    now = utcnow()
    values: dict[str, Any] = {
        "id": task_id,
        "attempt": 1,
        "phase": Phase.COMPLETED,
        "task_kind": "resize",
        "worker_kind": "images",
        "executed_by": "w1",
        "started_at": now,
        "completed_at": now,
    }
    values.update(fields)
    return TaskEvent(**values)


def publish_body(**fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"task_kind": "resize", "worker_kind": "images", "input": {"w": 10}}
    body.update(fields)
    return body


# -- health ---------------------------------------------------------------------------------------


async def test_health_reports_parts_and_counters_with_the_token(start_relay: StartRelay) -> None:
    async with start_relay(token="s3cret") as (_, client):
        assert (await client.get("/health", headers={"Authorization": ""})).status_code == 401
        response = await client.get("/health")
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["status"] == "ok"
        assert body["failing"] == []
        assert body["store"]["ok"]
        assert body["broker"]["ok"]
        for counter in ("batches", "events", "dead_lettered", "duplicate_completions"):
            assert body["stats"][counter] == 0
        assert {"conflicting_completions", "store_errors", "published"} <= body["stats"].keys()
        for counter in ("unknown_messages", "dead_letters_recorded", "dead_letter_completions"):
            assert body["stats"][counter] == 0


async def test_health_names_the_store_when_it_is_down(start_relay: StartRelay) -> None:
    async with start_relay() as (service, client):
        await service.store.close()
        response = await client.get("/health")
        assert response.status_code == 200  # the report is read; /health/ready answers 503
        assert response.json()["status"] == "unavailable"
        assert response.json()["failing"] == ["store"]
        assert response.json()["store"]["ok"] is False
        assert (await client.get("/health/ready")).status_code == 503


async def test_health_names_the_broker_when_it_is_down(start_relay: StartRelay) -> None:
    async with start_relay(consume=False) as (service, client):
        await service.broker.close()
        response = await client.get("/health")
        assert response.status_code == 200
        assert response.json()["failing"] == ["broker"]
        assert (await client.get("/health/ready")).status_code == 503


@pytest.mark.parametrize("part", ["store", "broker"])
async def test_ready_is_503_without_detail_when_a_part_is_down(
    start_relay: StartRelay, part: str
) -> None:
    async with start_relay(token="s3cret", consume=False) as (service, client):
        anonymous = {"Authorization": ""}
        assert (await client.get("/health/ready", headers=anonymous)).json() == {"status": "ok"}
        await (service.store if part == "store" else service.broker).close()
        ready = await client.get("/health/ready", headers=anonymous)
        assert ready.status_code == 503
        assert ready.json()["error"]["type"] == "unavailable"
        assert part not in ready.text
        live = await client.get("/health/live", headers=anonymous)
        assert (live.status_code, live.json()) == (200, {"status": "ok"})
        report = await client.get("/health")  # the detail, with the token
        assert report.status_code == 200
        assert report.json()["status"] == "unavailable"
        assert report.json()["failing"] == [part]


# -- GET /tasks/{id} ------------------------------------------------------------------------------


async def test_unknown_task_is_404_and_malformed_id_is_422(start_relay: StartRelay) -> None:
    async with start_relay() as (_, client):
        missing = await client.get(f"/tasks/{uuid.uuid4()}")
        assert missing.status_code == 404
        assert missing.json()["error"]["type"] == "not_found"
        malformed = await client.get("/tasks/not-a-uuid")
        assert malformed.status_code == 422
        assert malformed.json()["error"]["type"] == "validation_error"
        assert "task_id" in malformed.json()["error"]["message"]


async def test_published_task_shows_pending_with_its_json_input(start_relay: StartRelay) -> None:
    async with start_relay() as (_, client):
        created = await client.post("/tasks", json=publish_body(priority=200, ttl=60))
        assert created.status_code == 201, created.text
        task_id = created.json()["id"]
        assert created.json()["created"] is True
        body = (await client.get(f"/tasks/{task_id}")).json()
        assert body["id"] == task_id
        assert body["status"] == "PENDING"
        assert (body["task_kind"], body["worker_kind"]) == ("resize", "images")
        assert (body["priority"], body["ttl"], body["attempt"]) == (200, 60, 1)
        assert body["input"] == {"content_type": "application/json", "encoding": "json",
                                 "data": {"w": 10}}  # fmt: skip
        assert Z_TIME.match(body["created_at"])
        assert body["output"] is None
        assert body["error"] is None
        assert body["is_error"] is False


@pytest.mark.parametrize(
    ("payload", "encoding", "data"),
    [
        (Payload("application/json", b'"aGVsbG8="'), "json", "aGVsbG8="),
        (Payload("application/json", b'{"a": [1, 2]}'), "json", {"a": [1, 2]}),
        (Payload("text/plain; charset=utf-8", "héllo".encode()), "text", "héllo"),
        (Payload("application/octet-stream", b"hello"), "base64", "aGVsbG8="),
        (Payload("application/json", b"{not json"), "text", "{not json"),
        (Payload("application/json", b"NaN"), "text", "NaN"),
        (Payload("text/plain", b"\xff\xfe"), "base64", base64.b64encode(b"\xff\xfe").decode()),
    ],
    ids=["json-string", "json-object", "text", "bytes", "bad-json", "nan", "bad-utf8"],
)
async def test_output_encoding_says_how_to_read_the_data(
    start_relay: StartRelay, payload: Payload, encoding: str, data: Any
) -> None:
    async with start_relay() as (service, client):
        task_id = uuid.uuid4()
        await service.store.apply_batch([completed(task_id, output=payload)])
        body = (await client.get(f"/tasks/{task_id}")).json()
        assert body["status"] == "COMPLETED"
        assert body["output"] == {
            "content_type": payload.content_type,
            "encoding": encoding,
            "data": data,
        }
        assert Z_TIME.match(body["completed_at"])
        assert Z_TIME.match(body["started_at"])
        assert body["executed_by"] == "w1"


async def test_failed_task_shows_type_message_and_traceback(start_relay: StartRelay) -> None:
    async with start_relay() as (service, client):
        task_id = uuid.uuid4()
        error = ErrorInfo("ValueError", "bad size", "Traceback (most recent call last): ...")
        await service.store.apply_batch([completed(task_id, is_error=True, error=error)])
        body = (await client.get(f"/tasks/{task_id}")).json()
        assert body["is_error"] is True
        assert body["error"] == {"type": "ValueError", "message": "bad size",
                                 "traceback": "Traceback (most recent call last): ..."}  # fmt: skip


# -- long-poll ------------------------------------------------------------------------------------


async def test_long_poll_wakes_when_the_completion_arrives(
    start_relay: StartRelay, broker_url: str, namespace: str
) -> None:
    async with start_relay() as (_, client):
        task_id = (await client.post("/tasks", json=publish_body())).json()["id"]
        started = time.monotonic()
        waiting = asyncio.create_task(client.get(f"/tasks/{task_id}", params={"wait": 20}))
        await asyncio.sleep(0.3)
        assert not waiting.done()
        async with Publisher(broker_url, namespace=namespace) as pub:
            event = completed(uuid.UUID(task_id), output=Payload("application/json", b"42"))
            await pub.broker.publish(encode_updates([event]))
        response = await asyncio.wait_for(waiting, 10)
        elapsed = time.monotonic() - started
        assert response.json()["status"] == "COMPLETED"
        assert response.json()["output"]["data"] == 42
        assert elapsed < 5, f"the long-poll took {elapsed:.2f}s; it should wake at once"


async def test_long_poll_returns_the_current_state_when_the_wait_ends(
    start_relay: StartRelay,
) -> None:
    async with start_relay(max_wait=0.5) as (_, client):
        task_id = (await client.post("/tasks", json=publish_body())).json()["id"]
        started = time.monotonic()
        response = await client.get(f"/tasks/{task_id}", params={"wait": 30})  # capped at 0.5
        assert response.status_code == 200
        assert response.json()["status"] == "PENDING"
        assert 0.4 < time.monotonic() - started < 5
        assert (await client.get(f"/tasks/{task_id}", params={"wait": -1})).status_code == 422


async def test_stopping_the_relay_answers_pending_long_polls_at_once(
    broker_url: str, store_url: str, namespace: str
) -> None:
    service = RelayService(broker_url, store_url, namespace=namespace, port=0)
    stop = asyncio.Event()
    job = asyncio.create_task(service.run(stop))
    await asyncio.wait_for(service.ready.wait(), 10)
    async with httpx.AsyncClient(base_url=service.url, timeout=30) as client:
        task_id = (await client.post("/tasks", json=publish_body())).json()["id"]
        waiting = asyncio.create_task(client.get(f"/tasks/{task_id}", params={"wait": 60}))
        await asyncio.sleep(0.3)
        started = time.monotonic()
        stop.set()
        response = await asyncio.wait_for(waiting, 10)
        assert response.json()["status"] == "PENDING"
        await asyncio.wait_for(job, 10)
        assert time.monotonic() - started < 5


# -- POST /tasks ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"worker_kind": "images"}, "task_kind"),
        (publish_body(task_kind=""), "task_kind"),
        (publish_body(priority=256), "priority"),
        (publish_body(priority="5"), "priority"),
        (publish_body(priority=1.5), "priority"),
        (publish_body(ttl=-1), "ttl"),
        (publish_body(id="nope"), "id"),
        (publish_body(input_base64="aGk="), "input or input_base64"),
        (publish_body(input=None, input_base64="***"), "input or input_base64"),
        ({"task_kind": "a", "worker_kind": "b", "input_base64": "***"}, "base64"),
        (publish_body(content_type="text/plain"), "content_type"),
        (publish_body(colour="red"), "colour"),
        (publish_body(countdown="5"), "countdown"),
        (publish_body(countdown=True), "countdown"),
        (publish_body(countdown=-1), "countdown"),
        (publish_body(countdown=1e300), "countdown"),
        (publish_body(countdown=5, eta="2026-12-03T10:00:00Z"), "countdown or eta"),
        (publish_body(eta=12), "eta"),
        (publish_body(eta=""), "eta"),
        (publish_body(eta="2026-12-03T10:00:00"), "eta"),
        (publish_body(eta="2026-12-03 10:00"), "eta"),
        (publish_body(eta="0001-01-01T00:00:00+01:00"), "eta"),
        (publish_body(eta="9999-12-31T23:59:59-01:00"), "eta"),
        (publish_body(eta="2026-12-03T10:00:00\u0000Z"), "eta"),
        (publish_body(eta="9" * 100_000), "eta"),
    ],
)
async def test_bad_publish_bodies_are_422_naming_the_field(
    start_relay: StartRelay, body: dict[str, Any], field: str
) -> None:
    async with start_relay() as (service, client):
        response = await client.post("/tasks", json=body)
        assert response.status_code == 422, response.text
        error = response.json()["error"]
        assert error["type"] == "validation_error"
        assert field in error["message"]
        assert service.published == 0


async def test_a_worker_kind_no_broker_can_carry_is_422_and_publishes_nothing(
    start_relay: StartRelay,
) -> None:
    async with start_relay() as (service, client):
        for kind in ("a\x01b", "tab\there"):
            response = await client.post("/tasks", json=publish_body(worker_kind=kind))
            assert response.status_code == 422, response.text
            assert "worker_kind" in response.json()["error"]["message"]
        assert service.published == 0


async def test_an_eta_beyond_the_longest_delay_is_422(start_relay: StartRelay) -> None:
    async with start_relay() as (service, client):
        far = format_timestamp(utcnow() + timedelta(days=60))
        response = await client.post("/tasks", json=publish_body(eta=far))
        assert response.status_code == 422, response.text
        assert "48.5 days" in response.json()["error"]["message"]
        assert service.published == 0


async def test_countdown_and_eta_hold_a_rest_publish_back(start_relay: StartRelay) -> None:
    async with start_relay(consume=False) as (service, client):
        soon = format_timestamp(utcnow() + timedelta(seconds=0.4))
        for delay in ({"countdown": 0.4}, {"eta": soon}):
            response = await client.post("/tasks", json=publish_body(**delay))
            assert response.status_code == 201, response.text
            row = (await client.get(f"/tasks/{response.json()['id']}")).json()
            assert row["status"] == "PENDING"  # known to the relay at once
        depths = service.broker.stats  # type: ignore[attr-defined]
        assert depths().get(worker_queue("images"), 0) == 0
        await eventually(
            lambda: _now(depths().get(worker_queue("images"), 0)),
            until=lambda n: n == 2,
            timeout=10,
            message="both held-back assignments reached the worker queue",
        )


async def _now(value: Any) -> Any:
    return value


async def test_invalid_json_body_is_422(start_relay: StartRelay) -> None:
    async with start_relay() as (_, client):
        response = await client.post(
            "/tasks", content=b"{not json", headers={"Content-Type": "application/json"}
        )
        assert response.status_code == 422
        assert response.json()["error"]["type"] == "validation_error"


async def test_bytes_input_and_default_ttl(start_relay: StartRelay) -> None:
    async with start_relay(default_ttl=123) as (service, client):
        data = base64.b64encode(b"\x00\x01raw").decode()
        body = {"task_kind": "digest", "worker_kind": "images", "input_base64": data,
                "content_type": "image/png"}  # fmt: skip
        task_id = (await client.post("/tasks", json=body)).json()["id"]
        task = (await client.get(f"/tasks/{task_id}")).json()
        assert task["ttl"] == 123
        assert task["input"] == {"content_type": "image/png", "encoding": "base64", "data": data}
        row = await service.store.get(uuid.UUID(task_id))
        assert row is not None
        assert row.input == Payload("image/png", b"\x00\x01raw")


async def test_input_over_max_payload_bytes_is_413(start_relay: StartRelay) -> None:
    async with start_relay(max_payload_bytes=1000) as (service, client):
        response = await client.post("/tasks", json=publish_body(input="x" * 1500))
        assert response.status_code == 413
        assert response.json()["error"]["type"] == "payload_too_large"
        assert "max_payload_bytes" in response.json()["error"]["message"]
        assert service.published == 0


async def test_request_body_over_the_limit_is_413(start_relay: StartRelay) -> None:
    async with start_relay(max_body_bytes=4096) as (_, client):
        big = json.dumps(publish_body(input="x" * 10_000)).encode()
        response = await client.post(
            "/tasks", content=big, headers={"Content-Type": "application/json"}
        )
        assert response.status_code == 413
        assert response.json()["error"]["type"] == "payload_too_large"

        async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as it streams
            for start in range(0, len(big), 1000):
                yield big[start : start + 1000]

        streamed = await client.post(
            "/tasks", content=chunks(), headers={"Content-Type": "application/json"}
        )
        assert streamed.status_code == 413
        assert streamed.json()["error"]["type"] == "payload_too_large"


async def test_two_identical_concurrent_publishes_send_one_assignment(
    start_relay: StartRelay,
) -> None:
    async with start_relay(consume=False) as (service, client):
        body = publish_body(id=str(uuid.uuid4()))
        first, second = await asyncio.gather(
            client.post("/tasks", json=body), client.post("/tasks", json=body)
        )
        assert sorted([first.status_code, second.status_code]) == [200, 201]
        assert first.json()["id"] == second.json()["id"] == body["id"]
        assert sorted([first.json()["created"], second.json()["created"]]) == [False, True]
        assert service.broker.stats()[worker_queue("images")] == 1  # type: ignore[attr-defined]
        again = await client.post("/tasks", json=body)
        assert (again.status_code, again.json()["created"]) == (200, False)
        assert service.broker.stats()[worker_queue("images")] == 1  # type: ignore[attr-defined]
        assert service.published == 1


async def test_two_relays_on_one_store_publish_a_repeated_id_once(
    broker_url: str, store_url: str, namespace: str
) -> None:
    one = RelayService(broker_url, store_url, namespace=namespace, port=0, consume=False)
    two = RelayService(broker_url, store_url, namespace=namespace, port=0, consume=False)
    async with running(one) as (_, client_one), running(two) as (_, client_two):
        body = publish_body(id=str(uuid.uuid4()))
        answers = await asyncio.gather(
            client_one.post("/tasks", json=body), client_two.post("/tasks", json=body)
        )
        assert sorted(a.status_code for a in answers) == [200, 201]
        assert one.published + two.published == 1
        assert one.broker.stats()[worker_queue("images")] == 1  # type: ignore[attr-defined]


async def test_reusing_an_id_for_another_task_is_409(start_relay: StartRelay) -> None:
    async with start_relay() as (_, client):
        task_id = str(uuid.uuid4())
        assert (await client.post("/tasks", json=publish_body(id=task_id))).status_code == 201
        clash = await client.post("/tasks", json=publish_body(id=task_id, task_kind="other"))
        assert clash.status_code == 409
        assert clash.json()["error"]["type"] == "conflict"


async def test_a_refused_publish_is_503_and_leaves_no_row(start_relay: StartRelay) -> None:
    async with start_relay(consume=False) as (service, client):
        await service.broker.close()  # the broker now refuses every publish
        task_id = str(uuid.uuid4())
        response = await client.post("/tasks", json=publish_body(id=task_id))
        assert response.status_code == 503
        assert response.json()["error"]["type"] == "unavailable"
        assert task_id in response.json()["error"]["message"]
        assert (await client.get(f"/tasks/{task_id}")).status_code == 404
        assert await service.store.get(uuid.UUID(task_id)) is None
        assert service.stats()["publish_failures"] == 1


async def test_a_store_outage_during_publish_is_503(start_relay: StartRelay) -> None:
    async with start_relay(consume=False) as (service, client):
        await service.store.close()
        response = await client.post("/tasks", json=publish_body())
        assert response.status_code == 503
        assert "store" in response.json()["error"]["message"]
        assert service.published == 0
        assert (await client.get(f"/tasks/{uuid.uuid4()}")).status_code == 503


# -- GET /tasks -----------------------------------------------------------------------------------


async def test_list_paginates_and_filters(start_relay: StartRelay) -> None:
    async with start_relay() as (service, client):
        ids = set()
        for i in range(5):
            kind = "resize" if i % 2 == 0 else "digest"
            ids.add((await client.post("/tasks", json=publish_body(task_kind=kind))).json()["id"])
        seen: list[str] = []
        cursor = None
        for _ in range(10):
            params: dict[str, Any] = {"limit": 2}
            if cursor:
                params["cursor"] = cursor
            page = (await client.get("/tasks", params=params)).json()
            seen += [t["id"] for t in page["tasks"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert len(seen) == 5
        assert set(seen) == ids
        digests = (await client.get("/tasks", params={"task_kind": "digest"})).json()["tasks"]
        assert len(digests) == 2
        assert all(t["task_kind"] == "digest" for t in digests)
        done_id = uuid.UUID(digests[0]["id"])
        await service.store.apply_batch([completed(done_id, task_kind="digest")])
        done = (await client.get("/tasks", params={"status": "COMPLETED"})).json()["tasks"]
        assert [t["id"] for t in done] == [str(done_id)]
        other = (await client.get("/tasks", params={"worker_kind": "nobody"})).json()
        assert other == {"tasks": [], "next_cursor": None}


@pytest.mark.parametrize(
    "params", [{"status": "DONE"}, {"limit": 0}, {"limit": 501}, {"cursor": "garbage!"}]
)
async def test_list_rejects_bad_parameters(start_relay: StartRelay, params: dict[str, Any]) -> None:
    async with start_relay() as (_, client):
        response = await client.get("/tasks", params=params)
        assert response.status_code == 422
        assert response.json()["error"]["type"] == "validation_error"


# -- token, errors, docs --------------------------------------------------------------------------


async def test_token_protects_every_route_but_the_probes(start_relay: StartRelay) -> None:
    async with start_relay(token="s3cret") as (_, client):
        some_id = uuid.uuid4()
        for headers in ({"Authorization": ""}, {"Authorization": "Bearer wrong"}):
            for method, path in [
                ("GET", f"/tasks/{some_id}"),
                ("GET", "/health"),
                ("GET", "/tasks"),
                ("POST", "/tasks"),
                ("GET", "/docs"),
                ("GET", "/openapi.json"),
                ("GET", "/docs/assets/swagger-ui.css"),
            ]:
                response = await client.request(method, path, headers=headers)
                assert response.status_code == 401, (method, path)
                assert response.json()["error"]["type"] == "unauthorized"
                assert response.headers["www-authenticate"] == "Bearer"
        assert (await client.get(f"/tasks/{some_id}")).status_code == 404  # right token
        for probe in ("/health/live", "/health/ready"):
            assert (await client.get(probe, headers={"Authorization": ""})).status_code == 200


async def test_public_docs_open_without_the_token(start_relay: StartRelay) -> None:
    async with start_relay(token="s3cret", public_docs=True) as (_, client):
        anonymous = {"Authorization": ""}
        assert (await client.get("/docs", headers=anonymous)).status_code == 200
        assert (await client.get("/openapi.json", headers=anonymous)).status_code == 200
        asset = await client.get("/docs/assets/swagger-ui.css", headers=anonymous)
        assert asset.status_code == 200
        assert (await client.get("/tasks", headers=anonymous)).status_code == 401


async def test_unknown_routes_and_methods_answer_json_errors(start_relay: StartRelay) -> None:
    async with start_relay() as (_, client):
        missing = await client.get("/nowhere")
        assert missing.status_code == 404
        assert missing.json()["error"]["type"] == "not_found"
        wrong = await client.delete("/tasks")
        assert wrong.status_code == 405
        assert wrong.json()["error"]["type"] == "method_not_allowed"
        assert wrong.headers["allow"] == "GET, POST"  # every route of the path
        other = await client.request("OPTIONS", f"/tasks/{uuid.uuid4()}")
        assert (other.status_code, other.headers["allow"]) == (405, "GET")


async def test_openapi_and_docs_are_served_by_the_relay_itself(start_relay: StartRelay) -> None:
    async with start_relay(token="s3cret") as (_, client):
        spec = (await client.get("/openapi.json")).json()
        assert {"/health", "/tasks", "/tasks/{task_id}"} <= spec["paths"].keys()
        assert "HTTPBearer" in spec["components"]["securitySchemes"]
        html = (await client.get("/docs")).text
        assert "://" not in html, "the docs page must load nothing from another host"
        urls = re.findall(r"""(?:src|href)=["']([^"']+)["']""", html)
        assert len(urls) >= 3, html
        for url in urls:
            assert url.startswith("/"), url
            asset = await client.get(url)
            assert asset.status_code == 200, url
            assert len(asset.content) > 1000, url
        assert "url: '/openapi.json'" in html
        bundle = await client.get("/docs/assets/swagger-ui-bundle.js")
        assert bundle.headers["content-type"].startswith("text/javascript")
        assert (await client.get("/docs/assets/../../etc/passwd")).status_code == 404


async def test_http_off_runs_the_consumer_only(
    broker_url: str, store_url: str, namespace: str
) -> None:
    service = RelayService(broker_url, store_url, namespace=namespace, http=False)
    stop = asyncio.Event()
    job = asyncio.create_task(service.run(stop))
    await asyncio.wait_for(service.ready.wait(), 10)
    async with Publisher(broker_url, namespace=namespace) as pub:
        task = await pub.publish("resize", {"w": 1}, worker_kind="images")
    row = await eventually(lambda: service.store.get(task.id), until=lambda r: r is not None)
    assert row is not None
    assert service.engine.stats.events == 1
    stop.set()
    await asyncio.wait_for(job, 10)


async def test_keep_alive_requests_answer_without_a_delayed_ack_stall(
    start_relay: StartRelay,
) -> None:
    # Without TCP_NODELAY on the relay's sockets each keep-alive answer waited ~40 ms.
    async with start_relay() as (_, client):
        path = f"/tasks/{uuid.uuid4()}"
        await client.get(path)  # open the connection
        started = time.monotonic()
        for _ in range(20):
            assert (await client.get(path)).status_code == 404
        elapsed = time.monotonic() - started
        assert elapsed < 0.6, f"20 keep-alive requests took {elapsed:.2f}s"


async def test_worker_kinds_restrict_rest_publishes_and_declare_no_other_queue(
    start_relay: StartRelay,
) -> None:
    async with start_relay(worker_kinds=["images"], consume=False) as (service, client):
        assert (await client.post("/tasks", json=publish_body())).status_code == 201
        refused = await client.post("/tasks", json=publish_body(worker_kind="strangers"))
        assert refused.status_code == 422
        assert "worker_kind: 'strangers'" in refused.json()["error"]["message"]
        queues = service.broker.stats()  # type: ignore[attr-defined]
        assert worker_queue("images") in queues
        assert worker_queue("strangers") not in queues
        assert service.publish_failures == 0


@pytest.mark.parametrize(
    ("kinds", "needle"),
    [([], "at least one"), ([""], "1-255"), (["a\x00"], "NUL"), (["k" * 256], "1-255")],
)
def test_worker_kinds_must_be_kinds(kinds: list[str], needle: str) -> None:
    from tacoq.errors import ConfigError

    with pytest.raises(ConfigError, match=needle):
        RelayService("memory://", "memory://", worker_kinds=kinds)
