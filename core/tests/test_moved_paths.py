"""The import paths of before the core was laid out by role keep working for one release: the
same module at its new place, with a DeprecationWarning naming it."""

from __future__ import annotations

import importlib
import sys

import pytest

from tacoq._moved import MOVED


@pytest.mark.parametrize("old", sorted(MOVED))
def test_an_old_path_is_the_module_at_its_new_place(old: str) -> None:
    sys.modules.pop(old, None)
    with pytest.warns(DeprecationWarning, match=f"{old} is deprecated: import {MOVED[old]}"):
        module = importlib.import_module(old)
    assert module is importlib.import_module(MOVED[old])


def test_from_imports_of_old_paths_work() -> None:
    sys.modules.pop("tacoq.models", None)
    with pytest.warns(DeprecationWarning, match="tacoq.models is deprecated"):
        from tacoq.models import Task
    from tacoq.model.task import Task as NewTask

    assert Task is NewTask


@pytest.mark.parametrize(
    ("old", "names"),
    [
        ("tacoq.serializers", ["Serializer", "Codec", "SerializerRegistry", "JsonSerializer",
                               "DEFAULT_MAX_PAYLOAD_BYTES", "default_registry"]),
        ("tacoq.runner", ["WorkerRunRequest", "WorkerRunner", "BuiltinRunner"]),
    ],
)  # fmt: skip
def test_a_split_module_keeps_its_names(old: str, names: list[str]) -> None:
    sys.modules.pop(old, None)
    with pytest.warns(DeprecationWarning, match="deprecated"):
        module = importlib.import_module(old)
    for name in names:
        assert hasattr(module, name), name


def test_the_public_api_did_not_move() -> None:
    import tacoq

    for name in tacoq.__all__:
        assert getattr(tacoq, name) is not None
    from tacoq.relay.engine import RelayEngine
    from tacoq.worker import TaskDef, WorkerApp

    assert tacoq.RelayEngine is RelayEngine
    assert (tacoq.WorkerApp, tacoq.TaskDef) == (WorkerApp, TaskDef)
