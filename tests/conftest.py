"""Shared fixtures: settings for a gateway under test on a temporary store."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from gateway.settings import Settings


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def gateway_settings(tmp_path: Path) -> Settings:
    return Settings.model_validate_json(
        '{"site": {"mall_id": "test-mall", "gateway_id": "gw-test"},'
        f' "store": {{"path": "{tmp_path / "gw.db"}"}},'
        f' "http": {{"port": {free_port()}}}}}'
    )
