"""The official MCP Inspector's CLI (npm ``@modelcontextprotocol/inspector``) for the tests.

The Inspector is pinned in inspector/package.json and package-lock.json and
installed from the npm registry into inspector/node_modules by ``npm ci``, on
first use and again only when the lock pins another version. Without Node.js
and npm, or where they cannot install or run it, a test that needs it skips
saying why; under CELERY_PROGRESS_REQUIRE_SERVERS (CI) it fails instead.

Why 0.22.0 and not the latest 2.x: 0.22.0 is the last release whose CLI runs
on Debian's Node.js (bookworm ships 18.20, trixie 20.19), which is what
``.ci/run`` installs on a machine without one; 2.x declares Node >= 22.19 and
stops on Node 18 ("CustomEvent is not defined").
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from ..servers import REQUIRE_ENV
from .realworker import ROOT

__all__ = ["INSPECTOR_HOME", "inspector_answer", "inspector_command", "run_inspector"]

#: The npm project that pins the Inspector.
INSPECTOR_HOME = Path(__file__).with_name("inspector")
#: The package, as npm names it.
_PACKAGE = "@modelcontextprotocol/inspector"
#: How long ``npm ci`` may take, in s: the first install fetches some 260 packages.
_INSTALL_TIMEOUT_S = 600
#: How long one Inspector run may take, in s: over stdio it starts the server (Python, Celery).
_RUN_TIMEOUT_S = 120


def inspector_command() -> list[str]:
    """``node <the Inspector's bin> --cli``, installed and able to run; else a skip saying why."""
    prepared = _prepared()
    if isinstance(prepared, str):
        message = f"the MCP Inspector cannot run here: {prepared}"
        if os.environ.get(REQUIRE_ENV):
            pytest.fail(f"{message} ({REQUIRE_ENV} is set)")
        pytest.skip(message)
    return prepared


def run_inspector(*arguments: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """One Inspector CLI run (one method, one connection), from the repository's root."""
    return subprocess.run(
        [*inspector_command(), *arguments],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=_RUN_TIMEOUT_S,
        check=False,
    )


def inspector_answer(*arguments: str, env: dict[str, str]) -> Any:
    """The JSON the Inspector prints for a run that succeeds."""
    done = run_inspector(*arguments, env=env)
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"the Inspector exited {done.returncode}:\n{output}"
    return json.loads(done.stdout)


@functools.cache
def _prepared() -> list[str] | str:
    """The command prefix, or why there is none (looked at once per run)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        return "needs Node.js and npm (npx) on PATH; Debian: apt-get install nodejs npm"
    lock = json.loads((INSPECTOR_HOME / "package-lock.json").read_text())
    pinned = lock["packages"][f"node_modules/{_PACKAGE}"]["version"]
    home = INSPECTOR_HOME / "node_modules" / _PACKAGE
    if _installed_version(home) != pinned:
        # No install scripts: the pinned packages have none, and none should run unasked.
        install = [npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund"]
        done = _run(install, INSPECTOR_HOME, _INSTALL_TIMEOUT_S)
        if done.returncode != 0:
            return f"npm ci could not install {_PACKAGE}@{pinned}: {_tail(done)}"
    manifest = json.loads((home / "package.json").read_text())
    cli = home / manifest["bin"]["mcp-inspector"]
    probe = _run([node, str(cli), "--help"], INSPECTOR_HOME, _RUN_TIMEOUT_S)
    if probe.returncode != 0:
        version = _run([node, "--version"], INSPECTOR_HOME, _RUN_TIMEOUT_S).stdout.strip()
        return f"Node.js {version} cannot run {_PACKAGE}@{pinned}: {_tail(probe)}"
    return [node, str(cli), "--cli"]


def _installed_version(home: Path) -> str | None:
    try:
        version: str = json.loads((home / "package.json").read_text())["version"]
    except (OSError, ValueError, KeyError):
        return None
    return version


def _run(command: list[str], cwd: Path, timeout_s: float) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            command, cwd=cwd, capture_output=True, text=True, timeout=timeout_s, check=False
        )
    except subprocess.TimeoutExpired as exc:
        return subprocess.CompletedProcess(command, -1, "", f"timed out after {exc.timeout} s")


def _tail(done: subprocess.CompletedProcess[str]) -> str:
    """The last lines a failed command wrote, on one line."""
    lines = (done.stderr or done.stdout).strip().splitlines()
    return " | ".join(lines[-3:]) or f"exit status {done.returncode}"
