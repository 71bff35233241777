"""`mallgate pos ...`: installer tools for POS lines, read from the store and the configuration.

`captures list|show` shows what the gateway captured (the decoded text with line numbers,
and the exact bytes written to a file); `try-template` reads a capture or a file with the
store's template from the configuration and says what each field matched, on which line,
and how the receipt is classified. Nothing here writes to the store.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import click

from devices.pos import captures
from devices.pos.errors import ReceiptParseError
from devices.pos.explain import explain, render
from devices.pos.reading import compile_template
from devices.pos.templates import receipt_from_payload
from gateway.config_option import config_option
from gateway.settings import Settings
from gateway.settings.cli import load_or_exit
from gateway.store import open_reader

CONFIG_OPTION = config_option


@click.group("pos")
def pos_group() -> None:
    """POS installer tools: stored captures and trying receipt templates."""


@pos_group.group("captures")
def captures_group() -> None:
    """Print jobs, frames and lines as the POS sent them, kept in the store."""


def _settings(config_file: Path) -> Settings:
    return load_or_exit(config_file, dict(os.environ))


def _store(settings: Settings) -> Path:
    if not settings.store.path.exists():
        raise click.ClickException(f"no store at {settings.store.path}: has the gateway run?")
    return settings.store.path


def _capture(settings: Settings, capture_id: int) -> tuple[captures.CaptureRow, bytes]:
    conn = open_reader(_store(settings))
    try:
        found = captures.get_capture(conn, capture_id)
    finally:
        conn.close()
    if found is None:
        raise click.ClickException(f"no capture {capture_id} (see mallgate pos captures list)")
    return found


def _encoding(settings: Settings, store_id: str, pos_id: str | None = None) -> str:
    ports = [p for p in settings.pos.ports
             if p.store_id == store_id and pos_id in (None, p.pos_id)]
    return ports[0].encoding if ports else "gb18030"


@captures_group.command("list")
@CONFIG_OPTION
@click.option("--store", "store_id", default=None, help="Only this store's captures.")
@click.option("--limit", type=click.IntRange(1), default=50, show_default=True)
def list_command(config_file: Path, store_id: str | None, limit: int) -> None:
    """List the newest captures: id, store, POS, mode, time, status, size."""
    settings = _settings(config_file)
    conn = open_reader(_store(settings))
    try:
        rows = captures.list_captures(conn, store_id=store_id, limit=limit)
    finally:
        conn.close()
    for row in rows:
        made = (f"receipt {row.receipt_id}" if row.receipt_id is not None else
                f"dead letter {row.dead_letter_id}" if row.dead_letter_id is not None else "")
        click.echo(f"{row.id:>7} {row.store_id:<8} {row.pos_id:<6} {row.mode:<6} "
                   f"{row.received_at} {row.status:<9} {row.size:>7} B  {made}".rstrip())
    click.echo(f"{len(rows)} capture(s)")


@captures_group.command("show")
@click.argument("capture_id", type=int)
@CONFIG_OPTION
@click.option("--raw", "raw_file", type=click.Path(path_type=Path, dir_okay=False),
              default=None, help="Write the capture's exact bytes to this file.")
def show_command(capture_id: int, config_file: Path, raw_file: Path | None) -> None:
    """Show capture CAPTURE_ID as text with line numbers; --raw writes its bytes."""
    settings = _settings(config_file)
    row, raw = _capture(settings, capture_id)
    click.echo(f"capture {row.id}: store {row.store_id}, POS {row.pos_id}, {row.mode}, "
               f"{row.received_at}, {row.status}, {len(raw)} bytes")
    if not raw:
        click.echo("its bytes were pruned ([store] pos_capture_retention_days)")
        return
    decoded = captures.decode(row.mode, raw, _encoding(settings, row.store_id, row.pos_id))
    for line in captures.numbered(decoded.text):
        click.echo(line)
    for number, code in enumerate(decoded.codes, start=1):
        click.echo(f"code {number}: {code}")
    if raw_file is not None:
        raw_file.write_bytes(raw)
        click.echo(f"wrote {len(raw)} bytes to {raw_file}", err=True)


@pos_group.command("try-template")
@CONFIG_OPTION
@click.option("--store", "store_id", required=True, help="Whose template to try.")
@click.option("--capture", "capture_id", type=int, default=None,
              help="A stored capture to read (see pos captures list).")
@click.option("--text", "as_text", is_flag=True,
              help="FILE is UTF-8 text, not the bytes the printer got.")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False, exists=True),
                required=False)
def try_template(config_file: Path, store_id: str, capture_id: int | None, as_text: bool,
                 file: Path | None) -> None:
    """Read a capture or FILE with the store's template: every field, its line and why."""
    if (capture_id is None) == (file is None):
        raise click.UsageError("give either --capture ID or FILE")
    settings = _settings(config_file)
    if capture_id is not None:
        row, raw = _capture(settings, capture_id)
        mode, encoding = row.mode, _encoding(settings, row.store_id, row.pos_id)
        if not raw:
            raise click.ClickException(f"capture {capture_id}'s bytes were pruned")
    else:
        assert file is not None  # noqa: S101 - checked above
        raw, mode, encoding = file.read_bytes(), "escpos", _encoding(settings, store_id)
    if mode != "escpos":
        _try_payload(settings, mode, raw)
        return
    template = settings.pos.template_for(store_id)
    if template is None:
        raise click.ClickException(f"no [[pos.templates]] for store {store_id} in {config_file}")
    decoded = (captures.Decoded(raw.decode("utf-8", "replace"), []) if as_text
               else captures.decode("escpos", raw, encoding))
    for line in captures.numbered(decoded.text):
        click.echo(line)
    for number, code in enumerate(decoded.codes, start=1):
        click.echo(f"code {number}: {code}")
    explanation = explain(compile_template(template), decoded.text, decoded.codes,
                          settings.loyalty.tz)
    for line in render(explanation):
        click.echo(line)


def _try_payload(settings: Settings, mode: str, raw: bytes) -> None:
    """framed / jsonl captures carry JSON, not printed text: no template reads them."""
    decoded = captures.decode(mode, raw)
    for line in captures.numbered(decoded.text):
        click.echo(line)
    click.echo(f"a {mode} capture is JSON, read without a template")
    try:
        receipt = receipt_from_payload(json.loads(decoded.text), settings.loyalty.tz)
    except ReceiptParseError as exc:
        click.echo(f"result: dead letter ({exc.code}: {exc.reason})")
    except ValueError:
        click.echo("result: dead letter (not one JSON receipt)")
    else:
        click.echo(f"result: {receipt.kind.value} {receipt.receipt_no} total "
                   f"{receipt.total_fen} fen, member {receipt.member_code or 'none'}")
