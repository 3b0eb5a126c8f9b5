"""Every command of README.md and example_project/README.md, run verbatim on example_project/.

The commands come from the shell code blocks of both files. Each one this
test knows how to run is in ``CHECKS``; a README command that is not there
(or a ``CHECKS`` entry no README still shows) fails the first test. The
commands run from ``example_project/`` with the venv's ``bin`` first on
``PATH`` (the README's "venv activated"), against the example's embedded
default: a ``filesystem://`` broker and SQLite, in a throwaway directory.

A synopsis line is run in each of its forms: without its ``[...]`` options
and with all of them; ``SESSION_ID`` is the id of the pipeline this module
dispatches with the README's own ``python -c ...`` line, and ``"$TOKEN"``
expands from the environment. The long-running commands (the worker, the
dashboard, the MCP server, ``sessions watch``, the Django site's ``runsite``)
are started, checked to answer and stopped; the Django site's commands run
on a data directory of their own, so that only ``runsite``'s worker can run
the pipeline its page starts.
"""

from __future__ import annotations

import json
import os
import pty
import re
import select
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import anyio
import httpx
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

from celery_progress_mcp.testing import eventually
from tests.celery.workers import ROOT

EXAMPLE_DIR = ROOT / "example_project"
READMES = (ROOT / "README.md", EXAMPLE_DIR / "README.md")
#: Guard against a command that hangs, in seconds.
COMMAND_GUARD_S = 60
#: How long a long-running command gets to answer, in seconds.
START_GUARD_S = 30
#: The dashboard's token: ``"$TOKEN"`` in the README (16 characters at least).
TOKEN = "readme-token-0123456789"

SHELL_LANGUAGES = {"console", "bash", "sh", "shell"}
#: Not commands of this project: installing it, the Makefile, cloning.
NOT_RUN = (
    "make ",
    "git clone",
    "pip install",
    ".venv/bin/pip install",
    ".venv/bin/python -m build",
    "python3.11 -m venv",
)

DISPATCH = 'python -c "from proj import tasks; print(tasks.pipeline.delay().id)"'
WORKER = "celery -A proj worker --pool=prefork --concurrency=3 --loglevel=INFO"
CANCEL = "celery-progress-mcp -A proj sessions cancel SESSION_ID [--reason TEXT] [--terminate]"
SITE_PREPARE = (
    "python manage.py migrate && DJANGO_SUPERUSER_PASSWORD=admin python manage.py createsuperuser"
    " --noinput --username admin --email admin@example.com"
)
RUNSITE = "python manage.py runsite"
#: Where ``runsite`` serves the site, as the README says.
SITE_URL = "http://127.0.0.1:8000"

#: README command -> how it is checked (the name of a ``check_...`` function below).
CHECKS: dict[str, str] = {
    "cd example_project": "cwd",
    WORKER: "worker",
    DISPATCH: "dispatch",
    "celery-progress-mcp -A proj sessions watch": "watch",
    "celery -A proj progress sessions list": "completes",
    "celery-progress-mcp -A proj sessions list [--active] [--status failed] [--json]": "completes",
    "celery-progress-mcp -A proj sessions show SESSION_ID [--json]": "completes",
    "celery-progress-mcp -A proj sessions watch [SESSION_ID ...]": "watch",
    "celery-progress-mcp -A proj stats": "completes",
    "celery-progress-mcp -A proj cleanup": "completes",
    "celery -A proj progress sessions watch": "watch",
    "celery-progress-mcp -A proj:app dashboard": "dashboard",
    'celery-progress-mcp -A proj:app dashboard --host 0.0.0.0 --token "$TOKEN"': "dashboard",
    "celery-progress-mcp -A proj:app dashboard --cors-origin http://localhost:8000": "dashboard",
    "celery-progress-mcp mcp -A proj:app --tool proj.tasks.process_file "
    "--tool proj.tasks.pipeline": "mcp_stdio",
    "celery-progress-mcp mcp -A proj:app --tool proj.tasks.process_file "
    "--transport http --port 5577": "mcp_http",
    CANCEL: "cancel",
    "python manage.py migrate": "migrate",
    SITE_PREPARE: "site_prepare",
    RUNSITE: "runsite",
}


