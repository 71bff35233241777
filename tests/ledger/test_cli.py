from __future__ import annotations

import asyncio
from pathlib import Path

from click.testing import CliRunner

from gateway.cli import main
from gateway.ledger import Ledger
from gateway.ledger.tiers import upgrade_tiers_in
from gateway.loyalty.hlc import HybridClock
from gateway.settings import Settings
from gateway.store import Reader, Writer
from tests.loyalty.helpers import RULES, at, burn, earn


async def _fill(settings: Settings) -> None:
    path = settings.store.path
    async with Writer(path) as writer, Reader(path) as reader:
        ledger = Ledger(writer, reader, site="gw-test", clock=HybridClock("gw"), rules=RULES)
        synced = await ledger.record(earn(100, at(2026, 1, 1), key="a", expires_in_days=None))
        await ledger.record(burn(30, at(2026, 1, 2), key="coffee"))
        await ledger.acknowledge([(synced.entry.entry_id, 7)])


def test_balance_and_history_read_the_store(tmp_path: Path,
                                            gateway_settings: Settings) -> None:
    asyncio.run(_fill(gateway_settings))
    config = tmp_path / "gw.toml"
    config.write_text(f'[site]\nmall_id = "m"\ngateway_id = "g"\n'
                      f'[store]\npath = "{gateway_settings.store.path}"\n')
    runner = CliRunner()
    balance = runner.invoke(main, ["ledger", "balance", "--config", str(config), "A1"])
    assert balance.exit_code == 0, balance.output
    assert "available 70 (confirmed 100, pending -30), locked 0, debt 0" in balance.output
    history = runner.invoke(main, ["ledger", "history", "--config", str(config), "A1"])
    assert history.exit_code == 0, history.output
    lines = history.output.splitlines()
    assert len(lines) == 2
    assert "EARN" in lines[0] and "+100" in lines[0] and lines[0].endswith("earn a")
    assert "BURN" in lines[1] and "-30" in lines[1] and lines[1].endswith("burn coffee")


def test_reading_a_store_that_does_not_exist_says_so(tmp_path: Path) -> None:
    config = tmp_path / "gw.toml"
    config.write_text(f'[site]\nmall_id = "m"\ngateway_id = "g"\n'
                      f'[store]\npath = "{tmp_path / "none.db"}"\n')
    result = CliRunner().invoke(main, ["ledger", "balance", "--config", str(config), "A1"])
    assert result.exit_code == 1
    assert "no store at" in result.output


async def _upgrade(settings: Settings) -> None:
    path = settings.store.path
    async with Writer(path) as writer, Reader(path) as reader:
        ledger = Ledger(writer, reader, site="gw-test", clock=HybridClock("gw"), rules=RULES)
        await writer.submit(lambda conn: conn.execute(
            "INSERT INTO members (id, account_id, tier, updated_at) "
            "VALUES ('M1', 'A1', 'normal', '2026-01-01')"))
        spend = earn(600, at(2026, 1, 3), key="big", qual_fen=60_000)
        await ledger.record_with([spend], lambda conn, done: upgrade_tiers_in(ledger, conn,
                                                                                done))


def test_history_shows_tier_changes_with_their_reason(tmp_path: Path,
                                                      gateway_settings: Settings) -> None:
    asyncio.run(_upgrade(gateway_settings))
    config = tmp_path / "gw.toml"
    config.write_text(f'[site]\nmall_id = "m"\ngateway_id = "g"\n'
                      f'[store]\npath = "{gateway_settings.store.path}"\n')
    history = CliRunner().invoke(main, ["ledger", "history", "--config", str(config), "A1"])
    assert history.exit_code == 0, history.output
    tier = history.output.splitlines()[-1]
    assert "TIER" in tier and "M1: normal -> silver (upgrade, edge, provisional)" in tier
    assert "qualifying spend 600 yuan" in tier


async def _open_account(settings: Settings) -> None:
    path = settings.store.path
    async with Writer(path) as writer:
        await writer.submit(lambda conn: conn.execute(
            "INSERT INTO accounts (id, updated_at) VALUES ('A2', '2026-01-01')"))


def test_an_account_the_store_has_never_seen_is_an_error(tmp_path: Path,
                                                        gateway_settings: Settings) -> None:
    asyncio.run(_fill(gateway_settings))
    asyncio.run(_open_account(gateway_settings))
    config = tmp_path / "gw.toml"
    store = gateway_settings.store.path
    config.write_text(f'[site]\nmall_id = "m"\ngateway_id = "g"\n[store]\npath = "{store}"\n')
    runner = CliRunner()
    for command in ("balance", "history"):
        unknown = runner.invoke(main, ["ledger", command, "--config", str(config), "NOPE"])
        assert unknown.exit_code == 1, unknown.output
        assert unknown.stdout == ""
        assert f"no account NOPE in the store at {store}" in unknown.stderr
    known = runner.invoke(main, ["ledger", "balance", "--config", str(config), "A2"])
    assert known.exit_code == 0, known.output
    assert "account A2: available 0" in known.stdout
