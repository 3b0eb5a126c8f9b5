"""The journal: what a closing process could not write, kept on this machine.

When the store is down as a tracker closes, what its outage buffer holds
would be lost with the process. It is written instead to a file of the
store's journal, a directory of the state directory
(``store.state_dir``: ``<state>/journal/<a hash of the store's identity>``,
the identity being the database's URL without its password), one file per
closing process, written atomically: to a temporary name, flushed to disk
(``fsync``), then renamed, so a reader sees a whole file or none. Its
content is JSON (:mod:`.journal_codec`), never pickle.

The next tracker on this machine that opens the same store writes the files
(:mod:`.journal_replay`). A file is claimed with an exclusive POSIX record
lock (``fcntl.lockf``): two processes never write the same file, and a
claim dies with its process (a replayer that crashed), so the file is
claimed again later. POSIX locks belong to a process, not to one of its
file descriptors, and closing any descriptor of the file drops them: this
process never opens a file it has claimed a second time (:data:`_claimed`),
and a forked child inherits no claim.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import logging
import os
import secrets
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..store.base import Store, Write
from ..store.state_dir import state_directory
from .journal_codec import encode_journal

__all__ = [
    "JOURNAL_DIR_NAME",
    "JOURNAL_SUFFIX",
    "STALE_TEMP_S",
    "UNREADABLE_SUFFIX",
    "Claim",
    "Journal",
    "Kept",
]

logger = logging.getLogger(__name__)

#: The directory of the state directory that holds every store's journal.
JOURNAL_DIR_NAME = "journal"
#: How a journal file's name ends.
JOURNAL_SUFFIX = ".json"
#: How a file's name ends once set aside as unreadable (never claimed again).
UNREADABLE_SUFFIX = ".unreadable"
#: How a file being written begins its name: never claimed.
_TEMP_PREFIX = ".tmp-"
#: A temporary file this old was left by a process that died while writing it.
STALE_TEMP_S = 3600.0


@dataclass(frozen=True, slots=True)
class Kept:
    """What ``Journal.keep`` did: the file (None: none written), the writes in it,
    and the writes left out as not data (functions, not named calls)."""

    path: Path | None
    kept: int
    left_out: int


class _Claims:
    """The files this process has claimed (a process's POSIX locks do not keep
    its own threads out, and a second descriptor's close would drop them)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._paths: set[str] = set()
        self._pid = os.getpid()

    def take(self, path: Path) -> bool:
        with self._lock:
            if self._pid != os.getpid():  # a forked child holds none of its parent's
                self._paths, self._pid = set(), os.getpid()
            if str(path) in self._paths:
                return False
            self._paths.add(str(path))
            return True

    def drop(self, path: Path) -> None:
        with self._lock:
            self._paths.discard(str(path))


_claimed = _Claims()


class Claim:
    """A journal file this process holds, locked, until it is done with it."""

    def __init__(self, path: Path, descriptor: int) -> None:
        self.path = path
        self._descriptor: int | None = descriptor

    def read(self) -> bytes:
        descriptor = self._open()
        size = os.fstat(descriptor).st_size
        chunks = []
        offset = 0
        while offset < size:
            chunk = os.pread(descriptor, size - offset, offset)
            if not chunk:
                break
            chunks.append(chunk)
            offset += len(chunk)
        return b"".join(chunks)

    def done(self) -> None:
        """Its writes are in the store: remove it (still locked, so no one claims it)."""
        self._open()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        _sync_directory(self.path.parent)
        self.release()

    def set_aside(self) -> None:
        """It cannot be read: renamed so that it is never claimed again, and kept."""
        self._open()
        with contextlib.suppress(FileNotFoundError):
            self.path.rename(self.path.with_name(self.path.name + UNREADABLE_SUFFIX))
        self.release()

    def release(self) -> None:
        """Let it go, for this process or another to claim later."""
        descriptor, self._descriptor = self._descriptor, None
        if descriptor is not None:
            os.close(descriptor)  # drops the lock
            _claimed.drop(self.path)

    def _open(self) -> int:
        if self._descriptor is None:
            raise RuntimeError(f"the claim of {self.path} was released")
        return self._descriptor


class Journal:
    """One store's journal on this machine: a directory of files."""

    def __init__(self, directory: Path, store: str) -> None:
        self.directory = directory
        #: The store's identity (``Store.identity``), written into every file.
        self.store = store

    @classmethod
    def of(cls, store: Store, environ: Mapping[str, str] | None = None) -> Journal | None:
        """The journal of ``store`` in the state directory; None for a store whose
        data does not outlive the process (no identity)."""
        identity = store.identity()
        if identity is None:
            return None
        digest = hashlib.sha256(identity.encode("utf-8")).hexdigest()[:32]
        return cls(state_directory(environ) / JOURNAL_DIR_NAME / digest, identity)

    # -- writing -----------------------------------------------------------------

    def keep(self, writes: Sequence[tuple[str, Write]]) -> Kept:
        """Write ``writes`` (each session's in order) to a new file, atomically.

        Raises ``OSError`` if the file cannot be written (nothing is left behind).
        """
        data, kept, left_out = encode_journal(self.store, writes)
        if not kept:
            return Kept(None, 0, left_out)
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        # Named by time first: files are written in the order they were kept.
        name = f"{time.time_ns():020d}-{os.getpid()}-{secrets.token_hex(4)}{JOURNAL_SUFFIX}"
        final = self.directory / name
        temporary = self.directory / (_TEMP_PREFIX + name)
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(descriptor, view) :]
                os.fsync(descriptor)
            finally:
                os.close(descriptor)
            os.rename(temporary, final)
        except BaseException:
            with contextlib.suppress(OSError):
                temporary.unlink()
            raise
        _sync_directory(self.directory)
        return Kept(final, kept, left_out)

    # -- claiming ------------------------------------------------------------------

    def pending(self) -> list[Path]:
        """The files waiting to be written, oldest first (none if there is no directory)."""
        try:
            entries = list(os.scandir(self.directory))
        except FileNotFoundError:
            return []
        waiting = []
        for entry in entries:
            if entry.name.startswith(_TEMP_PREFIX):
                self._remove_if_stale(entry)
            elif entry.name.endswith(JOURNAL_SUFFIX):
                waiting.append(Path(entry.path))
        return sorted(waiting, key=lambda path: path.name)

    def claim(self, path: Path) -> Claim | None:
        """Lock ``path`` for this process; None if another holds it or it is gone."""
        if not _claimed.take(path):
            return None
        try:
            descriptor = os.open(path, os.O_RDWR)
        except FileNotFoundError:
            _claimed.drop(path)
            return None
        except OSError:
            _claimed.drop(path)
            raise
        try:
            fcntl.lockf(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            # Done with (removed, or set aside) by whoever held it before us?
            current = os.stat(path)
            mine = os.fstat(descriptor)
            if (current.st_dev, current.st_ino) != (mine.st_dev, mine.st_ino):
                raise FileNotFoundError(path)
        except OSError as exc:
            os.close(descriptor)
            _claimed.drop(path)
            if isinstance(exc, FileNotFoundError) or exc.errno in (errno.EACCES, errno.EAGAIN):
                return None
            raise
        return Claim(path, descriptor)

    def _remove_if_stale(self, entry: os.DirEntry[str]) -> None:
        with contextlib.suppress(OSError):
            if time.time() - entry.stat().st_mtime > STALE_TEMP_S:
                os.unlink(entry.path)
                logger.info("removed %s, left half written by a process that died", entry.path)


def _sync_directory(directory: Path) -> None:
    """Make a rename or removal in ``directory`` durable (where the system allows)."""
    try:
        descriptor = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)
