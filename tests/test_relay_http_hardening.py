"""The relay's HTTP API against malformed input, on real RabbitMQ and PostgreSQL (issue 16).

Each test talks HTTP to a :class:`~tacoq.relay.service.RelayService` serving on a thread of its
own (``tacoq.testing.relay.RelayThread``) over the real services, because what went wrong is
what the real ones do: Postgres refuses NUL in text (a ``DataError``), RabbitMQ refuses a content
type over 255 bytes. One relay serves a whole module; every test uses ids and kinds of its own.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tacoq.model.task import ErrorInfo, Payload, Phase, TaskEvent, utcnow
from tacoq.testing import fresh_namespace
from tacoq.testing.relay import RelayThread

TOKEN = "hardening-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def relay(
    amqp_url: str, postgres_url: str, forget_namespace: Callable[[str], None]
) -> Iterator[RelayThread]:
    """A relay on RabbitMQ and Postgres without a token."""
    namespace = fresh_namespace("harden")
    try:
        with RelayThread(amqp_url, postgres_url, namespace=namespace) as running:
            yield running
    finally:
        forget_namespace(namespace)


@pytest.fixture(scope="module")
def locked(
    amqp_url: str, postgres_url: str, forget_namespace: Callable[[str], None]
) -> Iterator[RelayThread]:
    """A relay on RabbitMQ and Postgres with a token and a list of worker kinds."""
    namespace = fresh_namespace("harden-tok")
    options: dict[str, Any] = {"token": TOKEN, "worker_kinds": ["images", "mail"]}
    try:
        with RelayThread(amqp_url, postgres_url, namespace=namespace, **options) as running:
            yield running
    finally:
        forget_namespace(namespace)


@pytest.fixture
def http(relay: RelayThread) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=relay.url, timeout=30) as client:
        yield client


def body(**fields: Any) -> dict[str, Any]:
    """A valid POST /tasks body (a fresh id), with ``fields`` replaced."""
    values: dict[str, Any] = {
        "task_kind": "resize",
        "worker_kind": "images",
        "input": {"w": 1},
        "id": str(uuid.uuid4()),
    }
    values.update(fields)
    return values


def post_raw(http: httpx.Client, content: bytes) -> httpx.Response:
    return http.post("/tasks", content=content, headers={"Content-Type": "application/json"})


def assert_422(response: httpx.Response, *needles: str) -> str:
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["type"] == "validation_error", error
    for needle in needles:
        assert needle in error["message"], error["message"]
    return str(error["message"])


def nested(depth: int) -> bytes:
    """JSON text of ``depth`` nested arrays around 1."""
    return b"[" * depth + b"1" + b"]" * depth


def completed(task_id: uuid.UUID, **fields: Any) -> TaskEvent:
    """A COMPLETED event of task ``task_id`` as a worker (or an older client) could send it."""
    now = utcnow()
    values: dict[str, Any] = {
        "id": task_id, "attempt": 1, "phase": Phase.COMPLETED, "task_kind": "render",
        "worker_kind": "rows", "executed_by": "w1", "started_at": now, "completed_at": now,
        "ttl": 3600,
    }  # fmt: skip
    values.update(fields)
    return TaskEvent(**values)


def store_row(relay: RelayThread, event: TaskEvent) -> None:
    """Write a row straight into the relay's store (as a relay before the fix would have)."""
    relay.call(relay.service.store.apply_batch([event]))


# -- finding 1: NUL ------------------------------------------------------------------------------


@pytest.mark.parametrize("field", ["task_kind", "worker_kind"])
def test_nul_in_a_kind_is_422_naming_the_field(http: httpx.Client, field: str) -> None:
    response = http.post("/tasks", json=body(**{field: "re\x00size"}))
    assert_422(response, field, "NUL")


