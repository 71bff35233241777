"""`mallgate central rules ...`: publish a mall's loyalty rules to central, list its versions.

The rules are the `[loyalty]` section of a gateway configuration, read by the settings
loader like every other command's (`--config`), so what is published is exactly what a
gateway running that file would apply, checked by the same schema. Central checks it again
and is the judge: its refusal (400 `invalid_rules`, 409 `rules_version_exists`) is printed
with the reason. The back-office token is read from an owner-only file, as the gateway's
own (`gateway.secret_file`).

Mounted in `mallgate central` by gateway/app/central.py. The settings models and the
central client are imported inside the commands: `mallgate --help` loads neither.
Exit codes: 0 done; 1 central refused or could not be reached; 2 bad options, an invalid
configuration or an unusable token file.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from gateway.config_option import config_option
from gateway.secret_file import TokenFileError, read_token_file

if TYPE_CHECKING:
    from cloud_api.client import CentralClient

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])


def _url(*, required: bool = True) -> Callable[[F], F]:
    return click.option("--url", required=required,
                        help="Central's base URL, as in the gateway's [central] url.")


def _mall(*, required: bool = True) -> Callable[[F], F]:
    return click.option("--mall", required=required,
                        help="The mall whose rules these are.")


def _token_file(*, required: bool = True) -> Callable[[F], F]:
    return click.option(
        "--token-file", type=click.Path(path_type=Path, dir_okay=False), required=required,
        help="A file holding a back-office token of the mall (`mallgate central token "
        "--admin`), readable by its owner only (chmod 600).")


_ca_file = click.option(
    "--ca-file", type=click.Path(path_type=Path, dir_okay=False, exists=True), default=None,
    help="CA certificate that signed central's (a private CA); default: the system's CAs.")
_timeout = click.option("--timeout", "timeout_s", type=click.FloatRange(min=0, min_open=True),
                        default=10.0, show_default=True, help="Seconds to wait for central.")


@click.group("rules")
def rules_group() -> None:
    """A mall's loyalty rules at central: publish a version, list the versions."""


def _token(token_file: Path) -> str:
    try:
        return read_token_file(token_file)
    except TokenFileError as exc:
        raise click.BadParameter(f"{exc.problem}; {exc.allowed}",
                                 param_hint="'--token-file'") from None


def _at_central(url: str, token: str, ca_file: Path | None, timeout_s: float,
                call: Callable[[CentralClient], Awaitable[T]]) -> T:
    """`call` with a client of central; a failure exits 1 with one line saying why."""
    from cloud_api.client import CentralClient  # noqa: PLC0415 - only these commands
    from cloud_api.errors import (  # noqa: PLC0415
        CentralAuthError,
        CentralError,
        CentralRejected,
        CentralUnavailable,
    )

    async def run() -> T:
        async with CentralClient(url, token, timeout_s=timeout_s, ca_file=ca_file) as client:
            return await call(client)

    try:
        return asyncio.run(run())
    except CentralUnavailable as exc:
        raise click.ClickException(f"central unreachable: {exc}") from None
    except CentralAuthError as exc:
        raise click.ClickException(f"central refused the token: {exc}") from None
    except CentralRejected as exc:
        reason = exc.details.get("reason")
        raise click.ClickException(
            f"central refused it ({exc.code}): {reason if reason else exc}") from None
    except CentralError as exc:
        raise click.ClickException(f"central failed: {exc}") from None


def _effective_at(value: str | None) -> str | None:
    """The `--effective-at` as given, checked as central checks it (ISO-8601 with its
    offset); None leaves the time to central: now, by its clock."""
    if value is None:
        return None
    from gateway.loyalty.errors import InvalidRules  # noqa: PLC0415
    from gateway.loyalty.versions import parse_effective_at  # noqa: PLC0415

    try:
        parse_effective_at(value, "")
    except InvalidRules as exc:
        raise click.BadParameter(exc.reason, param_hint="'--effective-at'") from None
    return value