def readme_commands(path: Path) -> list[str]:
    """The shell lines of ``path``'s code blocks, without comments and without ``NOT_RUN``."""
    commands: list[str] = []
    language: str | None = None
    for line in path.read_text(encoding="utf-8").splitlines():
        fence = re.match(r"\s*```(\S*)", line)
        if fence:
            language = fence.group(1) if language is None else None
            continue
        if language not in SHELL_LANGUAGES:
            continue
        command = re.sub(r"\s+#\s.*$", "", line).strip()
        if command and not command.startswith(("#", *NOT_RUN)):
            commands.append(command)
    return commands


def forms(command: str, session_id: str) -> list[str]:
    """The synopsis ``command`` as run: without its ``[...]`` options, then with all of them."""
    bare = re.sub(r"\s*\[[^\]]*\]", "", command)
    full = re.sub(r"\[([^\]]*)\]", r"\1", command).replace("SESSION_ID ...", "SESSION_ID")
    variants = [bare] if bare == full else [bare, full]
    return [variant.replace("SESSION_ID", session_id) for variant in variants]


def test_every_readme_command_is_run_here() -> None:
    shown = [command for path in READMES for command in readme_commands(path)]
    assert set(shown) - set(CHECKS) == set(), "README commands this test does not run"
    assert set(CHECKS) - set(shown) == set(), "commands run here that no README shows"


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The example's embedded default in a throwaway directory; the venv "activated"."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("CELERY_PROGRESS_", "EXAMPLE_"))
    }
    env["EXAMPLE_DATA_DIR"] = str(tmp_path_factory.mktemp("example-data"))
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["TOKEN"] = TOKEN
    return env


