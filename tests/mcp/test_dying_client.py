"""A stdio client killed mid-call: the server ends quietly, with one line on its stderr."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from .realworker import ROOT

#: How long the server may take to notice its client is gone and exit, in seconds.
EXIT_TIMEOUT_S = 60


def test_a_client_killed_mid_call_leaves_one_log_line_and_no_traceback() -> None:
    client = subprocess.Popen(
        [sys.executable, "-m", "tests.mcp.dying_client"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert client.stdout is not None
    server_pid = int(client.stdout.readline())  # the call's progress is flowing
    client.send_signal(signal.SIGKILL)
    # The server writes to the client's stderr: it reaches its end when the server exits.
    _, err = client.communicate(timeout=EXIT_TIMEOUT_S)
    stderr = err.decode()
    assert client.returncode == -signal.SIGKILL
    assert "Traceback" not in stderr, stderr
    assert "ExceptionGroup" not in stderr, stderr
    gone = [line for line in stderr.splitlines() if "MCP client gone" in line]
    assert len(gone) == 1, stderr
    try:
        os.kill(server_pid, 0)
    except ProcessLookupError:
        pass
    else:  # a zombie, not yet reaped by whoever adopted it
        with open(f"/proc/{server_pid}/stat") as stat:
            assert stat.read().split(") ")[1].startswith("Z"), "the server still runs"
