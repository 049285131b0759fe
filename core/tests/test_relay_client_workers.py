"""``RelayClient`` and ``SyncRelayClient``'s ``workers``, ``kinds`` and ``kind`` against a real
relay (uvicorn on a loopback port) and real workers, on the built-in memory broker and store;
and a relay whose store keeps no workers (``501``)."""

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import httpx
import pytest

from tacoq.builtin.memory_store import MemoryStore
from tacoq.contracts.store import Store
from tacoq.errors import ConfigError, RelayError
from tacoq.model.task import utcnow
from tacoq.model.wire import encode_control
from tacoq.model.workers import Announcement
from tacoq.relay.client import RelayClient, SyncRelayClient
from tacoq.relay.service import RelayService
from tacoq.relay.worker_models import KindOut, WorkerOut
from tacoq.testing import eventually, fresh_namespace
from tacoq.testing.workers import SizeIn, SizeOut, contract_app
from tacoq.worker import WorkerApp

INTERVAL = 0.2


def make_app(worker_kind: str, name: str, *, quality: bool = False) -> WorkerApp:
    """:func:`~tacoq.testing.workers.contract_app` with a task kind named ``..`` too."""
    app = contract_app(worker_kind, name, quality=quality, heartbeat_interval=INTERVAL)

    @app.task(kind="..")
    async def dots(text: str) -> str:
        return text

    return app


class NoWorkersStore(MemoryStore):
    """A memory store that keeps no workers, as a store plugin without them would."""

    save_worker = Store.save_worker  # type: ignore[assignment]
    touch_worker = Store.touch_worker  # type: ignore[assignment]
    remove_worker = Store.remove_worker  # type: ignore[assignment]
    list_workers = Store.list_workers  # type: ignore[assignment]
    prune_workers = Store.prune_workers  # type: ignore[assignment]


@asynccontextmanager
async def system(
    *apps: WorkerApp, store: Any = None, ns: str | None = None, **options: Any
) -> AsyncIterator[RelayService]:
    """A relay (``RelayService`` options) and ``apps`` on a memory broker of namespace ``ns``
    (default: a fresh one) and a memory store (unless given); each app is served until the
    end, then stops cleanly."""
    ns = ns or fresh_namespace("clientw")
    url = f"memory://{ns}"
    service = RelayService(url, store or url, namespace=ns, port=0, **options)
    stop = asyncio.Event()
    jobs = [asyncio.create_task(service.run(stop))]
    await asyncio.wait_for(service.ready.wait(), 10)
    jobs += [asyncio.create_task(a.serve(stop, broker_url=url, namespace=ns)) for a in apps]
    try:
        yield service
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*jobs), 15)


async def online(client: RelayClient, names: set[str]) -> None:
    """Wait until exactly ``names`` are online, each with a heartbeat seen."""

    async def seen() -> list[WorkerOut]:
        return await client.workers()

    await eventually(
        seen,
        until=lambda ws: {w.name for w in ws} == names and all(w.running is not None for w in ws),
        timeout=10,
    )


async def test_workers_lists_the_workers_online_and_filters_by_kind() -> None:
    apps = make_app("images", "img-1"), make_app("text", "txt-1")
    async with system(*apps) as relay, RelayClient(relay.url) as client:
        await online(client, {"img-1", "txt-1"})
        listed = await client.workers()
        assert [(w.worker_kind, w.name, w.state) for w in listed] == [
            ("images", "img-1", "online"),
            ("text", "txt-1", "online"),
        ]
        img = listed[0]
        assert img.task_kinds == ["..", "blob", "echo", "resize"]
        assert (img.announced, img.heartbeat_interval, img.running) == (True, INTERVAL, 0)
        assert [w.name for w in await client.workers("text")] == ["txt-1"]
        assert await client.workers("nobody") == []
        assert [w.name for w in await client.workers(all=True)] == ["img-1", "txt-1"]