@contextmanager
def started(
    command: str, env: dict[str, str], **options: object
) -> Iterator[subprocess.Popen[str]]:
    """``command`` through the shell in example_project/, stopped (its whole group) at the end."""
    process: subprocess.Popen[str] = subprocess.Popen(  # type: ignore[call-overload]
        ["bash", "-c", command],
        cwd=EXAMPLE_DIR,
        env=env,
        start_new_session=True,
        text=True,
        **options,
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(5)


def run(command: str, env: dict[str, str]) -> str:
    done = subprocess.run(
        ["bash", "-c", command],
        cwd=EXAMPLE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=COMMAND_GUARD_S,
        check=False,
    )
    assert done.returncode == 0, f"{command}: {done.stderr}"
    return done.stdout


def status(env: dict[str, str], session_id: str) -> str:
    """The session's status, as ``sessions show --json`` prints it."""
    shown = json.loads(run(f"celery-progress-mcp -A proj sessions show {session_id} --json", env))
    assert shown["id"] == session_id
    return str(shown["state"]["status"])


@pytest.fixture(scope="module")
def worker(env: dict[str, str]) -> Iterator[subprocess.Popen[str]]:
    with started(WORKER, env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) as process:
        yield process


#: A pipeline long enough to be cancelled while it runs, however slow the commands that
#: watch it start (each is a new process): the README's dispatch with ten times the rows.
LONG_DISPATCH = DISPATCH.replace("pipeline.delay()", "pipeline.delay(rows=200_000)")


def dispatched_running(env: dict[str, str], dispatch: str = DISPATCH) -> str:
    """``dispatch`` (the README's), run until the worker has started the session it printed."""
    printed = run(dispatch, env).strip()
    assert re.fullmatch(r"[0-9a-f-]{36}", printed), printed

    def running() -> bool:
        return status(env, printed) == "in_progress"

    eventually(running, timeout_s=START_GUARD_S, interval_s=0.2, what="the worker running it")
    return printed


@pytest.fixture(scope="module")
def session_id(env: dict[str, str], worker: subprocess.Popen[str]) -> str:
    """A pipeline dispatched by the README's line; the worker checked by running it."""
    dispatched = dispatched_running(env)
    assert worker.poll() is None, "the worker exited"
    return dispatched


def check_cwd(command: str, env: dict[str, str], session_id: str) -> None:
    """Every command here runs in example_project/."""
    assert ROOT / command.split()[1] == EXAMPLE_DIR


def check_worker(command: str, env: dict[str, str], session_id: str) -> None:
    """Started by the ``worker`` fixture; ``session_id`` proved it runs tasks."""
    assert status(env, session_id) in {"in_progress", "completed"}


def check_dispatch(command: str, env: dict[str, str], session_id: str) -> None:
    """Run by the ``session_id`` fixture, which printed a session id."""
    assert status(env, session_id)


def check_completes(command: str, env: dict[str, str], session_id: str) -> None:
    """Exits 0; a listing or show names the dispatched session."""
    for form in forms(command, session_id):
        out = run(form, env)
        if "sessions show" in form or ("sessions list" in form and "--status" not in form):
            assert session_id[:8] in out, f"{form}: {out}"


def check_watch(command: str, env: dict[str, str], session_id: str) -> None:
    """Its first screen on a terminal (a pty) shows the live table; Ctrl-C stops it.

    A form without ids shows what is active or ended lately: a pipeline of its own,
    dispatched now (the module's may have ended long before, on a loaded machine)."""
    for form in forms(command, session_id):
        shown = session_id if session_id in form else run(DISPATCH, env).strip()
        watch_first_screen(form, env, shown)


def watch_first_screen(form: str, env: dict[str, str], session_id: str) -> None:
    leader, follower = pty.openpty()
    try:
        with started(form, env, stdin=follower, stdout=follower, stderr=follower) as process:
            os.close(follower)
            screen = b""

            def drawn() -> bool:
                nonlocal screen
                assert process.poll() is None, f"{form} exited: {screen!r}"
                if select.select([leader], [], [], 0.1)[0]:
                    screen += os.read(leader, 65536)
                return b"sessions" in screen and session_id[:8].encode() in screen

            eventually(drawn, timeout_s=START_GUARD_S, interval_s=0.05, what=f"{form} drawn")
            os.killpg(process.pid, signal.SIGINT)
            assert process.wait(COMMAND_GUARD_S) == 0
    finally:
        os.close(leader)


def assert_free(port: int) -> None:
    """The README's fixed port is free: an answer must come from the command started here."""
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0, f"port {port} is already in use"


def check_dashboard(command: str, env: dict[str, str], session_id: str) -> None:
    """Answers on http://127.0.0.1:5566/ (with the token, and CORS headers, where asked)."""
    headers = {"Origin": "http://localhost:8000"}
    if "--token" in command:
        headers["Authorization"] = f"Bearer {TOKEN}"
    assert_free(5566)
    with started(command, env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) as process:

        def answered() -> httpx.Response:
            assert process.poll() is None, f"{command} exited"
            try:
                return httpx.get("http://127.0.0.1:5566/api/sessions", headers=headers)
            except httpx.TransportError as exc:
                raise LookupError("not listening yet") from exc

        response = eventually(answered, timeout_s=START_GUARD_S, interval_s=0.1, what=command)
        assert response.status_code == 200, response.text
        assert session_id in response.text
        allowed = response.headers.get("access-control-allow-origin")
        assert allowed == ("http://localhost:8000" if "--cors-origin" in command else None)


def check_mcp_stdio(command: str, env: dict[str, str], session_id: str) -> None:
    """An MCP initialize by the SDK client over stdio lists both tools."""
    parameters = StdioServerParameters(
        command="bash", args=["-c", command], env=env, cwd=str(EXAMPLE_DIR)
    )

    async def tools() -> set[str]:
        async with Client(parameters, mode="legacy") as client:
            return {tool.name for tool in (await client.list_tools()).tools}

    assert {"proj.tasks.process_file", "proj.tasks.pipeline"} <= anyio.run(tools)


def check_mcp_http(command: str, env: dict[str, str], session_id: str) -> None:
    """An MCP initialize by the SDK client on http://127.0.0.1:5577/mcp lists the tool."""

    async def tools() -> set[str]:
        client = Client(streamable_http_client("http://127.0.0.1:5577/mcp"), mode="legacy")
        async with client:
            return {tool.name for tool in (await client.list_tools()).tools}

    assert_free(5577)
    with started(command, env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) as process:

        def listed() -> set[str]:
            assert process.poll() is None, f"{command} exited"
            try:
                return anyio.run(tools)
            except Exception as exc:
                raise LookupError("not answering yet") from exc

        names = eventually(listed, timeout_s=START_GUARD_S, interval_s=0.2, what=command)
        assert "proj.tasks.process_file" in names


def check_cancel(command: str, env: dict[str, str], session_id: str) -> None:
    """Each form cancels a running pipeline of its own, which ends cancelled."""
    for form in forms(command, session_id):
        running = dispatched_running(env, LONG_DISPATCH)
        form = form.replace(session_id, running)
        assert f"cancelled {running}" in run(form, env)

        def ended(running: str = running) -> bool:
            return status(env, running) == "cancelled"

        eventually(ended, timeout_s=START_GUARD_S, interval_s=0.2, what=f"{form}: cancelled")


@contextmanager
def own_data(env: dict[str, str]) -> Iterator[dict[str, str]]:
    """``env`` with a data directory of its own: the module's worker never sees its tasks."""
    with tempfile.TemporaryDirectory(prefix="example-site-") as directory:
        yield {
            **{k: v for k, v in env.items() if not k.startswith("DJANGO_")},
            "EXAMPLE_DATA_DIR": directory,
        }


def site_tables(site_env: dict[str, str]) -> set[str]:
    """The tables of the example site's database (the example's SQLite file)."""
    database = Path(site_env["EXAMPLE_DATA_DIR"]) / "example.sqlite3"
    with closing(sqlite3.connect(database)) as connection:
        return {name for (name,) in connection.execute("SELECT name FROM sqlite_master")}


#: Some of Django's tables and some of the progress store's.
SITE_TABLES = {"django_migrations", "django_session", "progress_sessions", "progress_events"}


def check_migrate(command: str, env: dict[str, str], session_id: str) -> None:
    """The README's migrate, on the example site: an empty database, then a migrated one."""
    with own_data(env) as site_env:
        for _ in range(2):
            assert "Progress store at revision" in run(command, site_env)
        assert site_tables(site_env) >= SITE_TABLES


def check_site_prepare(command: str, env: dict[str, str], session_id: str) -> None:
    """On an empty data directory: Django's tables, the progress store's, the superuser admin."""
    with own_data(env) as site_env:
        run(command, site_env)
        assert site_tables(site_env) >= SITE_TABLES
        database = Path(site_env["EXAMPLE_DATA_DIR"]) / "example.sqlite3"
        with closing(sqlite3.connect(database)) as connection:
            admins = connection.execute(
                "SELECT username FROM auth_user WHERE is_superuser AND is_staff"
            ).fetchall()
    assert admins == [("admin",)]


def _csrf_token(page: httpx.Response) -> str:
    found = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
    assert found, page.text
    return found.group(1)


def check_runsite(command: str, env: dict[str, str], session_id: str) -> None:
    """After the README's preparation: the page's button starts a pipeline that its own worker
    runs to success, and the dashboard lists it once logged in as admin / admin."""
    assert_free(8000)
    with own_data(env) as site_env:
        run(SITE_PREPARE, site_env)
        with (
            started(
                command, site_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            ) as process,
            httpx.Client(base_url=SITE_URL) as client,
        ):

            def answered() -> httpx.Response:
                assert process.poll() is None, f"{command} exited"
                try:
                    return client.get("/")
                except httpx.TransportError as exc:
                    raise LookupError("not listening yet") from exc

            page = eventually(answered, timeout_s=START_GUARD_S, interval_s=0.2, what=command)
            assert page.status_code == 200, page.text
            started_page = client.post(
                "/pipelines/", data={"csrfmiddlewaretoken": _csrf_token(page)}
            )
            assert started_page.status_code == 302, started_page.text
            task_id = started_page.headers["location"].strip("/").rpartition("/")[2]

            def completed() -> dict[str, object] | None:
                answer: dict[str, object] = client.get(f"/celery-progress/{task_id}/").json()
                return answer if answer["complete"] else None

            answer = eventually(
                completed, timeout_s=COMMAND_GUARD_S, interval_s=0.2, what="the pipeline's end"
            )
            assert answer["success"] is True, answer
            login = client.get("/admin/login/")
            logged_in = client.post(
                "/admin/login/?next=/celery-progress/dashboard/",
                data={
                    "csrfmiddlewaretoken": _csrf_token(login),
                    "username": "admin",
                    "password": "admin",
                },
                follow_redirects=True,
            )
            assert logged_in.url.path == "/celery-progress/dashboard/", logged_in.text
            assert f'data-session="{task_id}"' in logged_in.text


CHECKERS: dict[str, Callable[[str, dict[str, str], str], None]] = {
    name.removeprefix("check_"): value
    for name, value in dict(globals()).items()
    if name.startswith("check_")
}


@pytest.mark.slow
@pytest.mark.parametrize("command", list(CHECKS))
def test_the_readme_command_works_verbatim(
    command: str, env: dict[str, str], session_id: str
) -> None:
    CHECKERS[CHECKS[command]](command, env, session_id)
