"""The submission kernel: a task, its input and its options become the assignment to send.

Every publishing surface is a thin adapter over :func:`submission`: :class:`~tacoq.Publisher`
and :class:`~tacoq.SyncPublisher`, the RabbitMQ plugin's ``SyncRabbitPublisher`` (then pure
AMQP transport), the relay's ``POST /tasks``, :class:`~tacoq.RelayClient` (which validates the
options with :class:`~tacoq.model.options.TaskOptions` before sending them) and ``tacoq
publish``. A new task option is declared in :mod:`tacoq.model.options` and reaches them all
(docs/architecture.md, "Where to add what").

A typed publish (a task definition, such as a ``TaskDef``) serializes the input with the
handler's own codec, so a mistake fails in the caller; a publish by name serializes it with
the plugin serializers (the worker validates it), or sends a :class:`~tacoq.model.task.Payload`
as it is. Either way a payload over ``max_payload_bytes``, or JSON nested deeper than
:data:`~tacoq.model.strict_json.MAX_JSON_DEPTH`, is refused before anything is sent.
"""

from __future__ import annotations

import dataclasses
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from tacoq.contracts.serializer import Codec
from tacoq.errors import ConfigError, SerializationError
from tacoq.model.options import TaskOptions
from tacoq.model.task import DEFAULT_TTL_SECONDS, Payload, Phase, TaskEvent, utcnow
from tacoq.model.wire import kind_problem, quoted
from tacoq.serialization import (
    DEFAULT_MAX_PAYLOAD_BYTES,
    SerializerRegistry,
    check_json_payload,
    check_payload_size,
)

__all__ = ["Submission", "TypedTask", "serialize_input", "submission"]


class TypedTask(Protocol):
    """What a typed publish needs of a task definition (:class:`~tacoq.worker.TaskDef` is one)."""

    @property
    def task_kind(self) -> str:
        """The task kind it runs as."""
        ...

    @property
    def worker_kind(self) -> str:
        """The kind of worker that runs it (the default of the ``worker_kind`` option)."""
        ...

    @property
    def input_codec(self) -> Codec:
        """The codec of its input type."""
        ...


@dataclass(frozen=True, slots=True)
class Submission:
    """What to send: the ``ASSIGNED`` event of attempt 1, and how long to hold it back."""

    event: TaskEvent
    #: Seconds to hold the task back (``None``: send it at once).
    delay: float | None

    def at_once(self) -> TaskEvent:
        """The event, for a caller that sends it at once; a delay is refused (ConfigError)."""
        if self.delay is not None:
            raise ConfigError(
                "this builds an event to send at once; countdown and eta need the submission "
                "(submission() and publish_event(event, delay=...))"
            )
        return self.event


#: Options that the assignment carries as they are (``TaskEvent`` has a field of that name);
#: ``worker_kind`` and ``id`` are set apart below, the delays are the submission's.
_CARRIED = tuple(
    name
    for name in (field.name for field in dataclasses.fields(TaskOptions))
    if name in {field.name for field in dataclasses.fields(TaskEvent)}
    and name not in {"worker_kind", "id"}
)


def serialize_input(
    task: TypedTask | str, input: Any, serializers: SerializerRegistry | None
) -> tuple[str, str | None, Payload]:
    """``(task_kind, the task's worker kind or None, payload)`` of a publish's input.

    ``serializers`` serialize an input published by name (``None``: only a ``Payload`` may be
    published by name). Raises :class:`~tacoq.errors.SerializationError` naming the task.
    """
    if isinstance(task, str):
        if (problem := kind_problem(task)) is not None:
            raise ConfigError(f"task_kind {problem}: {quoted(task)}")
        what = f"input of task {task!r}"
        if isinstance(input, Payload):
            return task, None, input
        if serializers is None:
            raise ConfigError(f"{what}: only a Payload can be published by name here")
        return task, None, serializers.encode(input, what=what)
    try:
        task_kind, worker_kind, codec = task.task_kind, task.worker_kind, task.input_codec
    except AttributeError:
        raise TypeError(
            f"publish() takes a TaskDef or a task kind name, not {type(task).__name__}"
        ) from None
    try:
        return task_kind, worker_kind, Payload(codec.content_type, codec.dump(input))
    except SerializationError as exc:
        raise SerializationError(f"input of task {task_kind!r} is invalid: {exc}") from None


def submission(
    task: TypedTask | str,
    input: Any,
    options: TaskOptions,
    *,
    serializers: SerializerRegistry | None,
    max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
    default_ttl: int = DEFAULT_TTL_SECONDS,
    now: datetime | None = None,
) -> Submission:
    """Build the assignment of one publish: validate, serialize, apply the options.

    ``task`` is a typed task or a task kind name (then ``options.worker_kind`` is required);
    ``now`` is the assignment's ``created_at`` and the time ``eta`` counts from (default: the
    current time). Raises :class:`~tacoq.errors.ConfigError` for a missing or invalid option,
    :class:`~tacoq.errors.SerializationError` (or its ``PayloadTooLarge``) for the input;
    nothing is sent by this function.
    """
    task_kind, own_kind, payload = serialize_input(task, input, serializers)
    worker_kind = options.worker_kind or own_kind
    if worker_kind is None:
        raise ConfigError(f"publishing task {task_kind!r} by name needs worker_kind=...")
    what = f"input of task {task_kind!r}"
    check_payload_size(payload, max_payload_bytes, what=what)
    check_json_payload(payload, what=what)  # a plugin's serializer is held to the limit too
    now = utcnow() if now is None else now
    carried = {name: getattr(options, name) for name in _CARRIED}
    if carried.get("ttl") is None:
        carried["ttl"] = default_ttl
    event = TaskEvent(
        id=options.id or uuid.uuid4(),
        attempt=1,
        phase=Phase.ASSIGNED,
        task_kind=task_kind,
        worker_kind=worker_kind,
        created_at=now,
        input=payload,
        **carried,
    )
    return Submission(event, options.delay(now))
