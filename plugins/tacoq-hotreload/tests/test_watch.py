"""What the reloader watches, what it ignores, and how it checks syntax — on real files."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tacoq.contracts.runner import WorkerRunRequest
from tacoq_hotreload import hooks
from tacoq_hotreload.runner import ReloadRunner, child_command
from tacoq_hotreload.watch import (
    check_syntax,
    find_module_dir,
    is_relevant,
    is_site_packages,
    watch_roots,
)

EXPLODES_ON_IMPORT = "raise SystemExit('imported!')\n"


def test_the_hook_answers_reload_only() -> None:
    assert hooks.tacoq_worker_runner(WorkerRunRequest("app:w")) is None
    assert isinstance(
        hooks.tacoq_worker_runner(WorkerRunRequest("app:w", reload=True)), ReloadRunner
    )


def test_a_top_level_module_is_found_without_importing_it(tmp_path: Path) -> None:
    (tmp_path / "bomb_app_xyz.py").write_text(EXPLODES_ON_IMPORT)
    assert find_module_dir("bomb_app_xyz", [str(tmp_path)]) == tmp_path.resolve()
    assert "bomb_app_xyz" not in sys.modules


def test_a_module_in_a_package_watches_the_top_package_without_importing_it(
    tmp_path: Path,
) -> None:
    package = tmp_path / "bomb_pkg_xyz"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text(EXPLODES_ON_IMPORT)
    (package / "sub" / "__init__.py").write_text(EXPLODES_ON_IMPORT)
    (package / "sub" / "tasks.py").write_text(EXPLODES_ON_IMPORT)
    assert find_module_dir("bomb_pkg_xyz.sub.tasks", [str(tmp_path)]) == package.resolve()
    assert not any(name.startswith("bomb_pkg_xyz") for name in sys.modules)


def test_roots_are_the_module_dir_plus_reload_dirs_without_overlap(tmp_path: Path) -> None:
    (tmp_path / "src" / "myapp").mkdir(parents=True)
    (tmp_path / "src" / "myapp" / "__init__.py").write_text("")
    (tmp_path / "conf").mkdir()
    roots = watch_roots("myapp.tasks:w", ["../conf", "myapp", "missing"], tmp_path / "src")
    assert roots == [(tmp_path / "conf").resolve(), (tmp_path / "src" / "myapp").resolve()]


def test_an_unknown_module_falls_back_to_the_current_directory(tmp_path: Path) -> None:
    assert watch_roots("no_such_module_xyz:w", [], tmp_path) == [tmp_path.resolve()]


def test_an_installed_module_is_never_watched(tmp_path: Path) -> None:
    import pydantic

    installed = Path(pydantic.__file__).parent
    assert is_site_packages(installed)
    assert watch_roots("pydantic:BaseModel", [str(installed)], tmp_path) == [tmp_path.resolve()]


@pytest.mark.parametrize(
    ("path", "relevant"),
    [
        ("app.py", True),
        ("pkg/settings.toml", True),
        ("pkg/__pycache__/app.cpython-311.pyc", False),
        ("app.pyc", False),
        (".venv/lib/python3.11/site-packages/x.py", False),
        ("venv/lib/x.py", False),
        (".git/HEAD", False),
        (".mypy_cache/3.11/app.json", False),
        (".pytest_cache/v/cache/lastfailed", False),
        (".nox/tests/bin/x.py", False),
        (".#app.py", False),
        ("app.py~", False),
        ("notes.txt", False),
    ],
)
def test_changes_in_caches_and_virtual_environments_are_ignored(
    tmp_path: Path, path: str, relevant: bool
) -> None:
    assert is_relevant(str(tmp_path / path), [tmp_path]) is relevant


def test_a_project_living_under_a_venv_named_directory_still_reloads(tmp_path: Path) -> None:
    root = tmp_path / "venv" / "project"
    assert is_relevant(str(root / "app.py"), [root])


def test_syntax_errors_are_reported_in_one_line_with_file_and_line(tmp_path: Path) -> None:
    good = tmp_path / "good.py"
    good.write_text("x = 1\n")
    bad = tmp_path / "bad.py"
    bad.write_text("def f(:\n    pass\n")
    assert check_syntax([str(good), str(tmp_path / "deleted.py"), str(tmp_path / "a.toml")]) is None
    error = check_syntax([str(good), str(bad)])
    assert error is not None
    assert f"{bad}:1: SyntaxError" in error
    assert "\n" not in error


def test_the_child_is_the_same_command_without_reload() -> None:
    request = WorkerRunRequest(
        "app:w",
        broker_url="amqp://h/",
        concurrency=3,
        grace=2.5,
        reload=True,
        reload_dirs=("x",),
    )
    assert child_command(request) == [
        sys.executable, "-m", "tacoq_cli", "worker", "app:w",
        "--broker", "amqp://h/", "--concurrency", "3", "--grace", "2.5",
    ]  # fmt: skip


def test_the_child_logs_as_the_watcher_was_told() -> None:
    request = WorkerRunRequest("app:w", reload=True, log_level="debug", log_format="json")
    assert child_command(request) == [
        sys.executable, "-m", "tacoq_cli", "worker", "app:w",
        "--log-level", "debug", "--log-format", "json",
    ]  # fmt: skip