async def test_all_adds_the_workers_gone() -> None:
    async with system(make_app("images", "img-1")) as relay, RelayClient(relay.url) as client:
        # a worker that announced itself and never beat (it died at once): gone after three
        # of its intervals, but not forgotten
        now = utcnow()
        dead = Announcement(
            name="img-2", worker_kind="images", task_kinds=["resize"], host="elsewhere", pid=7,
            tacoq_version="0", python_version="3", concurrency=1, prefetch=1, started_at=now,
            heartbeat_interval=0.1, sent_at=now,
        )  # fmt: skip
        await relay.broker.send_control(encode_control(dead))

        async def gone() -> list[WorkerOut]:
            return [w for w in await client.workers(all=True) if w.state == "gone"]

        await eventually(gone, until=lambda ws: [w.name for w in ws] == ["img-2"], timeout=10)
        await online(client, {"img-1"})
        everyone = await client.workers("images", all=True)
        assert [(w.name, w.state) for w in everyone] == [("img-1", "online"), ("img-2", "gone")]
        assert (everyone[1].host, everyone[1].pid, everyone[1].running) == ("elsewhere", 7, None)


async def test_kinds_and_kind_give_the_contracts() -> None:
    async with system(make_app("images", "img-1")) as relay, RelayClient(relay.url) as client:
        await online(client, {"img-1"})
        kinds = await client.kinds()
        assert [(k.worker_kind, k.task_kind) for k in kinds] == [
            ("images", ".."),
            ("images", "blob"),
            ("images", "echo"),
            ("images", "resize"),
        ]
        resize = await client.kind("images", "resize")
        assert isinstance(resize, KindOut)
        assert resize == kinds[3]
        (contract,) = resize.contracts
        assert contract.input.json_schema == SizeIn.model_json_schema()
        assert contract.output.json_schema == SizeOut.model_json_schema()
        assert contract.workers == ["img-1"]
        blob = await client.kind("images", "blob")
        assert blob is not None
        assert blob.contracts[0].input.json_schema is None
        # a task kind that is a path's "..": sent as one segment, not resolved away
        dots = await client.kind("images", "..")
        assert dots is not None
        assert dots.task_kind == ".."
        assert await client.kind("images", "nope") is None
        assert await client.kind("nobody", "resize") is None
        assert await client.kinds("nobody") == []
        assert [k.task_kind for k in await client.kinds("images")] == [k.task_kind for k in kinds]


async def test_kinds_with_reserved_characters_are_found() -> None:
    app = WorkerApp("im/ages v2", name="odd", heartbeat_interval=INTERVAL)

    @app.task(kind="re/size?x=1#y%20")
    async def odd(text: str) -> str:
        return text

    @app.task(kind="plain")
    async def plain(text: str) -> str:
        return text

    other = WorkerApp("a?b#c%d é", name="odd-2", heartbeat_interval=INTERVAL)

    @other.task(kind="x y")
    async def xy(text: str) -> str:
        return text

    async with system(app, other) as relay, RelayClient(relay.url) as client:
        await online(client, {"odd", "odd-2"})
        for worker_kind, task_kind in (
            ("im/ages v2", "re/size?x=1#y%20"),
            ("im/ages v2", "plain"),
            ("a?b#c%d é", "x y"),
        ):
            found = await client.kind(worker_kind, task_kind)
            assert found is not None, (worker_kind, task_kind)
            assert (found.worker_kind, found.task_kind) == (worker_kind, task_kind)
        assert await client.kind("im/ages v2", "re/size") is None
        assert [w.name for w in await client.workers("a?b#c%d é")] == ["odd-2"]
        assert [k.task_kind for k in await client.kinds("im/ages v2")] == [
            "plain",
            "re/size?x=1#y%20",
        ]


