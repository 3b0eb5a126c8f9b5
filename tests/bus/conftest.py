"""Brokers for the bus tests: the filesystem transport, Redis and RabbitMQ.

Server URLs come from the environment (tests/servers.py); without one the
test skips. Each test gets an exchange of its own, since the servers are
shared with other test runs.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from kombu import Connection

from tests.servers import server_url

#: The transports that fan out across processes, each a real broker.
BROKER_KINDS = ("filesystem", "redis", "rabbitmq")


@dataclass(frozen=True)
class Broker:
    """How to reach one broker; every ``connection()`` is a new, unconnected one."""

    url: str
    transport_options: dict[str, Any] = field(default_factory=dict)
    #: An exchange no other test uses.
    exchange: str = field(default_factory=lambda: f"cpm.test.{uuid.uuid4().hex[:12]}")

    def connection(self) -> Connection:
        return Connection(self.url, transport_options=dict(self.transport_options))


def filesystem_broker(folder: Path) -> Broker:
    """A filesystem broker in ``folder``: messages and exchange tables are files there."""
    (folder / "control").mkdir(parents=True, exist_ok=True)
    options = {
        "data_folder_in": str(folder),
        "data_folder_out": str(folder),
        "control_folder": str(folder / "control"),
    }
    return Broker("filesystem://", options)


@pytest.fixture(params=BROKER_KINDS)
def broker(request: pytest.FixtureRequest, tmp_path: Path) -> Broker:
    """Each broker kind in turn: filesystem, Redis, RabbitMQ."""
    kind: str = request.param
    if kind == "filesystem":
        return filesystem_broker(tmp_path / "broker")
    return Broker(server_url(kind))
