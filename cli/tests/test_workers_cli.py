"""``tacoq workers`` and ``tacoq kinds`` as real ``tacoq`` processes talking to a relay and
workers on a memory broker and store, on a thread of this process (as conftest.py's ``relay``),
over TCP.

Malformed values are refused before any request: those tests point ``--relay`` at a port
nothing listens on, so a request would end in "cannot reach the relay" and exit 1 instead.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tacoq.builtin.memory_store import MemoryStore
from tacoq.contracts.store import Store
from tacoq.relay.client import SyncRelayClient
from tacoq.relay.service import RelayService
from tacoq.testing import fresh_namespace
from tacoq.testing.workers import SizeIn, SizeOut, contract_app
from tacoq.worker import WorkerApp
from tacoq_cli.commands.workers import TABLE_WIDTH, column_widths, seen_ago
from tacoq_cli.main import run

INTERVAL = 0.2
#: A worker name longer than any table cell.
LONG_NAME = "w-" + "n" * 120
LONG_KIND = "t-" + "k" * 120


def make_app(worker_kind: str, name: str, *, quality: bool = False) -> WorkerApp:
    """:func:`~tacoq.testing.workers.contract_app` beating every :data:`INTERVAL`."""
    return contract_app(worker_kind, name, quality=quality, heartbeat_interval=INTERVAL)


def long_app() -> WorkerApp:
    """A worker whose name and task kind are too long for a table cell."""
    app = WorkerApp("cli-long", name=LONG_NAME, heartbeat_interval=INTERVAL)

    @app.task(kind=LONG_KIND)
    async def long(text: str) -> str:
        return text

    return app


class NoWorkersStore(MemoryStore):
    """A memory store that keeps no workers, as a store plugin without them would."""

    save_worker = Store.save_worker  # type: ignore[assignment]
    touch_worker = Store.touch_worker  # type: ignore[assignment]
    remove_worker = Store.remove_worker  # type: ignore[assignment]
    list_workers = Store.list_workers  # type: ignore[assignment]
    prune_workers = Store.prune_workers  # type: ignore[assignment]


@dataclass
class System:
    """A relay and workers on a thread's own event loop."""

    service: RelayService
    loop: asyncio.AbstractEventLoop

    @property
    def url(self) -> str:
        return self.service.url

    def announce_and_die(self, name: str, worker_kind: str) -> None:
        """Announce a worker ``name`` that never beats (as one that crashed at once): it is
        gone three heartbeat intervals later, listed only with --all."""
        from tacoq.model.task import utcnow
        from tacoq.model.wire import encode_control
        from tacoq.model.workers import Announcement

        now = utcnow()
        announcement = Announcement(
            name=name, worker_kind=worker_kind, task_kinds=["resize"], host="elsewhere",
            pid=1, tacoq_version="0", python_version="3", concurrency=1, prefetch=1,
            started_at=now, heartbeat_interval=0.1, sent_at=now,
        )  # fmt: skip
        sent = self.service.broker.send_control(encode_control(announcement))
        asyncio.run_coroutine_threadsafe(sent, self.loop).result(15)

    def wait_online(self, names: set[str], client: SyncRelayClient | None = None) -> None:
        """Wait until exactly ``names`` are online, each with a heartbeat seen."""
        deadline = time.monotonic() + 15
        with client or SyncRelayClient(self.url) as relay:
            while True:
                found = relay.workers()
                if {w.name for w in found} == names and all(w.running is not None for w in found):
                    return
                assert time.monotonic() < deadline, found
                time.sleep(0.05)


