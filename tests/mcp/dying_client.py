"""An agent host that starts a stdio server, makes a long call and waits to be killed.

``python -m tests.mcp.dying_client TOOL [SERVER COMMAND...]`` calls ``TOOL``
(a counting task) on the server the command starts (tests/mcp/stdio_server.py
unless given) and prints the server's pid once the call's progress flows.
The server's stderr is this process's stderr.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import IO, Any

#: How long the client waits to be killed, in seconds.
LIFETIME_S = 300


def send(stdin: IO[bytes], message: dict[str, Any]) -> None:
    stdin.write((json.dumps({"jsonrpc": "2.0", **message}) + "\n").encode())
    stdin.flush()


def main() -> None:
    tool, *command = sys.argv[1:]
    command = command or [sys.executable, "-m", "tests.mcp.stdio_server"]
    server = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert server.stdin is not None
    assert server.stdout is not None
    params = {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "dying", "version": "0"},
    }
    send(server.stdin, {"id": 1, "method": "initialize", "params": params})
    server.stdout.readline()
    send(server.stdin, {"method": "notifications/initialized"})
    call = {
        "name": tool,
        "arguments": {"n": 5000, "delay": 0.01},
        "_meta": {"progressToken": "long"},
    }
    send(server.stdin, {"id": 2, "method": "tools/call", "params": call})
    while json.loads(server.stdout.readline()).get("method") != "notifications/progress":
        pass
    print(server.pid, flush=True)
    time.sleep(LIFETIME_S)


if __name__ == "__main__":
    main()
