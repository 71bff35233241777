from __future__ import annotations

from gateway.central import CentralStatus


def test_standalone_gateway_is_its_own_authority() -> None:
    assert CentralStatus(configured=False).online() is True


def test_with_a_central_only_what_sync_reports_counts() -> None:
    status = CentralStatus(configured=True)
    assert status.online() is False  # before sync started
    reachable = [True]
    status.attach(lambda: reachable[0])
    assert status.online() is True
    reachable[0] = False
    assert status.online() is False
    reachable[0] = True
    status.detach()
    assert status.online() is False  # sync stopped