@contextmanager
def running(
    *apps: WorkerApp, store: Callable[[str], Any] | None = None, **options: Any
) -> Iterator[System]:
    """A relay (``RelayService`` options) and ``apps`` on a fresh memory broker and store
    (``store(namespace)`` makes another store), on a thread's own loop; yields once each app
    is online."""
    started: list[System] = []
    ready = threading.Event()
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()

    async def main() -> None:
        ns = fresh_namespace("cliw")
        url = f"memory://{ns}"
        chosen = url if store is None else store(ns)
        service = RelayService(url, chosen, namespace=ns, port=0, **options)
        relay_job = asyncio.create_task(service.run(stop))
        await asyncio.wait_for(service.ready.wait(), 10)
        jobs = [asyncio.create_task(a.serve(stop, broker_url=url, namespace=ns)) for a in apps]
        started.append(System(service, loop))
        ready.set()
        await asyncio.gather(relay_job, *jobs)

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    try:
        assert ready.wait(15), "the relay did not start"
        if apps:
            with SyncRelayClient(started[0].url, token=options.get("token")) as client:
                started[0].wait_online({app.name for app in apps}, client)
        yield started[0]
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(15)
        loop.close()


@pytest.fixture(scope="module")
def system() -> Iterator[System]:
    """Workers img-1 (``cli-images``), txt-1 (``cli-text``) and one with a long name and task
    kind (``cli-long``) online, and img-2 (``cli-images``) gone: listed only with --all."""
    apps = [make_app("cli-images", "img-1"), make_app("cli-text", "txt-1"), long_app()]
    with running(*apps) as started:
        started.announce_and_die("img-2", "cli-images")
        deadline = time.monotonic() + 15
        with SyncRelayClient(started.url) as client:
            while [w.name for w in client.workers(all=True) if w.state == "gone"] != ["img-2"]:
                assert time.monotonic() < deadline
                time.sleep(0.05)
        yield started