def test_nul_in_the_content_type_is_422_naming_the_field(http: httpx.Client) -> None:
    fields = {"input": None, "input_base64": "aGk=", "content_type": "text/pl\x00ain"}
    payload = body(**fields)
    del payload["input"]
    assert_422(http.post("/tasks", json=payload), "content_type")


@pytest.mark.parametrize("name", ["task_kind", "worker_kind"])
def test_nul_in_a_listing_filter_is_422_naming_it(http: httpx.Client, name: str) -> None:
    assert_422(http.get("/tasks", params={name: "a\x00b"}), name, "NUL")


# -- finding 2: depth, and rows that could not be shown -------------------------------------------


@pytest.mark.parametrize("depth", [129, 255, 300, 990])
def test_input_nested_deeper_than_the_limit_is_422(http: httpx.Client, depth: int) -> None:
    text = b'{"task_kind":"resize","worker_kind":"images","input":' + nested(depth) + b"}"
    assert_422(post_raw(http, text), "128")


def test_input_at_the_depth_limit_is_published_and_shown(http: httpx.Client) -> None:
    text = b'{"task_kind":"resize","worker_kind":"images","input":' + nested(128) + b"}"
    created = post_raw(http, text)
    assert created.status_code == 201, created.text
    shown = http.get(f"/tasks/{created.json()['id']}")
    assert shown.status_code == 200, shown.text
    assert shown.json()["input"]["encoding"] == "json"


JSON = "application/json"
STORED_OUTPUTS = [
    pytest.param(Payload(JSON, nested(300)), "text", nested(300).decode(), id="deep-300"),
    pytest.param(Payload(JSON, nested(129)), "text", nested(129).decode(), id="deep-129"),
    pytest.param(Payload(JSON, b"[NaN]"), "text", "[NaN]", id="nan"),
    pytest.param(Payload(JSON, b"1e999"), "text", "1e999", id="huge-float"),
    pytest.param(Payload(JSON, b'"\\ud800"'), "text", '"\\ud800"', id="lone-surrogate-escape"),
    pytest.param(Payload(JSON, b'"\xff"'), "base64", base64.b64encode(b'"\xff"').decode(),
                 id="bad-utf8-json"),
    pytest.param(Payload("text/plain", b"\xc3("), "base64", base64.b64encode(b"\xc3(").decode(),
                 id="bad-utf8-text"),
]  # fmt: skip


@pytest.mark.parametrize(("payload", "encoding", "data"), STORED_OUTPUTS)
def test_a_stored_output_json_cannot_carry_is_shown_raw(
    relay: RelayThread, http: httpx.Client, payload: Payload, encoding: str, data: str
) -> None:
    task_id = uuid.uuid4()
    kind = f"render-{uuid.uuid4().hex[:8]}"
    store_row(relay, completed(task_id, task_kind=kind, output=payload))
    shown = http.get(f"/tasks/{task_id}")
    assert shown.status_code == 200, shown.text
    assert shown.json()["output"] == {
        "content_type": payload.content_type,
        "encoding": encoding,
        "data": data,
    }
    page = http.get("/tasks", params={"task_kind": kind})
    assert page.status_code == 200, page.text
    assert [t["id"] for t in page.json()["tasks"]] == [str(task_id)]


def test_a_stored_error_with_a_lone_surrogate_is_shown_escaped(
    relay: RelayThread, http: httpx.Client
) -> None:
    task_id = uuid.uuid4()
    kind = f"render-{uuid.uuid4().hex[:8]}"
    error = ErrorInfo("ValueError", "bad \ud800 value", "Traceback: \udcff")
    store_row(relay, completed(task_id, task_kind=kind, is_error=True, error=error))
    shown = http.get(f"/tasks/{task_id}")
    assert shown.status_code == 200, shown.text
    assert shown.json()["error"] == {
        "type": "ValueError",
        "message": "bad \\ud800 value",
        "traceback": "Traceback: \\udcff",
    }
    page = http.get("/tasks", params={"task_kind": kind})
    assert page.status_code == 200, page.text


