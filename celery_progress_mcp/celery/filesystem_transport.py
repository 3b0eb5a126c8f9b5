"""The ``filesystem://`` transport, with messages and exchange tables that appear whole.

kombu's filesystem transport creates a message file and then writes it,
while a consumer polling the folder moves and reads any file it sees: it
can take one that is still empty and lose the message (a task that never
runs, a progress event that never arrives). This transport writes each
message under a name no consumer looks at and renames it into place, which
is atomic on one filesystem.

kombu creates an exchange's table the same way (create, then lock and
write): a process binding a queue at that moment reads it empty and fails
(``JSONDecodeError`` from ``delay()``, seen with a worker and a client
starting together). Here a new table is written aside and linked into
place only if none exists, atomically; adding to an existing one is
kombu's, under its lock. Everything else is kombu's.

``install(app)`` selects it for an app whose broker is ``filesystem://``
and that names no ``broker_transport`` of its own.
"""

from __future__ import annotations

import os
import uuid
from time import monotonic
from typing import Any

from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps

__all__ = ["TRANSPORT", "Channel", "Transport"]

#: What ``broker_transport`` is set to (``module:Class``, as kombu resolves it).
TRANSPORT = "celery_progress_mcp.celery.filesystem_transport:Transport"
#: Suffix of a message file being written; consumers only take ``.msg`` files.
PARTIAL_SUFFIX = ".part"


class Channel(filesystem.Channel):  # type: ignore[misc]
    def _put(self, queue: str, payload: Any, **kwargs: Any) -> None:
        """Put ``payload`` onto ``queue``: written aside, then renamed into place."""
        name = f"{round(monotonic() * 1000)}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        partial = final + PARTIAL_SUFFIX
        try:
            with open(partial, "wb") as file:
                file.write(str_to_bytes(dumps(payload)))
            os.replace(partial, final)
        except OSError as exc:
            raise ChannelError(f"Cannot add file {final!r} to directory") from exc

    def _queue_bind(self, exchange: str, routing_key: str, pattern: str, queue: str) -> None:
        """Bind ``queue`` to ``exchange``: a new table appears whole (see the module)."""
        table = self._exchange_file(exchange)
        self.control_folder.mkdir(exist_ok=True)
        if not table.exists():
            entry = filesystem.exchange_queue_t(routing_key or "", pattern or "", queue or "")
            partial = f"{table}.{uuid.uuid4().hex}{PARTIAL_SUFFIX}"
            try:
                with open(partial, "wb") as file:
                    file.write(str_to_bytes(dumps([entry])))
                try:
                    os.link(partial, table)  # fails if another process made it meanwhile
                    return
                except FileExistsError:
                    pass  # then add to theirs, as kombu does
                finally:
                    os.unlink(partial)
            except OSError as exc:
                raise ChannelError(f"Cannot open {table}") from exc
        super()._queue_bind(exchange, routing_key, pattern, queue)


class Transport(filesystem.Transport):  # type: ignore[misc]
    Channel = Channel
