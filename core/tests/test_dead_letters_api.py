"""Dead letters through the relay's HTTP API and ``RelayClient``: listed, shown, requeued once
into the queue they came from, deleted.

A real :class:`RelayService` (uvicorn on a loopback port) on the built-in broker and a memory or
SQLite store, with real workers; messages are dead-lettered by the real worker and relay.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from tacoq.contracts.broker import RELAY_QUEUE, worker_queue
from tacoq.errors import RelayError
from tacoq.model.wire import Envelope
from tacoq.plugins import get_plugin_host
from tacoq.publishing.publisher import Publisher
from tacoq.relay.client import RelayClient
from tacoq.relay.service import RelayService
from tacoq.testing import eventually, fresh_namespace
from tacoq.worker import WorkerApp

WAIT = 15.0
KIND = "dlq"


def worker_knowing(*kinds: str) -> WorkerApp:
    """A worker app of kind ``dlq`` whose handlers (of ``kinds``) double an int."""
    app = WorkerApp(KIND)
    for kind in kinds:

        async def double(value: int) -> int:
            return value * 2

        app.task(kind=kind)(double)
    return app


@pytest.fixture(params=["memory", "sqlite"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "memory":
        return f"memory://{uuid.uuid4().hex}"
    return f"sqlite:///{tmp_path / 'relay.db'}"


class System:
    def __init__(self, service: RelayService, client: RelayClient, ns: str) -> None:
        self.service = service
        self.client = client
        self.ns = ns
        self.url = f"memory://{ns}"
        self.jobs: list[tuple[asyncio.Event, asyncio.Task[None]]] = []

    def serve(self, app: WorkerApp) -> None:
        stop = asyncio.Event()
        job = asyncio.create_task(app.serve(stop, broker_url=self.url, namespace=self.ns))
        self.jobs.append((stop, job))

    async def stop_workers(self) -> None:
        for stop, job in self.jobs:
            stop.set()
            await asyncio.wait_for(job, 10)
        self.jobs.clear()

    async def letters(self, count: int, **filters: Any) -> list[Any]:
        async def page() -> list[Any]:
            return (await self.client.dead_letters(**filters)).dead_letters

        return await eventually(
            page, until=lambda found: len(found) == count, timeout=WAIT, message="dead letters"
        )


@asynccontextmanager
async def system(store_url: str, **options: Any) -> AsyncIterator[System]:
    ns = fresh_namespace("dlq")
    service = RelayService(f"memory://{ns}", store_url, namespace=ns, port=0, **options)
    stop = asyncio.Event()
    job = asyncio.create_task(service.run(stop))
    await asyncio.wait_for(service.ready.wait(), 10)
    async with RelayClient(service.url) as client:
        found = System(service, client, ns)
        try:
            yield found
        finally:
            await found.stop_workers()
            stop.set()
            await asyncio.wait_for(job, 15)


async def test_an_unknown_kind_is_dead_lettered_then_requeued_to_a_worker_that_knows_it(
    store_url: str,
) -> None:
    """The rolling-deploy case: a task for a kind no worker knows ends as DeadLettered (after
    bounded requeues); once a worker knows the kind, requeueing the dead letter runs it, and
    its record shows the new outcome."""
    async with system(store_url) as sys_:
        sys_.serve(worker_knowing("old"))
        async with Publisher(sys_.url, namespace=sys_.ns) as pub:
            task = await pub.publish("new", 21, worker_kind=KIND)
        row = await sys_.client.wait(task.id, WAIT)
        assert row.error is not None
        assert row.error.type == "DeadLettered"
        (letter,) = await sys_.letters(1)
        assert letter.origin == worker_queue(KIND)
        assert letter.task_id == task.id
        assert "unknown task kind 'new'" in letter.reason
        assert letter.count == 1
        shown = await sys_.client.dead_letter(letter.id)
        assert shown is not None
        assert shown.body is not None
        assert shown.body.data == 21
        assert shown.headers["tacoq-id"] == str(task.id)

        # Requeued to the same worker (which remembers completing attempt 1), it runs as
        # attempt 2: dead-lettered again, onto the same record.
        await sys_.client.requeue_dead_letters([letter.id])

        async def again() -> list[Any]:
            return (await sys_.client.dead_letters()).dead_letters

        (second,) = await eventually(
            again, until=lambda found: len(found) == 1 and found[0].count == 2, timeout=WAIT
        )
        assert second.id == letter.id
        assert second.headers["tacoq-attempt"] == "2"
        row = await sys_.client.wait(task.id, WAIT)
        assert (row.attempt, row.error and row.error.type) == (2, "DeadLettered")

        await sys_.stop_workers()
        sys_.serve(worker_knowing("old", "new"))
        result = await sys_.client.requeue_dead_letters([letter.id])
        assert result.requeued == [letter.id]
        assert result.skipped == []
        done = await sys_.client.wait(task.id, WAIT)
        assert not done.is_error, done.error
        assert done.result(int) == 42
        assert done.attempt == 3
        assert (await sys_.client.dead_letters()).dead_letters == []
        assert await sys_.client.dead_letter(letter.id) is None


async def test_a_message_dead_lettered_again_after_a_requeue_keeps_its_record(
    store_url: str,
) -> None:
    """Garbage on the relay's queue is a dead letter; requeued, it fails again and lands on the
    same record with its count grown. A requeue that names an old count is refused (409)."""
    async with system(store_url) as sys_:
        broker = get_plugin_host().create_broker(sys_.url, namespace=sys_.ns)
        await broker.connect()
        try:
            await broker.publish(Envelope({"junk": "yes"}, "text/plain", b"not a message"))
        finally:
            await broker.close()
        (letter,) = await sys_.letters(1, origin=RELAY_QUEUE)
        assert letter.reason.startswith("relay cannot decode: ")
        assert await sys_.client.dead_letters(origin="worker:nobody") is not None
        assert (await sys_.client.dead_letters(reason="no such reason")).dead_letters == []
        await sys_.client.requeue_dead_letters([letter.id])

        async def again() -> list[Any]:
            return (await sys_.client.dead_letters()).dead_letters

        (second,) = await eventually(
            again, until=lambda found: len(found) == 1 and found[0].count == 2, timeout=WAIT
        )
        assert second.id == letter.id
        assert second.first_seen <= second.last_seen
        response = await sys_.client._http.post(f"/dead-letters/{letter.id}/requeue?count=1")
        assert response.status_code == 409
        assert "dead-lettered again" in response.json()["error"]["message"]
        response = await sys_.client._http.post(f"/dead-letters/{letter.id}/requeue?count=2")
        assert response.status_code == 200
        await sys_.letters(1)  # it failed once more: back, count 3


async def test_a_cut_body_cannot_be_requeued_and_deleting_needs_a_filter(store_url: str) -> None:
    """A dead letter whose body was over the relay's limit keeps only the limit: it cannot be
    requeued (409, and skipped in a batch). Deleting needs ids, a filter, or all=true."""
    async with system(store_url, max_payload_bytes=100) as sys_:
        broker = get_plugin_host().create_broker(sys_.url, namespace=sys_.ns)
        await broker.connect()
        try:
            await broker.publish(Envelope({"tacoq-event": "assign"}, "text/plain", b"x" * 300))
            await broker.publish(Envelope({}, "text/plain", b"small"))
        finally:
            await broker.close()
        letters = await sys_.letters(2)
        (cut,) = [letter for letter in letters if not letter.body_complete]
        assert (cut.body_size, cut.content_type) == (300, "text/plain")
        shown = await sys_.client.dead_letter(cut.id)
        assert shown is not None
        assert shown.body is not None
        assert len(shown.body.data) == 100
        unknown = uuid.uuid4()
        result = await sys_.client.requeue_dead_letters([cut.id, unknown])
        assert result.requeued == []
        assert {s.id for s in result.skipped} == {cut.id, unknown}
        assert "only 100 of its 300 bytes" in next(
            s.reason for s in result.skipped if s.id == cut.id
        )
        response = await sys_.client._http.post(f"/dead-letters/{cut.id}/requeue")
        assert response.status_code == 409
        response = await sys_.client._http.post(f"/dead-letters/{unknown}/requeue")
        assert response.status_code == 404

        for body in ({}, {"origin": None}, {"all": False}, {"origin": ""}, {"reason": "a\x00"}):
            response = await sys_.client._http.post("/dead-letters/purge", json=body)
            assert response.status_code == 422, (body, response.text)
        assert (
            "all: true"
            in (await sys_.client._http.post("/dead-letters/purge", json={})).json()["error"][
                "message"
            ]
        )
        assert await sys_.client.purge_dead_letters(reason="over the limit") == 1
        assert await sys_.client.delete_dead_letter(unknown) is False
        (rest,) = (await sys_.client.dead_letters()).dead_letters
        assert await sys_.client.delete_dead_letter(rest.id) is True
        assert await sys_.client.purge_dead_letters(everything=True) == 0


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/dead-letters", {"limit": 0}),
        ("/dead-letters", {"limit": 501}),
        ("/dead-letters", {"cursor": "not-a-cursor"}),
        ("/dead-letters", {"task_id": "nope"}),
        ("/dead-letters", {"origin": "x" * 1001}),
        ("/dead-letters", {"reason": "a\x00b"}),
        ("/dead-letters", {"task_id": "0F0E0D0C0B0A49088706050403020100"}),
        ("/dead-letters/not-a-uuid", {}),
    ],
)
async def test_malformed_dead_letter_requests_are_422(
    store_url: str, path: str, params: dict[str, Any]
) -> None:
    async with system(store_url) as sys_:
        response = await sys_.client._http.get(path, params=params)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["type"] == "validation_error"


@pytest.mark.parametrize(
    "body",
    [{"ids": []}, {"ids": ["nope"]}, {"ids": [str(uuid.uuid4())] * 501}, {"id": 1}, [1]],
)
async def test_a_malformed_requeue_body_is_422(store_url: str, body: Any) -> None:
    async with system(store_url) as sys_:
        response = await sys_.client._http.post("/dead-letters/requeue", json=body)
    assert response.status_code == 422, response.text


async def test_the_dead_letter_routes_need_the_token(store_url: str) -> None:
    async with system(store_url, token="s3cret") as sys_:
        async with httpx.AsyncClient(base_url=sys_.service.url) as anonymous:
            for method, path in (
                ("GET", "/dead-letters"),
                ("GET", f"/dead-letters/{uuid.uuid4()}"),
                ("POST", "/dead-letters/requeue"),
                ("POST", "/dead-letters/purge"),
                ("DELETE", f"/dead-letters/{uuid.uuid4()}"),
            ):
                response = await anonymous.request(method, path)
                assert response.status_code == 401, (method, path)
        with pytest.raises(RelayError) as info:
            await sys_.client.dead_letters()
        assert info.value.status == 401


@pytest.mark.parametrize("method", ["GET", "PUT", "PATCH", "DELETE"])
@pytest.mark.parametrize("action", ["requeue", "purge"])
async def test_an_action_path_answers_other_methods_405(
    store_url: str, method: str, action: str
) -> None:
    async with system(store_url) as sys_:
        response = await sys_.client._http.request(method, f"/dead-letters/{action}")
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
