"""The wheel: one import name, `fobs`, with every module and data file of the source folders.

The top-level folders (collector/, components/, syslog_agg/, dashboards/) are installed as
`fobs.<folder>` through pyproject's package-dir mapping, and its package list is written out by
hand: a new subpackage or data file missing from it would only show up on a real install, so
these tests build the wheel from a copy of the work tree and install it into a bare directory.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tomllib
import zipfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

import pytest

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
# import name -> source folder, e.g. "fobs.collector" -> "collector"
PACKAGE_DIRS: dict[str, str] = PYPROJECT["tool"]["setuptools"]["package-dir"]
DATA_PATTERNS = ("*.toml", "*.rules.py", "*.dashboard.py")


def _copy_tree(dest: Path) -> None:
    """What the build reads, and nothing else (no .venv, var/, caches, build/ in the repo)."""
    dest.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, dest / name)
    for folder in set(PACKAGE_DIRS.values()):
        shutil.copytree(ROOT / folder, dest / folder,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    work = tmp_path_factory.mktemp("wheel")
    _copy_tree(work / "src")
    # No build isolation: the test extras bring setuptools, so this is offline and ~1 s.
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "--disable-pip-version-check", "-q", "-w", str(work / "dist"), str(work / "src")],
        capture_output=True, text=True, timeout=120)
    assert built.returncode == 0, built.stdout + built.stderr
    (path,) = (work / "dist").glob("fobs-*.whl")
    yield path


def _names(wheel: Path) -> list[PurePosixPath]:
    with zipfile.ZipFile(wheel) as zf:
        record = next(n for n in zf.namelist() if n.endswith(".dist-info/RECORD"))
        rows = zf.read(record).decode().splitlines()
    return [PurePosixPath(row.rsplit(",", 2)[0]) for row in rows if row]


def test_the_wheel_installs_one_import_name(wheel: Path) -> None:
    names = _names(wheel)
    top = {n.parts[0] for n in names if not n.parts[0].endswith(".dist-info")}
    assert top == {"fobs"}, f"top-level names in the wheel: {sorted(top)}"
    with zipfile.ZipFile(wheel) as zf:
        (top_level,) = [n for n in zf.namelist() if n.endswith(".dist-info/top_level.txt")]
        assert zf.read(top_level).decode().split() == ["fobs"]


def test_every_module_and_data_file_of_the_source_folders_is_in_the_wheel(wheel: Path) -> None:
    """Source and wheel match file for file: nothing left out (a subpackage missing from the
    hand-written package list, a sample config), nothing extra (tests, stray files)."""
    expected: set[PurePosixPath] = set()
    for package, folder in PACKAGE_DIRS.items():
        base = PurePosixPath(*package.split("."))
        for path in (ROOT / folder).rglob("*"):
            rel = path.relative_to(ROOT / folder)
            if "__pycache__" in rel.parts or not path.is_file():
                continue
            if path.suffix == ".py" or any(path.match(p) for p in DATA_PATTERNS):
                expected.add(base / PurePosixPath(*rel.parts))
    found = {n for n in _names(wheel) if not n.parts[0].endswith(".dist-info")}
    assert found - expected == set(), "in the wheel but not in the source folders"
    assert expected - found == set(), "in the source folders but not in the wheel"
    # The package data `fobs` reads at run time, by name.
    for data in ("fobs/collector/fobs-collector.toml", "fobs/syslog_agg/fobs-syslog.toml",
                 "fobs/syslog_agg/monit/fobs-monit.toml", "fobs/dashboards/fobs.rules.py",
                 "fobs/dashboards/dea.dashboard.py"):
        assert PurePosixPath(data) in found, data


IMPORT_ALL = """
import importlib, json, pkgutil, sys
import fobs
files = {}
for info in pkgutil.walk_packages(fobs.__path__, "fobs."):
    if info.name.rsplit(".", 1)[-1] == "__main__":
        continue  # runs the command line
    files[info.name] = importlib.import_module(info.name).__file__
bare = sorted(m for m in ("collector", "components", "syslog_agg", "dashboards")
              if m in sys.modules)
print(json.dumps({"files": files, "bare": bare}))
"""


def test_every_module_imports_from_the_installed_wheel(wheel: Path, tmp_path: Path) -> None:
    """Installed into a bare directory, outside the work tree: every module imports from there
    (so no module imports a bare `collector`/`components`… that only the work tree has)."""
    target = tmp_path / "site"
    installed = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--disable-pip-version-check",
         "-q", "--target", str(target), str(wheel)],
        capture_output=True, text=True, timeout=120)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    # bin/ holds the `fobs` console script.
    assert {p.name for p in target.iterdir() if not p.name.endswith(".dist-info")} - {"bin"} \
        == {"fobs"}
    # PYTHONPATH comes before the editable install's finder, and the work tree is not the cwd.
    ran = subprocess.run([sys.executable, "-c", IMPORT_ALL], cwd=tmp_path, capture_output=True,
                         text=True, timeout=120, env={"PYTHONPATH": str(target), "PATH": ""})
    assert ran.returncode == 0, ran.stderr
    result = json.loads(ran.stdout.splitlines()[-1])
    assert result["bare"] == []
    assert len(result["files"]) > 50
    outside = {m: f for m, f in result["files"].items() if not f.startswith(str(target))}
    assert outside == {}


def test_the_public_api_of_fobs_components_is_its_all() -> None:
    """`from fobs.components import *` is the API a third-party service builds on: every name
    in `__all__` imports, and every public name of the package is in `__all__`."""
    import types

    import fobs.components as api

    missing = [name for name in api.__all__ if not hasattr(api, name)]
    assert missing == []
    assert len(set(api.__all__)) == len(api.__all__)
    namespace: dict[str, object] = {}
    exec("from fobs.components import *", namespace)
    assert set(namespace) - {"__builtins__"} == set(api.__all__)
    public = {name for name, value in vars(api).items()
              if not name.startswith("_") and not isinstance(value, types.ModuleType)}
    assert public == set(api.__all__)
    assert {"Component", "ComponentConfig"} <= set(api.__all__)