def test_an_error_message_of_invalid_utf8_written_by_another_client_is_shown(
    relay: RelayThread, http: httpx.Client, postgres_url: str
) -> None:
    import psycopg
    from psycopg import sql

    task_id = uuid.uuid4()
    store_row(relay, completed(task_id, is_error=True, error=ErrorInfo("E", "placeholder")))
    schema = relay.service.store.schema  # type: ignore[attr-defined]
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("UPDATE {}.tasks SET error_message = %s WHERE id = %s").format(
                sql.Identifier(schema)
            ),
            [b"not \xff utf-8", task_id],
        )
    shown = http.get(f"/tasks/{task_id}")
    assert shown.status_code == 200, shown.text
    assert shown.json()["error"]["message"] == "not \\udcff utf-8"


# -- finding 3: content type over 255 bytes -------------------------------------------------------


def bytes_body(content_type: str) -> dict[str, Any]:
    payload = body(input_base64="aGk=", content_type=content_type)
    del payload["input"]
    return payload


@pytest.mark.parametrize(
    "content_type",
    [
        pytest.param("a/" + "b" * 254, id="256-ascii"),
        pytest.param("text/" + "é" * 200, id="400-bytes-utf8"),
        pytest.param("text/plain\n", id="newline"),
        pytest.param("\x7f", id="del"),
    ],
)
def test_a_content_type_amqp_cannot_carry_is_422(
    relay: RelayThread, http: httpx.Client, content_type: str
) -> None:
    failures = relay.service.publish_failures
    assert_422(http.post("/tasks", json=bytes_body(content_type)), "content_type")
    assert relay.service.publish_failures == failures


def test_a_content_type_of_255_ascii_characters_is_accepted(http: httpx.Client) -> None:
    content_type = "a/" + "b" * 253
    created = http.post("/tasks", json=bytes_body(content_type))
    assert created.status_code == 201, created.text
    shown = http.get(f"/tasks/{created.json()['id']}").json()
    assert shown["input"]["content_type"] == content_type


# -- finding 4: cursors ---------------------------------------------------------------------------


def cursor_of(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "created",
    ["99999999999999999999", "-99999999999999999999", "253402300800000000"],
    ids=["huge", "huge-negative", "just-past-9999"],
)
def test_a_cursor_with_an_out_of_range_time_is_422(http: httpx.Client, created: str) -> None:
    cursor = cursor_of(f"{created}:{uuid.uuid4().hex}")
    assert_422(http.get("/tasks", params={"cursor": cursor}), "cursor")


def test_a_cursor_at_the_ends_of_time_is_accepted(http: httpx.Client) -> None:
    for created in ("253402300799999999", "-62135596800000000"):
        cursor = cursor_of(f"{created}:{uuid.uuid4().hex}")
        assert http.get("/tasks", params={"cursor": cursor}).status_code == 200


# -- finding 5: strict JSON, documented statuses --------------------------------------------------


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        (b'{"task_kind":"a","worker_kind":"b","input":"\xff"}', "UTF-8"),
        (b'{"task_kind":"a","worker_kind":"b","input":' + nested(5000) + b"}", "128"),
        (b'{"task_kind":"a","worker_kind":"b","input":NaN}', "NaN"),
        (b'{"task_kind":"a","worker_kind":"b","input":[Infinity]}', "Infinity"),
        (b'{"task_kind":"a","worker_kind":"b","input":{"x":-Infinity}}', "Infinity"),
        (b'{"task_kind":"a","worker_kind":"b","input":1e999}', "1e999"),
        (b'{"task_kind":"a","worker_kind":"b","input":[-1E+400]}', "1E+400"),
        (b'{"task_kind":"a","worker_kind":"b","input":"\\ud800"}', "surrogate"),
    ],
    ids=["bad-utf8", "too-deep", "nan", "inf", "minus-inf", "1e999", "-1e400", "lone-surrogate"],
)  # fmt: skip
def test_a_body_that_is_not_strict_json_is_422(
    relay: RelayThread, http: httpx.Client, text: bytes, needle: str
) -> None:
    published = relay.service.published
    assert_422(post_raw(http, text), "body", needle)
    assert relay.service.published == published


