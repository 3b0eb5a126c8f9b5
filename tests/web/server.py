"""A real uvicorn server in a thread, for tests that need a socket (SSE, browser, MCP on HTTP)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from starlette.types import ASGIApp

from celery_progress_mcp.testing import eventually

__all__ = ["free_port", "serving"]

#: How long a server may take to start, in seconds (a hang fails the test instead).
START_TIMEOUT_S = 20.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def serving(app: ASGIApp, *, access_log: bool = False) -> Iterator[str]:
    """Serve ``app`` on 127.0.0.1 and yield its base URL; stop it afterwards.

    ``access_log``: uvicorn writes its access log to the ``uvicorn.access``
    logger at INFO, where the test reads it (uvicorn's own log configuration
    left out, so the test's handler stays).
    """
    port = free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level=None if access_log else "warning",
        log_config=None if access_log else uvicorn.config.LOGGING_CONFIG,
        access_log=access_log,
        lifespan="on",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="test-uvicorn", daemon=True)
    thread.start()

    def started() -> bool:
        if not thread.is_alive():
            raise RuntimeError("the test server stopped before it started")
        return server.started

    eventually(started, timeout_s=START_TIMEOUT_S, what="the test server starting")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        server.force_exit = True  # open SSE streams would otherwise hold shutdown
        thread.join(timeout=10)
