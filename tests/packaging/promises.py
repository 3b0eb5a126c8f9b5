"""What each extra promises, checked inside a fresh venv that holds the package and that extra.

``test_install.py`` runs it there as ``python -I promises.py EXTRA`` (``base``
for the package alone), from a scratch directory: ``-I`` keeps the source
tree and the caller's environment out of ``sys.path``, so every import below
comes from what the venv installed. Exits non-zero with a traceback when a
promise is broken. Standard library only at the top: nothing else is there
before the check imports it.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import socket
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import Callable
from pathlib import Path

#: The subpackages that need an extra; every other module imports with the base install.
EXTRA_PACKAGES = (
    "celery_progress_mcp.django",
    "celery_progress_mcp.mcp",
    "celery_progress_mcp.monitor",
    "celery_progress_mcp.web",
)
#: Alembic's scripts, run by Alembic (``check_base`` migrates a store with them), not imported.
MIGRATIONS = "celery_progress_mcp.store.migrations"
#: Where the venv's commands are.
BIN = Path(sys.executable).parent
#: A TCP port nothing listens on (and nothing may, without root): connecting is refused.
CLOSED_PORT = 1
#: Longest wait for the dashboard to answer, in seconds.
SERVER_START_S = 30.0


def import_tree(name: str, *, skip: tuple[str, ...] = ()) -> list[str]:
    """Import ``name`` and every module under it except ``skip`` and ``__main__``; their names."""
    module = importlib.import_module(name)
    imported = [name]
    for info in pkgutil.iter_modules(getattr(module, "__path__", [])):
        child = f"{name}.{info.name}"
        if child not in skip and info.name != "__main__":
            imported += import_tree(child, skip=skip)
    return imported


def command(*arguments: str, env: dict[str, str] | None = None) -> str:
    """Run the venv's ``celery-progress-mcp``; its output."""
    done = subprocess.run(
        [str(BIN / "celery-progress-mcp"), *arguments],
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, f"celery-progress-mcp {' '.join(arguments)}: {done.stderr}"
    return done.stdout


def check_base(scratch: Path) -> None:
    """The package alone: every module but web/ and mcp/, the command, SQLite, RabbitMQ."""
    import celery_progress_mcp

    location = Path(celery_progress_mcp.__file__).resolve()
    assert location.is_relative_to(Path(sys.prefix).resolve()), f"imported from {location}"
    import_tree("celery_progress_mcp", skip=(*EXTRA_PACKAGES, MIGRATIONS))
    # The migrations ship in the wheel: a new SQLite store is migrated with them.
    store = {"CELERY_PROGRESS_STORE_URL": f"sqlite:///{scratch / 'progress.db'}"}
    assert command("sessions", "list", "--json", env=store).strip() == "[]"
    assert "dashboard" in command("--help")
    # RabbitMQ needs no extra: kombu's py-amqp transport is there.
    from kombu import Connection

    transport = Connection(f"amqp://guest:guest@127.0.0.1:{CLOSED_PORT}//").transport
    assert type(transport).__module__ == "kombu.transport.pyamqp"


def check_postgres(scratch: Path) -> None:
    """SQLAlchemy finds psycopg 3 for postgresql+psycopg://, and psycopg finds a libpq."""
    import psycopg
    from sqlalchemy import create_engine

    assert psycopg.pq.version() > 0
    engine = create_engine(f"postgresql+psycopg://postgres@127.0.0.1:{CLOSED_PORT}/test")
    assert engine.dialect.driver == "psycopg"


def check_mysql(scratch: Path) -> None:
    """SQLAlchemy finds PyMySQL for mysql+pymysql://."""
    import pymysql  # noqa: F401
    from sqlalchemy import create_engine

    engine = create_engine(f"mysql+pymysql://root@127.0.0.1:{CLOSED_PORT}/test")
    assert engine.dialect.driver == "pymysql"


def check_redis(scratch: Path) -> None:
    """kombu's Redis transport opens a channel (refused: no server there), Celery's backend loads.

    Opening the channel imports everything the transport needs (redis-py,
    ``packaging``) and builds its client; only the connection itself fails.
    """
    import redis
    from celery import Celery
    from kombu import Connection

    url = f"redis://127.0.0.1:{CLOSED_PORT}/0"
    with Connection(url) as connection:
        transport = connection.transport
        assert type(transport).__module__ == "kombu.transport.redis"
        try:
            transport.create_channel(transport)
        except redis.ConnectionError:
            pass
        else:
            raise AssertionError(f"a Redis server answered at {url}")
    app = Celery("promises", broker=url, backend=url)
    assert type(app.backend).__name__ == "RedisBackend"


def check_web(scratch: Path) -> None:
    """Every module of web/; the dashboard serves its page and static files from the wheel."""
    import_tree("celery_progress_mcp.monitor")
    import_tree("celery_progress_mcp.web")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    store = f"sqlite:///{scratch / 'progress.db'}"
    server = subprocess.Popen(
        [str(BIN / "celery-progress-mcp"), "dashboard", "--store-url", store, "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        page = _get_when_up(f"{base}/", server)
        assert "<html" in page.lower(), page[:200]
        assert _get_when_up(f"{base}/static/dashboard.js", server)
        assert _get_when_up(f"{base}/static/dashboard.css", server)
        # The Django app's static script, served by the dashboard from the same package files.
        script = _get_when_up(f"{base}/static/celery_progress_mcp/celery_progress_mcp.js", server)
        assert "class CeleryProgressBar" in script
    finally:
        server.terminate()
        server.wait(timeout=30)


def _get_when_up(url: str, server: subprocess.Popen[bytes]) -> str:
    from celery_progress_mcp.testing import eventually  # the wheel's own

    def answer() -> str:
        if server.poll() is not None:
            raise RuntimeError(f"the server exited ({server.returncode}) before answering {url}")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                body: bytes = response.read()
        except OSError as exc:
            raise AssertionError(f"{url} not answering yet: {exc}") from exc
        return body.decode()

    return eventually(answer, timeout_s=SERVER_START_S, what=f"an answer from {url}")


def check_mcp(scratch: Path) -> None:
    """Every module of mcp/, and the command."""
    import_tree("celery_progress_mcp.mcp")
    assert "--tool" in command("mcp", "--help")


def check_django(scratch: Path) -> None:
    """A site with the app: migrate makes the store, the URLs answer, files come from the wheel."""
    import django
    from django.conf import settings
    from django.core.management import call_command
    from django.test import Client

    settings.configure(
        SECRET_KEY="packaging-check",
        ALLOWED_HOSTS=["testserver"],
        INSTALLED_APPS=[
            "django.contrib.auth",
            "django.contrib.contenttypes",
            "django.contrib.sessions",
            "django.contrib.staticfiles",
            "celery_progress_mcp.django",
        ],
        MIDDLEWARE=[
            "django.contrib.sessions.middleware.SessionMiddleware",
            "django.contrib.auth.middleware.AuthenticationMiddleware",
        ],
        DATABASES={
            "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": scratch / "site.db"}
        },
        ROOT_URLCONF="celery_progress_mcp_check_urls",
        STATIC_URL="/static/",
    )
    urls = scratch / "celery_progress_mcp_check_urls.py"
    urls.write_text(
        "from django.urls import include, path\n"
        'urlpatterns = [path("p/", include("celery_progress_mcp.django.urls"))]\n'
    )
    sys.path.insert(0, str(scratch))
    django.setup()
    import_tree("celery_progress_mcp.monitor")
    import_tree("celery_progress_mcp.django")
    call_command("migrate", verbosity=0)
    client = Client()
    assert client.get("/p/some-task-id/").json()["state"] == "PENDING"
    assert client.get("/p/dashboard/").status_code == 302  # to the login page
    assert b"EventSource" in client.get("/p/dashboard/static/dashboard.js").content


CHECKS: dict[str, Callable[[Path], None]] = {
    "base": check_base,
    "django": check_django,
    "mcp": check_mcp,
    "mysql": check_mysql,
    "postgres": check_postgres,
    "redis": check_redis,
    "web": check_web,
}


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as scratch:
        CHECKS[sys.argv[1]](Path(scratch))
    print("ok")
