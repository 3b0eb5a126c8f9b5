"""The ``filesystem://`` transport: exchange tables appear whole to processes binding at once."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

from kombu import Connection, Exchange, Queue

from celery_progress_mcp.celery.filesystem_transport import TRANSPORT

#: Processes binding queues to one new exchange at the same moment, and queues each.
PROCESSES = 6
QUEUES_EACH = 5


def _bind(folder: str, worker: int, start: multiprocessing.synchronize.Barrier) -> None:
    options = {"data_folder_in": folder, "data_folder_out": folder, "control_folder": folder}
    exchange = Exchange("shared", type="direct")
    start.wait()
    with Connection(transport=TRANSPORT, transport_options=options) as connection:
        channel = connection.channel()
        for index in range(QUEUES_EACH):
            name = f"q{worker}-{index}"
            Queue(name, exchange, routing_key=name, channel=channel).declare()


def test_processes_binding_to_a_new_exchange_at_once_all_succeed(tmp_path: Path) -> None:
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(PROCESSES)
    processes = [
        context.Process(target=_bind, args=(str(tmp_path), worker, start))
        for worker in range(PROCESSES)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(60)
    assert [process.exitcode for process in processes] == [0] * PROCESSES
    table = json.loads((tmp_path / "shared.exchange").read_text())
    assert len({entry[2] for entry in table}) == PROCESSES * QUEUES_EACH