@pytest.mark.parametrize("value", ["5.0", "1e2"])
def test_an_integral_number_is_an_integer_as_in_json_schema(http: httpx.Client, value: str) -> None:
    text = b'{"task_kind":"a","worker_kind":"images","priority":%s,"ttl":%s}' % (
        value.encode(),
        value.encode(),
    )
    created = post_raw(http, text)
    assert created.status_code == 201, created.text
    assert http.get(f"/tasks/{created.json()['id']}").json()["priority"] == int(float(value))


@pytest.mark.parametrize("value", ["1.5", '"5"', "true", "null"])
def test_a_priority_that_is_not_an_integer_is_422(http: httpx.Client, value: str) -> None:
    text = b'{"task_kind":"a","worker_kind":"images","priority":%s}' % value.encode()
    assert_422(post_raw(http, text), "priority")


# Statuses each operation can answer besides those of every route (400, 408, 413).
EXPECTED_STATUSES = {
    ("get", "/health/live"): {"200"},
    ("get", "/health/ready"): {"200", "503"},
    ("get", "/health"): {"200"},
    ("get", "/tasks/{task_id}"): {"200", "404", "422", "503"},
    ("get", "/tasks"): {"200", "422", "503"},
    ("post", "/tasks"): {"200", "201", "409", "413", "422", "503"},
    ("get", "/dead-letters"): {"200", "422", "503"},
    ("post", "/dead-letters/purge"): {"200", "422", "503"},
    ("get", "/dead-letters/{letter_id}"): {"200", "404", "422", "503"},
    ("delete", "/dead-letters/{letter_id}"): {"200", "404", "422", "503"},
    ("post", "/dead-letters/{letter_id}/requeue"): {"200", "404", "409", "422", "503"},
    ("post", "/dead-letters/requeue"): {"200", "422", "503"},
    ("get", "/workers"): {"200", "422", "501", "503"},
    ("get", "/kinds"): {"200", "422", "501", "503"},
    ("get", "/kinds/{worker_kind}/{task_kind}"): {"200", "404", "422", "501", "503"},
}
EVERY_ROUTE = {"400", "408", "413"}


def test_the_openapi_document_lists_every_status_of_every_operation(
    http: httpx.Client, locked: RelayThread
) -> None:
    for client, secured in ((http, False), (httpx.Client(base_url=locked.url, headers=AUTH), True)):
        spec = client.get("/openapi.json").json()
        seen = {(m, p) for p, item in spec["paths"].items() for m in item}
        assert seen == set(EXPECTED_STATUSES), seen
        for (method, path), statuses in EXPECTED_STATUSES.items():
            operation = spec["paths"][path][method]
            public = path in ("/health/live", "/health/ready")
            wanted = statuses | EVERY_ROUTE | ({"401"} if secured and not public else set())
            assert set(operation["responses"]) == wanted, (method, path)
            for status, answer in operation["responses"].items():
                schema = answer["content"]["application/json"]["schema"]
                if not status.startswith("2") and path != "/health/ready":
                    assert schema == {"$ref": "#/components/schemas/ErrorBody"}, (path, status)


def test_docs_list_every_status_of_every_operation(http: httpx.Client) -> None:
    from pathlib import Path

    docs = (Path(__file__).parents[1] / "docs" / "http-api.md").read_text()
    sections = docs.split("\n### ")
    for (method, path), statuses in EXPECTED_STATUSES.items():
        heading = f"`{method.upper()} {path}"
        found = [s for s in sections if s.startswith((f"{heading}`", f"{heading}?"))]
        assert found, f"docs/http-api.md has no section {heading}`"
        for status in statuses:
            assert f"`{status}" in found[0] or f"| {status} |" in found[0], (heading, status)
    conventions = docs.split("## Conventions", 1)[1].split("\n## ", 1)[0]
    for status in (*EVERY_ROUTE, "401", "404", "405", "409", "422", "500", "503"):
        assert f"| {status} |" in conventions, status


