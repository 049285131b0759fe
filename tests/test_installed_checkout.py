"""The installed TacoQ distributions are this checkout, never PyPI's unrelated ``tacoq`` 0.1-0.4.

pip records where a distribution came from in ``direct_url.json`` (PEP 610); an install from an
index has none. So each of our distributions must carry one that points at its folder here.
"""

from __future__ import annotations

import json
import tomllib
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path
from urllib.parse import unquote, urlsplit
from urllib.request import url2pathname

import pytest
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
FIRST_OUR_VERSION = Version("0.5.0.dev0")


def local_packages() -> list[tuple[str, Path]]:
    """Return (distribution name, folder) for core, cli and every plugin with a pyproject.toml."""
    folders = [ROOT / "core", ROOT / "cli", *sorted(ROOT.glob("plugins/*/"))]
    packages: list[tuple[str, Path]] = []
    for folder in folders:
        pyproject = folder / "pyproject.toml"
        if pyproject.is_file():
            name = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]["name"]
            packages.append((str(name), folder))
    return packages


def path_of_file_url(url: str) -> Path:
    """Return the local path a ``file://`` URL names."""
    parts = urlsplit(url)
    assert parts.scheme == "file", f"not a local install: {url}"
    return Path(url2pathname(unquote(parts.path))).resolve()


def test_core_and_cli_are_among_the_local_packages() -> None:
    names = {name for name, _ in local_packages()}
    assert {"tacoq", "tacoq-core"} <= names


@pytest.mark.parametrize(
    ("name", "folder"), local_packages(), ids=[name for name, _ in local_packages()]
)
def test_installed_distribution_is_this_checkout(name: str, folder: Path) -> None:
    try:
        dist = distribution(name)
    except PackageNotFoundError:
        pytest.fail(f"{name} is not installed: install it from {folder} (see the README)")
    assert Version(dist.version) >= FIRST_OUR_VERSION, f"{name} {dist.version} is not ours"

    direct_url_text = dist.read_text("direct_url.json")
    assert direct_url_text is not None, f"{name} {dist.version} was installed from an index"
    direct_url = json.loads(direct_url_text)
    assert "dir_info" in direct_url, f"{name} was not installed from a folder: {direct_url}"
    assert path_of_file_url(direct_url["url"]) == folder.resolve()
