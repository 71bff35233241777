"""`mallgate ledger ...`: an account's balance and its history with a reason per line.

These commands only read the store, so they are safe while the gateway runs.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
from pathlib import Path

import click

from gateway.clock import utc_now
from gateway.config_option import config_option
from gateway.ledger.service import account_entries
from gateway.loyalty import AccountState, fold
from gateway.members.tiers import TierRecord, tier_history
from gateway.settings.cli import load_or_exit
from gateway.store import Reader

CONFIG_OPTION = config_option


def _known(conn: sqlite3.Connection, account_id: str) -> bool:
    """Whether the store has heard of the account: its row, a member of it, or its own
    entries (sync may bring entries or members before the account itself)."""
    row = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM accounts WHERE id = ?) "
        "OR EXISTS (SELECT 1 FROM members WHERE account_id = ?) "
        "OR EXISTS (SELECT 1 FROM ledger WHERE account_id = ?)",
        (account_id, account_id, account_id),
    ).fetchone()
    return bool(row[0])


def _state(config_file: Path,
           account_id: str) -> tuple[AccountState, int, list[TierRecord]]:
    settings = load_or_exit(config_file, dict(os.environ))
    if not settings.store.path.exists():
        raise click.ClickException(f"no store at {settings.store.path}: has the gateway run?")

    async def read() -> tuple[AccountState, int, list[TierRecord]]:
        async with Reader(settings.store.path, connections=1) as reader:
            if not await reader.run(lambda conn: _known(conn, account_id)):
                raise click.ClickException(
                    f"no account {account_id} in the store at {settings.store.path}")
            rows = await account_entries(reader, account_id)
            tiers = await reader.run(lambda conn: tier_history(conn, account_id))
        entries = [entry for entry, _ in rows]
        state = fold(entries, utc_now(), reminder_days=settings.loyalty.expiry.reminder_days)
        confirmed = fold([e for e, acked in rows if acked], utc_now())
        return state, confirmed.available, tiers

    return asyncio.run(read())


@click.group("ledger")
def ledger_group() -> None:
    """Read an account's points ledger."""


@ledger_group.command("balance")
@CONFIG_OPTION
@click.argument("account_id")
def balance(config_file: Path, account_id: str) -> None:
    """Show ACCOUNT_ID's points: available (confirmed + pending), locked, debt."""
    state, confirmed, _ = _state(config_file, account_id)
    click.echo(f"account {account_id}: available {state.available} "
               f"(confirmed {confirmed}, pending {state.available - confirmed}), "
               f"locked {state.locked}, debt {state.debt}")
    for lot in state.open_lots():
        expires = lot.expires_at.date().isoformat() if lot.expires_at else "never"
        click.echo(f"  lot {lot.lot_id[:12]} {lot.remaining:>8} of {lot.granted:<8} "
                   f"{lot.status.value:<9} expires {expires}")


@ledger_group.command("history")
@CONFIG_OPTION
@click.argument("account_id")
def history(config_file: Path, account_id: str) -> None:
    """Replay ACCOUNT_ID's whole history: every step, its reason and the running balance,
    then its members' tier changes with theirs."""
    state, _, tiers = _state(config_file, account_id)
    for line in state.journal:
        click.echo(f"{line.at.isoformat(timespec='seconds')}  {line.event:<10} "
                   f"{line.available_delta:>+8} {line.locked_delta:>+8}  "
                   f"= {line.available:>8} (locked {line.locked}, debt {line.debt})  "
                   f"{line.reason}")
    for change in tiers:
        # An upgrade made here is provisional until central has decided on the tier since.
        status = change.confirmed or "provisional"
        click.echo(f"{change.at[:19]}  TIER       {change.member_id}: {change.from_tier} -> "
                   f"{change.to_tier} ({change.direction}, {change.origin}, {status})  "
                   f"{change.reason}")