async def test_a_redeploy_is_a_conflict_with_both_contracts() -> None:
    apps = make_app("images", "old"), make_app("images", "new", quality=True)
    async with system(*apps) as relay, RelayClient(relay.url) as client:
        await online(client, {"old", "new"})
        resize = await client.kind("images", "resize")
        assert resize is not None
        assert resize.conflict
        assert sorted(c.workers for c in resize.contracts) == [["new"], ["old"]]
        echo = await client.kind("images", "echo")
        assert echo is not None
        assert not echo.conflict
        assert echo.contracts[0].workers == ["new", "old"]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("",), "worker_kind must not be empty"),
        (("a\x00b",), "worker_kind must not hold control characters"),
        (("x" * 300,), "worker_kind is 300 characters long"),
    ],
)
async def test_malformed_kinds_are_refused_before_any_request(args: Any, needle: str) -> None:
    # Nothing listens here: a request would be RelayUnavailable, not ConfigError.
    async with RelayClient("http://127.0.0.1:9", retries=0) as client:
        with pytest.raises(ConfigError, match=needle):
            await client.workers(*args)
        with pytest.raises(ConfigError, match=needle):
            await client.kinds(*args)
        with pytest.raises(ConfigError, match=needle):
            await client.kind(*args, "resize")
        with pytest.raises(ConfigError, match=needle.replace("worker_kind", "task_kind")):
            await client.kind("images", *args)


async def test_a_store_without_workers_is_a_clear_relay_error() -> None:
    ns = fresh_namespace("noworkers")
    store = NoWorkersStore(f"memory://{ns}", namespace=ns)
    async with system(store=store) as relay, RelayClient(relay.url) as client:
        for call in (client.workers(), client.kinds(), client.kind("images", "resize")):
            with pytest.raises(RelayError) as caught:
                await call
            assert caught.value.status == 501
            message = str(caught.value)
            assert message.startswith(f"the relay at {relay.url} knows no workers")
            assert "store does not keep them" in message
            assert "NoWorkersStore" in message  # the relay's own reason
        # the other routes work
        assert (await client.list()).tasks == []


async def test_other_errors_keep_their_status() -> None:
    async with system(make_app("images", "img-1"), token="secret") as relay:
        async with RelayClient(relay.url, token="wrong") as client:
            with pytest.raises(RelayError) as caught:
                await client.workers()
            assert caught.value.status == 401
        async with RelayClient(relay.url, token="secret") as client:
            await online(client, {"img-1"})
    transport = httpx.MockTransport(lambda request: httpx.Response(503, text="down"))
    async with RelayClient("http://relay.invalid", transport=transport) as broken:
        with pytest.raises(RelayError) as caught:
            await broken.kinds()
        assert (caught.value.status, str(caught.value)) == (
            503,
            "the relay at http://relay.invalid answered 503: down",
        )


@contextmanager
def system_in_thread(*apps: WorkerApp) -> Iterator[RelayService]:
    """:func:`system` on an event loop of its own thread, for the blocking client."""
    started: list[RelayService] = []
    ready = threading.Event()
    release: list[asyncio.Event] = []
    loop = asyncio.new_event_loop()

    async def main() -> None:
        release.append(asyncio.Event())
        async with system(*apps) as service:
            started.append(service)
            ready.set()
            await release[0].wait()

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    try:
        assert ready.wait(15), "the relay did not start"
        yield started[0]
    finally:
        loop.call_soon_threadsafe(release[0].set)
        thread.join(15)
        loop.close()


def test_the_sync_client_answers_alike() -> None:
    with (
        system_in_thread(make_app("images", "img-1")) as relay,
        SyncRelayClient(relay.url) as client,
    ):
        deadline = time.monotonic() + 10
        while not (listed := client.workers()) or listed[0].running is None:
            assert time.monotonic() < deadline, listed
            time.sleep(0.05)
        assert [w.name for w in listed] == ["img-1"]
        assert [w.name for w in client.workers("images", all=True)] == ["img-1"]
        assert [k.task_kind for k in client.kinds("images")] == ["..", "blob", "echo", "resize"]
        resize = client.kind("images", "resize")
        assert resize is not None
        assert resize.contracts[0].input.json_schema == SizeIn.model_json_schema()
        assert client.kind("images", "nope") is None
        assert client.kind("im/ages", "x") is None
        with pytest.raises(ConfigError, match="task_kind must not be empty"):
            client.kind("images", "")
