"""`mallgate central ...`: run the reference central server and issue its tokens."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from cloud_api.httpguard import HttpLimits, serve_app
from cloud_api.server.app import DEFAULT_RETENTION_DAYS, create_central_app
from cloud_api.server.enrolment import WebhookSender
from cloud_api.server.limits import CentralLimits
from cloud_api.server.phones import PhoneKeys, SecretFileError, parse_hash_keys, read_secret
from cloud_api.server.postgres_store import PostgresStorage
from cloud_api.server.sqlite_store import SqliteStorage
from cloud_api.server.storage import Storage
from cloud_api.server.webhooks import DeliveryPolicy, load_webhooks


def open_storage(db: Path, dsn: str | None, phones: PhoneKeys | None = None,
                 coupon_keys: dict[str, bytes] | None = None) -> Storage:
    if dsn:
        return PostgresStorage(dsn, phones=phones, coupon_keys=coupon_keys)
    db.parent.mkdir(parents=True, exist_ok=True)
    return SqliteStorage(db, phones=phones, coupon_keys=coupon_keys)


_db = click.option("--db", type=click.Path(path_type=Path, dir_okay=False),
                   default=Path("var/central.db"), show_default=True,
                   help="SQLite database file (when no --dsn is given).")
_dsn = click.option("--dsn", envvar="MALLGATE_CENTRAL_DSN", default=None,
                    help="PostgreSQL DSN; also from MALLGATE_CENTRAL_DSN. Unset: SQLite.")


F = TypeVar("F", bound=Callable[..., Any])

# Central logs as the gateway does (JSON or readable lines, personal data masked on every
# handler). That setup is the gateway's, and central imports nothing of the gateway but the
# loyalty domain, so it is handed over: the composition root that mounts this group
# (gateway/app/central.py) puts it in the click context's meta under `LOG_SETUP`.
LogSetup = Callable[[str, str], None]  # (level, format)
LOG_SETUP = "mallgate.log_setup"


def _set_up_logging(level: str, log_format: str) -> None:
    setup = click.get_current_context().meta.get(LOG_SETUP)
    if setup is None:  # never log personal data unmasked: no setup, no server
        raise click.UsageError("central's log setup is missing: run it as "
                               "`mallgate central serve`")
    setup(level, log_format)


def _limit_options(command: F) -> F:
    """One option per limit of `CentralLimits` (`--max-points`, ...), with its default and
    description, so the CLI and the settings cannot drift apart."""
    for name, field in reversed(CentralLimits.model_fields.items()):
        command = click.option(
            "--" + name.replace("_", "-"), name, type=click.IntRange(min=1),
            default=field.default, show_default=True, help=field.description)(command)
    return command


@click.group("central")
def central_group() -> None:
    """The reference central member API (the cloud side of sync)."""


@central_group.command("serve")
@_db
@_dsn
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(1, 65535), default=8090, show_default=True)
@click.option("--retention-days", type=click.FloatRange(min=0, min_open=True),
              default=DEFAULT_RETENTION_DAYS, show_default=True,
              help="How long the change log (tombstones included) is kept; older cursors "
              "get 410 and gateways resync from a snapshot.")
@click.option("--phone-key-file", type=click.Path(path_type=Path, dir_okay=False),
              default=None, help="Each mall's phone hash key, one `mall=key` line per mall "
              "(the key as in the mall's [kiosk] phone_hash_key); readable by its owner "
              "only. Without a mall's key its members' numbers are kept masked only and "
              "cannot be looked up by phone.")
@click.option("--phone-encryption-key-file", type=click.Path(path_type=Path, dir_okay=False),
              default=None, help="A Fernet key: keep each phone number too, encrypted with "
              "it (readable by its owner only). Unset: central keeps no number it could "
              "read back.")
@click.option("--log-format", type=click.Choice(["console", "json"]), default="console",
              show_default=True, envvar="MALLGATE_CENTRAL_LOG_FORMAT", show_envvar=True,
              help="`console`: readable lines for a terminal; `json`: one JSON object per "
              "line for a log collector (production). Personal data is masked in both.")
@click.option("--log-level", type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"]),
              default="INFO", show_default=True, envvar="MALLGATE_CENTRAL_LOG_LEVEL",
              show_envvar=True, help="Least severe level that is logged.")
@click.option("--webhook-file", type=click.Path(path_type=Path, dir_okay=False),
              default=None, help="Webhooks member notices are delivered to, one "
              "`mall_id name url secret` line each (readable by its owner only). Unset: "
              "notices are kept and readable by API, not delivered.")
@click.option("--webhook-max-attempts", type=click.IntRange(min=1),
              default=DeliveryPolicy().max_attempts, show_default=True,
              help="Attempts before a delivery is dead (listed by `central webhooks dead`).")
@click.option("--webhook-timeout-s", type=click.FloatRange(min=0, min_open=True),
              default=DeliveryPolicy().timeout_s, show_default=True,
              help="How long one delivery may take; a worker that dies mid-send leaves "
              "it to others after six times this.")
@click.option("--code-webhook", default=None, metavar="URL",
              help="Where enrolment codes are sent: central POSTs {mall_id, phone, code, "
              "expires_at} to the SMS gateway at URL. Unset: each code is written to "
              "central's log, the number masked (a demo).")
@click.option("--coupon-key-file", type=click.Path(path_type=Path, dir_okay=False),
              default=None, help="Each mall's coupon key, one `mall=key` line per mall (the "
              "key as in the mall's [site] coupon_key); readable by its owner only. Without "
              "a mall's key the codes central issues are as random, under a key that lasts "
              "the run.")
@_limit_options
def serve(db: Path, dsn: str | None, host: str, port: int, retention_days: float, *,
          phone_key_file: Path | None, phone_encryption_key_file: Path | None,
          log_format: str, log_level: str, webhook_file: Path | None,
          webhook_max_attempts: int, webhook_timeout_s: float, code_webhook: str | None,
          coupon_key_file: Path | None, **limits: int) -> None:
    """Serve the central API until SIGINT or SIGTERM."""
    try:
        settings = CentralLimits(**limits)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    try:
        phones = PhoneKeys.load(phone_key_file, phone_encryption_key_file)
        webhooks = load_webhooks(webhook_file)
        coupon_keys = parse_hash_keys(read_secret(coupon_key_file)) if coupon_key_file else {}
    except SecretFileError as exc:
        raise click.UsageError(str(exc)) from None
    _set_up_logging(log_level, log_format)
    app = create_central_app(open_storage(db, dsn, phones, coupon_keys),
                             retention_s=retention_days * 86400, limits=settings,
                             review_tiers=True, grant_birthdays=True, remind_expiry=True,
                             webhooks=webhooks, delivery=DeliveryPolicy.with_timeout(
                                 webhook_timeout_s, max_attempts=webhook_max_attempts),
                             code_sender=WebhookSender(code_webhook) if code_webhook else None)
    click.echo(f"central listening on http://{host}:{port}")
    # Bounded connections and a deadline for request headers: slow clients cannot hold
    # every descriptor (cloud_api/httpguard.py).
    asyncio.run(serve_app(app, host, port, HttpLimits()))


@central_group.command("token")
@_db
@_dsn
@click.option("--mall", required=True, help="Mall the token is scoped to.")
@click.option("--gateway", default=None, help="Gateway id (a gateway token).")
@click.option("--admin", is_flag=True, help="A back-office token for the mall instead.")
def token(db: Path, dsn: str | None, mall: str, gateway: str | None, admin: bool) -> None:
    """Issue a bearer token; it is printed once and stored only as a hash."""
    if admin == (gateway is not None):
        raise click.UsageError("give either --gateway ID or --admin")

    async def issue() -> str:
        storage = open_storage(db, dsn)
        await storage.open()
        try:
            return await storage.add_token(mall, "admin" if admin else "gateway", gateway)
        finally:
            await storage.close()

    click.echo(asyncio.run(issue()))


@central_group.group("webhooks")
def webhooks_group() -> None:
    """Webhook deliveries of member notices: the dead ones, and sending them again."""


async def _with_storage(db: Path, dsn: str | None, use: Callable[[Storage], Any]) -> Any:
    storage = open_storage(db, dsn)
    await storage.open()
    try:
        return await use(storage)
    finally:
        await storage.close()


@webhooks_group.command("dead")
@_db
@_dsn
@click.option("--mall", required=True, help="The mall whose dead deliveries to list.")
@click.option("--limit", type=click.IntRange(1, 1000), default=100, show_default=True)
def webhooks_dead(db: Path, dsn: str | None, mall: str, limit: int) -> None:
    """List deliveries given up after the bound of attempts, one JSON object a line."""
    dead = asyncio.run(_with_storage(db, dsn, lambda s: s.dead_deliveries(mall, limit)))
    for row in dead:
        click.echo(json.dumps(row, ensure_ascii=False))


@webhooks_group.command("retry")
@_db
@_dsn
@click.option("--mall", required=True, help="The mall whose dead deliveries to retry.")
@click.option("--notice", "notices", multiple=True,
              help="A notice id to retry (repeatable); none: every dead delivery.")
def webhooks_retry(db: Path, dsn: str | None, mall: str, notices: tuple[str, ...]) -> None:
    """Make dead deliveries pending again; a running central sends them at once."""
    retried = asyncio.run(_with_storage(
        db, dsn, lambda s: s.retry_dead(mall, list(notices) if notices else None)))
    click.echo(f"{retried} deliveries pending again")