# -- finding 6: the scheme is case-insensitive ----------------------------------------------------


@pytest.mark.parametrize("scheme", ["bearer", "BEARER", "BeArEr"])
def test_the_bearer_scheme_is_case_insensitive(locked: RelayThread, scheme: str) -> None:
    headers = {"Authorization": f"{scheme} {TOKEN}"}
    response = httpx.get(f"{locked.url}/tasks/{uuid.uuid4()}", headers=headers)
    assert response.status_code == 404, response.text


@pytest.mark.parametrize(
    "value",
    [
        f"Basic {TOKEN}",
        f"Bearer{TOKEN}",
        f"Bearer {TOKEN}x",
        f"{TOKEN}",
        "Bearer",
        f"Bearer {TOKEN} x",
    ],
)
def test_other_authorizations_are_401(locked: RelayThread, value: str) -> None:
    response = httpx.get(f"{locked.url}/tasks/{uuid.uuid4()}", headers={"Authorization": value})
    assert response.status_code == 401
    assert response.json()["error"]["type"] == "unauthorized"


# -- finding 7: health ----------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/health/live", "/health/ready"])
def test_probes_are_open_and_say_nothing_more(locked: RelayThread, path: str) -> None:
    response = httpx.get(f"{locked.url}{path}")
    assert response.status_code == 200, response.text
    assert response.json() == {"status": "ok"}


def test_the_detailed_health_needs_the_token(locked: RelayThread, postgres_url: str) -> None:
    anonymous = httpx.get(f"{locked.url}/health")
    assert anonymous.status_code == 401
    assert "postgres" not in anonymous.text
    detailed = httpx.get(f"{locked.url}/health", headers=AUTH)
    assert detailed.status_code == 200
    assert detailed.json()["store"]["ok"] is True
    assert "published" in detailed.json()["stats"]


def test_bearer_security_is_declared_only_with_a_token(
    http: httpx.Client, locked: RelayThread
) -> None:
    open_spec = http.get("/openapi.json").json()
    assert "securitySchemes" not in open_spec.get("components", {})
    assert all("security" not in op for item in open_spec["paths"].values() for op in item.values())
    spec = httpx.get(f"{locked.url}/openapi.json", headers=AUTH).json()
    assert "HTTPBearer" in spec["components"]["securitySchemes"]
    for path, item in spec["paths"].items():
        for operation in item.values():
            public = path in ("/health/live", "/health/ready")
            assert ("security" in operation) is not public, path


# -- finding 10: worker kinds ---------------------------------------------------------------------


def test_a_relay_with_worker_kinds_refuses_other_kinds(locked: RelayThread, amqp_url: str) -> None:
    with httpx.Client(base_url=locked.url, headers=AUTH) as client:
        allowed = client.post("/tasks", json=body(worker_kind="mail"))
        assert allowed.status_code == 201, allowed.text
        kind = f"stranger-{uuid.uuid4().hex[:8]}"
        refused = client.post("/tasks", json=body(worker_kind=kind))
        message = assert_422(refused, "worker_kind", kind, "images", "mail")
        assert "--worker-kinds" in message or "worker kinds" in message
        spec = client.get("/openapi.json").json()
    schema = spec["components"]["schemas"]["PublishIn"]["properties"]["worker_kind"]
    assert schema["enum"] == ["images", "mail"]
    # no queue was declared for the refused kind
    import pika

    from tacoq_rabbit.topology import Topology

    queue = Topology(locked.service.store.namespace).worker_queue(kind)
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        with pytest.raises(pika.exceptions.ChannelClosedByBroker):
            connection.channel().queue_declare(queue, passive=True)
    finally:
        connection.close()


