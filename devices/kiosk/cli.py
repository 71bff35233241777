"""`mallgate kiosk ...` (credentials, demo QR tokens) and `mallgate sim kiosk`."""

from __future__ import annotations

import asyncio
import os
import secrets
import statistics
from datetime import timedelta
from pathlib import Path

import click

from devices.kiosk.sim import run_sessions
from devices.mqtt.acl import Role, with_login
from devices.mqtt.passwd import with_password, write_broker_file
from gateway.clock import utc_now
from gateway.config_option import config_option
from gateway.demo import demo_ids
from gateway.members import make_qr_token
from gateway.settings.cli import load_or_exit

_CONFIG = config_option


@click.group("kiosk")
def kiosk_group() -> None:
    """Kiosks and BLE receivers over MQTT: broker logins and demo QR tokens."""


_PASSWD = click.option(
    "--passwd-file", type=click.Path(path_type=Path, dir_okay=False),
    default=Path("/etc/mosquitto/mallgate/passwd"), show_default=True,
    help="mosquitto's password file (config/mosquitto/mallgate.conf reads it).")
_ACL = click.option(
    "--acl-file", type=click.Path(path_type=Path, dir_okay=False),
    default=Path("/etc/mosquitto/mallgate/acl"), show_default=True,
    help="mosquitto's ACL file (config/mosquitto/acl, with {site} replaced).")
_SITE = click.option("--site", required=True, help="The mall id ([site] mall_id).")


@kiosk_group.command("add")
@click.argument("kid")
@_SITE
@_PASSWD
@_ACL
def add(kid: str, site: str, passwd_file: Path, acl_file: Path) -> None:
    """Create (or renew) kiosk KID's broker login and print its password once.

    The login gets the kiosk role in the ACL: it writes only
    lty/v1/SITE/kiosk/KID/req|evt|status and reads only .../rsp and .../cmd. Reload the
    broker afterwards (systemctl reload mosquitto) so it reads the new files.
    """
    _add_login("kiosk", kid, site, passwd_file, acl_file)


@kiosk_group.command("add-receiver")
@click.argument("rid")
@_SITE
@_PASSWD
@_ACL
def add_receiver(rid: str, site: str, passwd_file: Path, acl_file: Path) -> None:
    """Create (or renew) BLE receiver RID's broker login and print its password once.

    The login gets the receiver role in the ACL: it writes only
    lty/v1/SITE/receiver/RID/adv and .../status, and can never act as a kiosk. Reload the
    broker afterwards (systemctl reload mosquitto).
    """
    _add_login("receiver", rid, site, passwd_file, acl_file)


def _add_login(role: Role, login: str, site: str, passwd_file: Path, acl_file: Path) -> None:
    try:
        acl = with_login(acl_file.read_text(encoding="utf-8") if acl_file.exists() else "",
                         role, site, login)
    except ValueError as exc:  # a bad id or site, or an ACL that cannot take the login
        raise click.ClickException(f"{acl_file}: {exc}") from None
    password = secrets.token_urlsafe(18)
    old = passwd_file.read_text(encoding="utf-8") if passwd_file.exists() else ""
    warnings = [write_broker_file(passwd_file, with_password(old, login, password)),
                write_broker_file(acl_file, acl)]
    for warning in filter(None, warnings):
        click.echo(f"warning: {warning}", err=True)
    click.echo(f"{role} {login}: username {login}, password {password}")
    click.echo(f"Give these to the {role} (they are not shown again), then reload mosquitto.")


@kiosk_group.command("qr-token")
@_CONFIG
@click.argument("member_id")
@click.option("--minutes", default=5, show_default=True, type=click.IntRange(1, 60),
              help="How long the token is valid.")
def qr_token(config_file: Path, member_id: str, minutes: int) -> None:
    """Print a member QR token signed with [kiosk] qr_key, as central issues them.

    For the demo and for testing a kiosk: in production central signs the tokens.
    """
    settings = load_or_exit(config_file, dict(os.environ))
    if settings.kiosk.qr_key is None:
        raise click.ClickException("[kiosk] qr_key is not set in this configuration")
    expires = utc_now() + timedelta(minutes=minutes)
    click.echo(make_qr_token(settings.kiosk.qr_key.get_secret_value().encode(), member_id,
                             expires))


@click.command("kiosk")
@_CONFIG
@click.option("--kiosks", default=3, show_default=True, type=click.IntRange(1, 500))
@click.option("--sessions", default=10, show_default=True, type=click.IntRange(1, 100_000),
              help="Visitor sessions per kiosk.")
@click.option("--members", default=20, show_default=True, type=click.IntRange(1, 1_000_000),
              help="Visitors are demo members 1..N (cards DEMO0001...).")
def sim_kiosk(config_file: Path, kiosks: int, sessions: int, members: int) -> None:
    """Play kiosks through member sessions against the running gateway's broker.

    Each session identifies a demo member by card, queries the balance, checks in and now
    and then redeems a gift, through the same broker and topics a real kiosk uses.
    """
    settings = load_or_exit(config_file, dict(os.environ))
    k = settings.kiosk
    host = "127.0.0.1" if k.broker == "embedded" else k.host
    cards = [demo_ids(n)[2] for n in range(1, members + 1)]
    stats = asyncio.run(run_sessions(host, k.port, settings.site.mall_id, kiosks=kiosks,
                                     sessions=sessions, cards=cards))
    click.echo(f"{stats.requests} requests from {kiosks} kiosks")
    for outcome, count in sorted(stats.by_outcome.items()):
        click.echo(f"  {outcome:40} {count}")
    if len(stats.latencies_ms) >= 2:
        cuts = statistics.quantiles(stats.latencies_ms, n=100)
        click.echo(f"request->reply p50 {cuts[49]:.1f} ms, p99 {cuts[98]:.1f} ms")