def unreachable() -> str:
    """The URL of a relay that is not there (a port just free)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


def ok(result: Any) -> str:
    """The output of a run that succeeded without a word on stderr."""
    assert (result.returncode, result.stderr) == (0, ""), result.stdout + result.stderr
    return str(result.stdout)


def api(system: System, path: str, **params: Any) -> Any:
    answer = httpx.get(f"{system.url}{path}", params=params, timeout=10)
    assert answer.status_code == 200, answer.text
    return answer.json()


# -- tacoq workers --------------------------------------------------------------------------------


def test_workers_table_lists_the_workers_online(system: System, run_tacoq: Any) -> None:
    out = ok(run_tacoq("workers", "--relay", system.url))
    lines = out.splitlines()
    assert lines[0] == "3 worker(s) online"
    assert lines[1].split() == [
        "name", "kind", "state", "task", "kinds", "running", "ok/failed", "seen", "host:pid"
    ]  # fmt: skip
    names = [line.split()[0] for line in lines[3:]]
    assert names[::2] == ["img-1", "txt-1"]
    assert names[1].startswith("w-nnn")
    assert names[1].endswith("…")
    assert "img-2" not in out  # gone: only with --all
    # the long cells are cut, the others are whole
    only = ok(run_tacoq("workers", "--worker-kind", "cli-images", "--relay", system.url))
    (row,) = [line.split() for line in only.splitlines()[3:]]
    assert row[:-2] == ["img-1", "cli-images", "online", "blob,", "echo,", "resize", "0", "0/0"]
    assert row[-2].endswith("s")  # seen
    assert row[-1] == f"{socket.gethostname()}:{os.getpid()}"


def test_workers_table_fits_100_columns_and_cuts_long_cells(system: System, run_tacoq: Any) -> None:
    for columns in ("250", "100", "80"):
        out = ok(run_tacoq("workers", "--all", "--relay", system.url, env={"COLUMNS": columns}))
        lines = out.splitlines()
        assert max(len(line) for line in lines) <= min(int(columns), TABLE_WIDTH), out
        assert len(lines) == 3 + 4  # one line per worker
        assert LONG_NAME not in out
        assert LONG_NAME[:5] in out
        assert "…" in out
    # a narrower terminal than the narrowest table: the lines are longer, never cut to nothing
    narrow = ok(run_tacoq("workers", "--relay", system.url, env={"COLUMNS": "40"}))
    assert all(len(line.split()) >= 8 for line in narrow.splitlines()[3:]), narrow


def test_column_widths_cut_the_widest_cuttable_column_first() -> None:
    headers = ("name", "state", "task kinds")
    rows = [["a" * 50, "online", "b" * 12]]
    assert column_widths(headers, rows, 100) == [30, 6, 12]  # capped at 30
    assert column_widths(headers, rows, 30) == [12, 6, 12]
    assert column_widths(headers, rows, 10) == [6, 6, 10]  # the floors: never narrower


def test_workers_all_adds_the_workers_gone(system: System, run_tacoq: Any) -> None:
    out = ok(run_tacoq("workers", "--all", "--worker-kind", "cli-images", "--relay", system.url))
    lines = out.splitlines()
    assert lines[0] == "1 worker(s) online, 1 gone, of worker kind 'cli-images'"
    states = {line.split()[0]: line.split()[2] for line in lines[3:]}
    assert states == {"img-1": "online", "img-2": "gone"}
    listed = json.loads(ok(run_tacoq("workers", "--all", "--json", "--relay", system.url)))
    assert [(w["name"], w["state"]) for w in listed["workers"]] == [
        ("img-1", "online"),
        ("img-2", "gone"),
        (LONG_NAME, "online"),
        ("txt-1", "online"),
    ]


def test_workers_json_is_the_relays(system: System, run_tacoq: Any) -> None:
    out = ok(run_tacoq("workers", "--json", "--relay", system.url))
    printed = json.loads(out)
    assert list(printed) == ["workers"]
    relays = api(system, "/workers")
    assert [list(w) for w in printed["workers"]] == [list(w) for w in relays["workers"]]
    volatile = {"seen_at", "expires_at"}  # a heartbeat may land between the two requests
    assert [{k: v for k, v in w.items() if k not in volatile} for w in printed["workers"]] == [
        {k: v for k, v in w.items() if k not in volatile} for w in relays["workers"]
    ]
    only = json.loads(ok(run_tacoq("workers", "--worker-kind", "cli-text", "--json",
                                   "--relay", system.url)))  # fmt: skip
    assert [w["name"] for w in only["workers"]] == ["txt-1"]
    none = json.loads(ok(run_tacoq("workers", "--worker-kind", "nobody", "--json",
                                   "--relay", system.url)))  # fmt: skip
    assert none == {"workers": []}


def test_workers_of_a_kind_nobody_runs_is_an_empty_table(system: System, run_tacoq: Any) -> None:
    out = ok(run_tacoq("workers", "--worker-kind", "nobody", "--relay", system.url))
    assert out.splitlines()[0] == "0 worker(s) online, of worker kind 'nobody'"


def test_seen_ago_uses_the_largest_unit() -> None:
    from datetime import UTC, datetime, timedelta

    now = datetime(2030, 1, 1, tzinfo=UTC)
    for seconds, shown in ((-5, "0s"), (0, "0s"), (59, "59s"), (60, "1m"), (3599, "59m"),
                           (3600, "1h"), (86_399, "23h"), (86_400 * 3, "3d")):  # fmt: skip
        assert seen_ago(now - timedelta(seconds=seconds), now) == shown


# -- tacoq kinds ----------------------------------------------------------------------------------


def test_kinds_table_lists_every_task_kind(system: System, run_tacoq: Any) -> None:
    out = ok(run_tacoq("kinds", "--relay", system.url))
    lines = out.splitlines()
    assert lines[0] == "7 task kind(s) announced by live workers"
    assert lines[1].split() == [
        "worker", "kind", "task", "kind", "input", "output", "conflict", "workers"
    ]  # fmt: skip
    assert [line.split()[:2] for line in lines[3:]] == [
        ["cli-images", "blob"],
        ["cli-images", "echo"],
        ["cli-images", "resize"],
        ["cli-long", lines[6].split()[1]],
        ["cli-text", "blob"],
        ["cli-text", "echo"],
        ["cli-text", "resize"],
    ]
    cut = lines[6].split()[1]
    assert cut.endswith("…")
    assert LONG_KIND.startswith(cut[:-1])
    assert max(len(line) for line in lines) <= TABLE_WIDTH
    only = ok(run_tacoq("kinds", "cli-text", "--relay", system.url))
    rows = [line.split() for line in only.splitlines()[3:]]
    assert rows[0] == [
        "cli-text", "blob", "application/octet-stream", "application/octet-stream", "no", "txt-1"
    ]  # fmt: skip
    assert rows[2] == [
        "cli-text", "resize", "application/json", "application/json", "no", "txt-1"
    ]  # fmt: skip


def test_kinds_json_is_the_relays(system: System, run_tacoq: Any) -> None:
    printed = json.loads(ok(run_tacoq("kinds", "--json", "--relay", system.url)))
    assert printed == api(system, "/kinds")
    one = json.loads(ok(run_tacoq("kinds", "cli-images", "--json", "--relay", system.url)))
    assert one == api(system, "/kinds", worker_kind="cli-images")
    resize = ok(run_tacoq("kinds", "cli-images", "resize", "--json", "--relay", system.url))
    assert json.loads(resize) == api(system, "/kinds/cli-images/resize")


def test_kinds_of_a_task_kind_prints_its_json_schemas(system: System, run_tacoq: Any) -> None:
    out = ok(run_tacoq("kinds", "cli-images", "resize", "--relay", system.url))
    assert out.startswith('{\n  "input": {\n')  # pretty
    assert json.loads(out) == {
        "input": SizeIn.model_json_schema(),
        "output": SizeOut.model_json_schema(),
    }
    blob = json.loads(ok(run_tacoq("kinds", "cli-images", "blob", "--relay", system.url)))
    assert blob == {
        "input": {"contentMediaType": "application/octet-stream"},
        "output": {"contentMediaType": "application/octet-stream"},
    }
    echo = json.loads(ok(run_tacoq("kinds", "cli-text", "echo", "--relay", system.url)))
    assert echo == {"input": {"type": "string"}, "output": {"type": "string"}}


@pytest.mark.parametrize(
    ("words", "needle"),
    [
        (
            ("kinds", "cli-images", "nope"),
            "no live worker of 'cli-images' announced task kind 'nope'",
        ),
        (("kinds", "nobody", "resize"), "no live worker of 'nobody' announced task kind 'resize'"),
        (("kinds", "nobody"), "no live worker of 'nobody' announced any task kind"),
        (("kinds", "nobody", "--json"), "no live worker of 'nobody' announced any task kind"),
    ],
)
def test_an_unknown_kind_exits_1(
    system: System,
    run_tacoq: Any,
    expect_one_line_error: Callable[..., str],
    words: tuple[str, ...],
    needle: str,
) -> None:
    result = run_tacoq(*words, "--relay", system.url)
    expect_one_line_error(result, needle, system.url)
    assert (result.returncode, result.stdout) == (1, "")


def test_a_redeploy_shows_the_conflict_and_the_anyof_of_the_schemas(run_tacoq: Any) -> None:
    apps = make_app("cli-images", "old"), make_app("cli-images", "new", quality=True)
    with running(*apps) as started:
        table = ok(run_tacoq("kinds", "cli-images", "--relay", started.url))
        rows = {line.split()[1]: line for line in table.splitlines()[3:]}
        assert "yes (2)" in rows["resize"]
        assert " no " in rows["echo"]
        result = run_tacoq("kinds", "cli-images", "resize", "--relay", started.url)
        assert result.returncode == 0, result.stderr
        assert result.stderr.startswith(
            "warning: live workers of 'cli-images' announce 2 contracts for 'resize'"
        )
        shown = json.loads(result.stdout)
        assert len(shown["input"]["anyOf"]) == 2
        assert SizeIn.model_json_schema() in shown["input"]["anyOf"]
        assert shown["output"] == SizeOut.model_json_schema()  # both the same: not an anyOf
        api_shape = json.loads(ok(run_tacoq("kinds", "cli-images", "resize", "--json",
                                            "--relay", started.url)))  # fmt: skip
        assert api_shape["conflict"] is True
        assert sorted(c["workers"] for c in api_shape["contracts"]) == [["new"], ["old"]]


# -- errors: the relay, the store, malformed values -----------------------------------------------


@pytest.mark.parametrize(
    "words", [("workers",), ("workers", "--all"), ("kinds",), ("kinds", "images", "resize")]
)
def test_an_unreachable_relay_exits_1(
    run_tacoq: Any, expect_one_line_error: Callable[..., str], words: tuple[str, ...]
) -> None:
    url = unreachable()
    result = run_tacoq(*words, "--relay", url)
    expect_one_line_error(result, f"cannot reach the relay at {url}")
    assert result.returncode == 1


def test_a_store_without_workers_exits_1(
    run_tacoq: Any, expect_one_line_error: Callable[..., str]
) -> None:
    with running(store=lambda ns: NoWorkersStore(f"memory://{ns}", namespace=ns)) as started:
        for words in (("workers",), ("kinds",), ("kinds", "images", "resize")):
            result = run_tacoq(*words, "--relay", started.url)
            expect_one_line_error(result, "knows no workers: its store does not keep them")
            assert result.returncode == 1


def test_the_token_is_sent_and_a_wrong_one_exits_1(
    run_tacoq: Any, expect_one_line_error: Callable[..., str]
) -> None:
    with running(make_app("cli-images", "img-1"), token="s3cret") as started:
        for words in (("workers",), ("kinds",), ("kinds", "cli-images", "resize")):
            refused = run_tacoq(*words, "--relay", started.url, "--token", "wrong")
            expect_one_line_error(refused, "answered 401")
            assert refused.returncode == 1
            ok(run_tacoq(*words, "--relay", started.url, "--token", "s3cret"))
            ok(run_tacoq(*words, "--relay", started.url, env={"TACOQ_RELAY_TOKEN": "s3cret"}))


MALFORMED = [
    (("workers", "--worker-kind", ""), ("--worker-kind must not be empty",)),
    (("workers", "--worker-kind", "k" * 300), ("--worker-kind is 300 characters long", "255")),
    (("workers", "--worker-kind", "a\x01b"), ("--worker-kind must not hold control",)),
    (("workers", "--worker-kind"), ("--worker-kind",)),
    (("workers", "--all=yes"), ("--all",)),
    (("workers", "extra"), ("extra",)),
    (("kinds", ""), ("WORKER_KIND must not be empty",)),
    (("kinds", "k" * 300), ("WORKER_KIND is 300 characters long",)),
    (("kinds", "images", ""), ("TASK_KIND must not be empty",)),
    (("kinds", "images", "t" * 300), ("TASK_KIND is 300 characters long",)),
    (("kinds", "images", "a\x1bb"), ("TASK_KIND must not hold control",)),
    (("kinds", "a", "b", "c"), ("unexpected extra argument", "(c)")),
    (("kinds", "--all"), ("--all",)),
]


@pytest.mark.parametrize(
    ("args", "needles"), MALFORMED, ids=[str(i) for i in range(len(MALFORMED))]
)
def test_a_malformed_value_is_one_error_line_and_exit_2(
    run_tacoq: Any,
    expect_one_line_error: Callable[..., str],
    args: tuple[str, ...],
    needles: tuple[str, ...],
) -> None:
    result = run_tacoq(args[0], "--relay", unreachable(), *args[1:])
    line = expect_one_line_error(result, *needles)
    assert result.returncode == 2, line
    assert len(line) < 400, line


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["workers", "--worker-kind", "a\x00b"], "--worker-kind must not hold control"),
        (["kinds", "\x00"], "WORKER_KIND must not hold control"),
        (["kinds", "images", "re\x00size"], "TASK_KIND must not hold control"),
    ],
)
def test_nul_is_refused_before_any_request(
    capsys: pytest.CaptureFixture[str], args: list[str], needle: str
) -> None:
    # A process's arguments cannot hold NUL, so this calls the CLI's entry point in-process.
    code = run([*args, "--relay", unreachable()])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.count("\n") == 1, err
    assert err.startswith("error: "), err
    assert needle in err, err