# -- every malformed variant a field can take ------------------------------------------------------


MALFORMED_BODIES = {
    "not-an-object": ([1, 2], "body"),
    "string-body": ("resize", "body"),
    "task-kind-number": (body(task_kind=5), "task_kind"),
    "task-kind-empty": (body(task_kind=""), "task_kind"),
    "task-kind-256": (body(task_kind="k" * 256), "task_kind"),
    "task-kind-null": (body(task_kind=None), "task_kind"),
    "worker-kind-list": (body(worker_kind=["a"]), "worker_kind"),
    "priority-negative": (body(priority=-1), "priority"),
    "priority-huge": (body(priority=10**30), "priority"),
    "ttl-huge": (body(ttl=2**31), "ttl"),
    "ttl-float": (body(ttl=1.5), "ttl"),
    "id-number": (body(id=5), "id"),
    "base64-with-newline": ({**bytes_body("a/b"), "input_base64": "aGk=\n"}, "input_base64"),
    "base64-number": ({**bytes_body("a/b"), "input_base64": 5}, "input_base64"),
    "content-type-empty": (bytes_body(""), "content_type"),
    "content-type-alone": (body(content_type="a/b"), "content_type"),
    "unknown-field": (body(colour="red"), "colour"),
    "id-not-canonical": (body(id=uuid.uuid4().hex), "id"),
    "id-braces": (body(id="{" + str(uuid.uuid4()) + "}"), "id"),
    "id-urn": (body(id=f"urn:uuid:{uuid.uuid4()}"), "id"),
    "kind-with-nul-only": (body(worker_kind="\x00"), "worker_kind"),
    "content-type-unicode": (bytes_body("image/pñg"), "content_type"),
    "content-type-tab": (bytes_body("image/png;\tq=1"), "content_type"),
    "base64-no-padding": ({**bytes_body("a/b"), "input_base64": "aGk"}, "input_base64"),
    "base64-urlsafe": ({**bytes_body("a/b"), "input_base64": "a-_="}, "input_base64"),
    "content-type-null-with-input": (body(content_type=None, input_base64="aGk="), "input"),
}


@pytest.mark.parametrize("case", list(MALFORMED_BODIES))
def test_malformed_publish_bodies_are_422_naming_the_field(http: httpx.Client, case: str) -> None:
    payload, field = MALFORMED_BODIES[case]
    response = http.post("/tasks", content=json.dumps(payload).encode(),
                         headers={"Content-Type": "application/json"})  # fmt: skip
    assert_422(response, field)


@pytest.mark.parametrize(
    "params",
    [
        {"limit": "0"}, {"limit": "501"}, {"limit": "1.5"}, {"limit": "9" * 30},
        {"status": "done"}, {"cursor": ""}, {"cursor": "%%%"}, {"cursor": "9" * 5000},
        {"task_kind": "k" * 256}, {"worker_kind": ""}, {"cursor": "a" * 129}, {"limit": "1e1"},
    ],
)  # fmt: skip
def test_malformed_listing_parameters_are_422(http: httpx.Client, params: dict[str, str]) -> None:
    assert_422(http.get("/tasks", params=params), next(iter(params)))


@pytest.mark.parametrize("wait", ["-1", "nan", "inf", "-inf", "1e999", "abc", ""])
def test_malformed_waits_are_422(http: httpx.Client, wait: str) -> None:
    assert_422(http.get(f"/tasks/{uuid.uuid4()}", params={"wait": wait}), "wait")


@pytest.mark.parametrize(
    "task_id",
    ["not-a-uuid", "%00", "1" * 300, uuid.uuid4().hex, f"urn:uuid:{uuid.uuid4()}",
     "{" + str(uuid.uuid4()) + "}"],
)  # fmt: skip
def test_malformed_task_ids_are_422(http: httpx.Client, task_id: str) -> None:
    assert_422(http.get(f"/tasks/{task_id}"), "task_id")
