"""An MCP server over stdio with its worker in the same process (see inproc.py).

Run as ``python -m tests.mcp.stdio_server``, as an agent host starts a server.
"""

from __future__ import annotations

import logging
import sys

import anyio

from celery_progress_mcp.mcp import RunOptions, ServerOptions, build_server

from . import inproc


def main() -> None:
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING)
    with inproc.tracker() as tracker:
        app = inproc.make_app(tracker)
        options = ServerOptions(run=RunOptions(poll_interval_s=0.2))
        server = build_server(app, inproc.TASKS, tracker=tracker, options=options)
        with inproc.running_worker(app):
            # The worker sets the root logger to ERROR; the server's own warnings still show.
            logging.getLogger("celery_progress_mcp").setLevel(logging.WARNING)
            anyio.run(server.run_stdio_async)


if __name__ == "__main__":
    main()