@rules_group.command("publish")
@config_option
@_url(required=False)  # the dry run needs neither central nor a token
@_mall(required=False)
@_token_file(required=False)
@click.option("--version", "version", default=None,
              help="The version to publish the rules as; default: their own "
              "[loyalty] version. Every entry records it, so a version names one set of "
              "rules forever: changed rules need a new version.")
@click.option("--effective-at", default=None,
              help="When the rules come into force: ISO-8601 with its UTC offset "
              "(2026-07-01T00:00:00+08:00); default: now, by central's clock.")
@click.option("--dry-run", is_flag=True,
              help="Print the JSON document that would be published; publish nothing.")
@_ca_file
@_timeout
def publish(config_file: Path, url: str | None, mall: str | None, *, token_file: Path | None,
            version: str | None, effective_at: str | None, dry_run: bool,
            ca_file: Path | None, timeout_s: float) -> None:
    """Publish the [loyalty] rules of a gateway configuration to central as a version."""
    from gateway.loyalty.versions import rules_document  # noqa: PLC0415
    from gateway.settings.cli import load_or_exit  # noqa: PLC0415 - not for `--help`

    when = _effective_at(effective_at)
    settings = load_or_exit(config_file, dict(os.environ))
    version = settings.loyalty.version if version is None else version
    # The document's own version is the published one (central refuses a mismatch).
    document = rules_document(settings.loyalty) | {"version": version}
    if dry_run:  # the body of the PUT; without `effective_at`, central's now
        timing = {} if when is None else {"effective_at": when}
        body = {"version": version, **timing, "payload": document}
        click.echo(json.dumps(body, ensure_ascii=False, indent=2))
        return
    if url is None or mall is None or token_file is None:
        missing = [name for name, value in (("--url", url), ("--mall", mall),
                                            ("--token-file", token_file)) if value is None]
        raise click.UsageError(f"publishing needs {', '.join(missing)} (only --dry-run "
                               f"does without)")
    token = _token(token_file)
    published = _at_central(url, token, ca_file, timeout_s, lambda client: (
        client.publish_rules(mall, version, document, effective_at=when)))
    if published.duplicate:
        click.echo(f"rules version {published.version} of mall {mall} was already "
                   f"published with these rules: in force from {published.effective_at} "
                   f"(server_seq {published.server_seq}); nothing changed")
    else:
        click.echo(f"published rules version {published.version} of mall {mall}: in "
                   f"force from {published.effective_at} "
                   f"(server_seq {published.server_seq})")


@rules_group.command("list")
@_url()
@_mall()
@_token_file()
@click.option("--json", "as_json", is_flag=True, help="Print central's answer as JSON.")
@_ca_file
@_timeout
def list_versions(url: str, mall: str, *, token_file: Path, as_json: bool,
                  ca_file: Path | None, timeout_s: float) -> None:
    """List the mall's rules versions at central by effective time, marking the one in
    force now."""
    token = _token(token_file)
    listed = _at_central(url, token, ca_file, timeout_s,
                         lambda client: client.list_rules(mall))
    if as_json:
        click.echo(json.dumps(listed, ensure_ascii=False, indent=2))
        return
    versions: list[dict[str, Any]] = listed["versions"]
    if not versions:
        click.echo(f"mall {mall}: no rules version published; central's own rules apply")
        return
    width = max(len("VERSION"), *(len(v["version"]) for v in versions))
    click.echo(f"{'VERSION':<{width}}  {'EFFECTIVE_AT':<32}  {'PUBLISHED_AT':<32}  "
               f"{'SERVER_SEQ':>10}")
    for v in versions:
        mark = "  in force" if v["in_force"] else ""
        click.echo(f"{v['version']:<{width}}  {v['effective_at']:<32}  "
                   f"{v['published_at']:<32}  {v['server_seq']:>10}{mark}")
