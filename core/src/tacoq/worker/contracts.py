"""Task contracts: the JSON Schema of each task kind's input and output, as a worker announces
them (docs/workers.md, "Task contracts").

pydantic makes the schema from the handler's annotations. A JSON payload (a pydantic model,
``dict``, ``list``, numbers, ``Any``...) is described by its schema; ``str`` as
``text/plain`` with the schema ``{"type": "string"}``; ``bytes`` as
``application/octet-stream`` with no schema. A plugin codec may describe its own payloads with
a ``json_schema()`` method; a type pydantic cannot describe gets no schema (``None``), and the
relay then checks nothing about it.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from tacoq.contracts.serializer import Codec
from tacoq.model.task import is_json_type, media_type
from tacoq.model.workers import PayloadContract, TaskContract
from tacoq.serialization import type_adapter

if TYPE_CHECKING:
    from tacoq.worker.app import TaskDef

__all__ = ["payload_contract", "task_contract"]

log = logging.getLogger("tacoq.worker")


def task_contract(taskdef: TaskDef[..., Any]) -> TaskContract:
    """The contract of a task definition (a :class:`~tacoq.worker.TaskDef`)."""
    return TaskContract(
        input=payload_contract(taskdef.input_type, taskdef.input_codec, taskdef.task_kind),
        output=payload_contract(taskdef.output_type, taskdef.output_codec, taskdef.task_kind),
    )


def payload_contract(tp: Any, codec: Codec, task_kind: str = "?") -> PayloadContract:
    """How a payload of type ``tp``, written by ``codec``, is described to other languages."""
    own = getattr(codec, "json_schema", None)
    if callable(own):
        schema = own()
        return PayloadContract(content_type=codec.content_type, json_schema=schema)
    kind = media_type(codec.content_type)
    if kind.startswith("text/"):
        return PayloadContract(content_type=codec.content_type, json_schema={"type": "string"})
    if not is_json_type(codec.content_type):
        return PayloadContract(content_type=codec.content_type, json_schema=None)
    try:
        schema = type_adapter(tp).json_schema()
    except Exception as exc:  # pydantic cannot describe every type it can validate
        log.info("task %s: no JSON Schema for %r (%s); announced without one", task_kind, tp, exc)
        schema = None
    return PayloadContract(content_type=codec.content_type, json_schema=schema)
