"""The built wheel, as a user installs it: it adds no import name but ``zonegen`` (the
repository's top-level ``cli.py`` and ``migrations/`` install as ``zonegen.command.cli``
and ``zonegen.migrations``), and the installed ``zonegen`` runs and migrates.

Built from a copy of the checkout so the build leaves nothing in the worktree.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from tests.helpers import ROOT
from zonegen import migrate

SHIPPED = ["cli.py", "pyproject.toml", "README.md", "LICENSE", "zonegen", "migrations"]


def run(*args: str | Path, cwd: Path) -> str:
    proc = subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True,
                          timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def checkout_copy(src: Path) -> None:
    """What a release ships of the checkout, copied to ``src`` (no caches)."""
    src.mkdir()
    for name in SHIPPED:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, src / name,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(path, src / name)


def fresh_venv(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A venv (its directory, python and purelib) that sees the dependencies but not the
    checkout: the dependencies by path only, since a .pth line adds a directory without
    running that directory's own .pth files (which would bring back an editable zonegen)."""
    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=tmp_path)
    python = venv / "bin" / "python"
    purelib = Path(run(python, "-c", "import sysconfig; print(sysconfig.get_paths()"
                                     "['purelib'])", cwd=tmp_path).strip())
    (purelib / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return venv, python, purelib


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    checkout_copy(src)
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
        str(src), "-w", "dist",
        cwd=tmp)
    (built,) = (tmp / "dist").glob("zonegen-*.whl")
    return built


def test_wheel_adds_no_import_name_but_zonegen(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as whl:
        names = whl.namelist()
        top = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
        info = next(n.split("/")[0] for n in names if n.endswith(".dist-info/RECORD"))
        entry_points = whl.read(f"{info}/entry_points.txt").decode()
    assert top == {"zonegen"}
    # pyproject lists the packages by name (a mapped package cannot be found): a new
    # subpackage of zonegen/ must be listed there too, or the wheel would lack it.
    checkout = {str(p.relative_to(ROOT)) for p in (ROOT / "zonegen").rglob("*")
                if p.is_file() and "__pycache__" not in p.parts}
    assert checkout - set(names) == set()
    assert "zonegen/command/cli.py" in names
    assert "zonegen/migrations/env.py" in names
    assert "zonegen/migrations/script.py.mako" in names
    assert "zonegen = zonegen.__main__:main" in entry_points.splitlines()


def test_installed_wheel_runs_demo_and_migrates(wheel: Path, tmp_path: Path) -> None:
    """In a fresh venv that sees the dependencies but not the checkout (nor an editable
    install of it): ``cli`` and ``migrations`` are not importable, and the console script
    prints the demo zone and migrates a new database to head from the wheel's own
    migrations."""
    venv, python, purelib = fresh_venv(tmp_path)
    run(sys.executable, "-m", "pip", "--python", python, "install", "-q", "--no-deps",
        wheel, cwd=tmp_path)
    where = run(python, "-c", "import zonegen.migrate as m; print(m._script_location())",
                cwd=tmp_path).strip()
    assert Path(where) == purelib / "zonegen" / "migrations"
    for name in ("cli", "migrations"):
        probe = subprocess.run([str(python), "-c", f"import {name}"], cwd=tmp_path,
                               capture_output=True, text=True, check=False)
        assert probe.returncode == 1, f"{name} is importable from the installed wheel"
        assert f"No module named '{name}'" in probe.stderr
    zonegen = venv / "bin" / "zonegen"
    out = run(zonegen, "demo", cwd=tmp_path)
    assert out.startswith("$ORIGIN cluster.local.\n")
    db = f"sqlite:///{tmp_path / 'z.db'}"
    out = run(zonegen, "--db", db, "db", "upgrade", cwd=tmp_path)
    head = run(zonegen, "--db", db, "db", "current", cwd=tmp_path).strip()
    assert out == f"{tmp_path / 'z.db'}: schema at revision {head}\n"
    assert head == migrate.head()


def test_editable_install_gives_a_working_command(tmp_path: Path) -> None:
    """``pip install -e .`` of a checkout (setuptools' default, lenient editable mode)
    gives a ``zonegen`` command that runs the checkout's cli.py (zonegen.__main__ loads it
    beside the package when zonegen.command cannot be mapped)."""
    src = tmp_path / "src"
    checkout_copy(src)
    venv, python, _ = fresh_venv(tmp_path)
    run(sys.executable, "-m", "pip", "--python", python, "install", "-q", "--no-deps",
        "--no-build-isolation", "-e", src, cwd=tmp_path)
    out = run(venv / "bin" / "zonegen", "demo", cwd=tmp_path)
    assert out.startswith("$ORIGIN cluster.local.\n")
    out = run(python, "-m", "zonegen", "--version", cwd=tmp_path)
    assert out == "zonegen, version 0.1.0\n"
