"""The fields a log record about one task carries: ``log.warning(..., extra=task_fields(...))``.

Every log call of the worker and the relay about one task passes ``extra=task_fields(...)``, so
the record has a ``task_id``, ``task_kind``, ``attempt`` and ``worker`` attribute (those that
are known). ``tacoq --log-format json`` writes them as fields of their own and the text format
appends them; an embedding application's formatter or filter can read them too (with
``getattr``: a record about no task has none of them).
"""

from __future__ import annotations

from uuid import UUID

__all__ = ["TASK_FIELDS", "task_fields"]

#: The attributes :func:`task_fields` may set on a record, in the order formatters show them.
TASK_FIELDS = ("task_id", "task_kind", "attempt", "worker")


def task_fields(
    task_id: UUID | str | None,
    task_kind: str | None = None,
    attempt: int | None = None,
    worker: str | None = None,
) -> dict[str, str | int]:
    """The ``extra`` of a log record about task ``task_id``: its id as text, its kind, the
    attempt and the worker's name, leaving out those not known (``None``)."""
    fields: dict[str, str | int] = {}
    if task_id is not None:
        fields["task_id"] = str(task_id)
    if task_kind is not None:
        fields["task_kind"] = task_kind
    if attempt is not None:
        fields["attempt"] = attempt
    if worker is not None:
        fields["worker"] = worker
    return fields
