"""Running a function in a forked child and hearing back how it went.

The child is made by multiprocessing's ``fork`` start method, so it inherits
the test's objects as they are at that moment, threads' locks included:
which is what the fork tests are about. It reports through a pipe, so a
failed assertion in the child fails the test with the child's traceback.
"""

from __future__ import annotations

import multiprocessing
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

__all__ = ["FORK", "Forked"]

FORK = multiprocessing.get_context("fork")

#: What a child that finished its work sends back.
_OK = "ok"


class Forked:
    """``target(*args)`` running in a forked child."""

    def __init__(self, target: Callable[..., None], *args: Any) -> None:
        self._reader, writer = FORK.Pipe(duplex=False)
        self.process = FORK.Process(target=_run, args=(writer, target, args), daemon=True)
        self.process.start()
        writer.close()

    def succeeded(self, timeout_s: float = 120.0) -> None:
        """Wait for the child to finish; an AssertionError carrying its report if it failed."""
        report = self._reader.recv() if self._reader.poll(timeout_s) else None
        self.process.join(30)
        if self.process.exitcode is None:
            self.process.kill()
            self.process.join(10)
        failure = f"the forked child failed (exit code {self.process.exitcode}):\n{report}"
        assert report == _OK, failure
        assert self.process.exitcode == 0, failure


def _run(writer: Connection, target: Callable[..., None], args: tuple[Any, ...]) -> None:
    try:
        target(*args)
    except BaseException:
        writer.send(traceback.format_exc())
        raise
    writer.send(_OK)
