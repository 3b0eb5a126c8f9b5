"""Installing works as the README says (issue #13, point 4).

``python -m build`` gives a wheel holding every file of the package (the
templates, static files and migrations too), built once per run. Each extra,
installed alone from that wheel into a fresh venv, passes ``pip check`` and
brings what it promises (``promises.py``, run inside the venv): one venv per
extra, shared by its tests. pip's cache and this machine's pip configuration
are used as for any install.
"""

from __future__ import annotations

import subprocess
import sys
import venv
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "celery_progress_mcp"
PROMISES = Path(__file__).with_name("promises.py")
#: Each extra a user installs, and ``base``: the package without any.
EXTRAS = ("base", "postgres", "mysql", "redis", "web", "mcp", "django")
#: Bytecode is left to the first import: compiling all of every dependency costs more.
QUIET = ("--quiet", "--no-compile")
#: A build or an install that takes longer has hung, in seconds.
GUARD_S = 600


def _run(*arguments: str | Path, cwd: Path | None = None) -> str:
    done = subprocess.run(
        [str(argument) for argument in arguments],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=GUARD_S,
        check=False,
    )
    assert done.returncode == 0, f"{' '.join(map(str, arguments))}:\n{done.stdout}{done.stderr}"
    return done.stdout


@pytest.fixture(scope="session")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel ``python -m build`` makes (from the sdist it makes first), as the README says."""
    dist = tmp_path_factory.mktemp("dist")
    _run(sys.executable, "-m", "build", "--outdir", dist, ROOT)
    (built,) = dist.glob("*.whl")
    return built


@pytest.fixture(scope="session")
def venvs(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each extra's fresh venv, with the wheel and that extra installed: its python."""

    def make(extra: str) -> Path:
        home = tmp_path_factory.mktemp(f"venv-{extra}")
        # This run's pip installs into the new venv (--python): the same install
        # as the venv's own pip would make, without bootstrapping one per venv.
        venv.create(home, with_pip=False)
        python = home / "bin" / "python"
        wanted = str(wheel) if extra == "base" else f"{wheel}[{extra}]"
        _run(sys.executable, "-m", "pip", "--python", python, "install", *QUIET, wanted)
        return python

    # The installs wait on the disk more than on the CPU: side by side they take half as long.
    with ThreadPoolExecutor(max_workers=len(EXTRAS)) as pool:
        return dict(zip(EXTRAS, pool.map(make, EXTRAS), strict=True))


@pytest.fixture(params=EXTRAS)
def installed(request: pytest.FixtureRequest, venvs: dict[str, Path]) -> tuple[str, Path]:
    """``(extra, python)`` for each extra's venv."""
    extra: str = request.param
    return extra, venvs[extra]


def test_the_wheel_holds_every_file_of_the_package(wheel: Path) -> None:
    held = set(zipfile.ZipFile(wheel).namelist())
    source = {
        path.relative_to(ROOT).as_posix()
        for path in PACKAGE.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }
    assert source - held == set()
    for data in (
        "celery_progress_mcp/py.typed",
        "celery_progress_mcp/monitor/templates/list.html",
        "celery_progress_mcp/monitor/static/dashboard.js",
        "celery_progress_mcp/monitor/static/dashboard.css",
        "celery_progress_mcp/django/static/celery_progress_mcp/celery_progress_mcp.js",
        "celery_progress_mcp/store/migrations/script.py.mako",
        "celery_progress_mcp/store/migrations/versions/r0001_initial.py",
    ):
        assert data in held


def test_pip_check_finds_nothing_missing(installed: tuple[str, Path]) -> None:
    _, python = installed
    _run(sys.executable, "-m", "pip", "--python", python, "check")


def test_the_extra_brings_what_it_promises(installed: tuple[str, Path], tmp_path: Path) -> None:
    extra, python = installed
    assert _run(python, "-I", PROMISES, extra, cwd=tmp_path).strip().endswith("ok")
