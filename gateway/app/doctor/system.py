"""Checks of the machine: free disk, the store's integrity, secrets' permissions, descriptors."""

from __future__ import annotations

import asyncio
import resource
import shutil
import sqlite3
import stat
import tomllib
from pathlib import Path

from gateway.app.doctor.model import Finding, Result
from gateway.settings import Settings
from gateway.store.lock import holder, is_locked

MIB = 1024 * 1024
DISK_FAIL_BYTES = 256 * MIB  # the WAL of a busy hour and a checkpoint need room
DISK_WARN_BYTES = 1024 * MIB
# Descriptors the gateway uses besides HTTP connections: the store's writer and readers
# with their WAL and shared-memory files, the broker link, central's connection pool,
# logs, and a margin for the libraries.
BASE_DESCRIPTORS = 64
CENTRAL_DESCRIPTORS = 16


def _existing(path: Path) -> Path:
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return Path("/")


async def disk(settings: Settings) -> list[Finding]:
    where = _existing(settings.store.path.resolve().parent)
    usage = await asyncio.to_thread(shutil.disk_usage, where)
    free = f"{usage.free // MIB} MiB free of {usage.total // MIB} MiB at {where}"
    fix = (f"free space on the filesystem of {where}, or move [store] path to a larger disk "
           "that survives reboots")
    if usage.free < DISK_FAIL_BYTES:
        return [Finding("disk", Result.FAIL, free, fix)]
    if usage.free < DISK_WARN_BYTES:
        return [Finding("disk", Result.WARN, free, fix)]
    return [Finding("disk", Result.OK, free)]


def _quick_check(path: Path) -> list[str]:
    conn = sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True)
    try:
        return [str(row[0]) for row in conn.execute("PRAGMA quick_check").fetchall()]
    finally:
        conn.close()


async def database(settings: Settings) -> list[Finding]:
    path = settings.store.path
    if not path.exists():
        return [Finding("database", Result.SKIP,
                        f"no store at {path} yet: the gateway creates it at its first start")]
    running = (f"; in use by the running gateway (PID {holder(path)})" if is_locked(path)
               else "")
    fix = (f"stop the gateway, keep a copy of {path}, then restore the last backup, or "
           f"salvage it: sqlite3 {path} .recover | sqlite3 recovered.db")
    try:
        rows = await asyncio.to_thread(_quick_check, path)
    except sqlite3.DatabaseError as exc:
        return [Finding("database", Result.FAIL, f"{path}: {exc}", fix)]
    if rows == ["ok"]:
        return [Finding("database", Result.OK, f"{path}: quick_check ok{running}")]
    shown = "; ".join(rows[:3]) + (f" (+{len(rows) - 3} more)" if len(rows) > 3 else "")
    return [Finding("database", Result.FAIL, f"{path}: {shown}", fix)]


# Keys whose value is a secret when written in the configuration file itself.
_INLINE_SECRETS = (("central", "token"), ("kiosk", "password"), ("kiosk", "qr_key"),
                   ("kiosk", "phone_hash_key"), ("http", "ops_token"))


def _open_to_others(path: Path) -> int | None:
    """The file's mode when group or others may read (or write) it, else None."""
    mode = stat.S_IMODE(path.stat().st_mode)
    return mode if mode & 0o077 else None


async def secrets(settings: Settings, config_file: Path) -> list[Finding]:
    found: list[Finding] = []
    token_file = settings.central.token_file
    if token_file is not None:
        try:
            mode = _open_to_others(token_file)
        except OSError as exc:
            found.append(Finding("secrets", Result.FAIL,
                                 f"token file {token_file}: {exc.strerror}",
                                 f"create it, readable by the service user only: "
                                 f"chmod 600 {token_file}"))
        else:
            if mode is not None:
                found.append(Finding(
                    "secrets", Result.FAIL,
                    f"token file {token_file} is readable by group or others (mode {mode:o})",
                    f"chmod 600 {token_file} (and chown it to the service user)"))
    inline = _inline_secrets(config_file)
    if inline:
        mode = _open_to_others(config_file)
        if mode is not None:
            found.append(Finding(
                "secrets", Result.FAIL,
                f"{config_file} holds {', '.join(inline)} and is readable by group or "
                f"others (mode {mode:o})",
                f"chmod 600 {config_file}, or move the secrets to files or "
                "MALLGATE__SECTION__KEY variables of the service's environment"))
    if not found:
        checked = [str(p) for p in (token_file,) if p is not None]
        detail = ("owner-only: " + ", ".join(checked)) if checked else "no secret files"
        found.append(Finding("secrets", Result.OK, detail))
    return found


def _inline_secrets(config_file: Path) -> list[str]:
    try:
        data = tomllib.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return []
    return [f"[{section}] {key}" for section, key in _INLINE_SECRETS
            if isinstance(data.get(section), dict) and key in data[section]]


def descriptors_needed(settings: Settings) -> int:
    ports = sum(1 + (p.printer_path is not None) for p in settings.pos.ports)
    adapters = 2 * len(settings.ble.adapters) if settings.ble.enabled else 0
    central = CENTRAL_DESCRIPTORS if settings.central.url is not None else 0
    return settings.http.max_connections + ports + adapters + central + BASE_DESCRIPTORS


async def descriptor_limit(settings: Settings) -> list[Finding]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = descriptors_needed(settings)
    detail = (f"limit {soft} (hard {hard}), the configuration needs about {need} "
              f"([http] max_connections {settings.http.max_connections} + store, broker, "
              "ports, central)")
    if soft != resource.RLIM_INFINITY and soft < need:
        return [Finding("descriptors", Result.FAIL, detail,
                        f"raise it: LimitNOFILE={max(4096, need * 2)} in the systemd unit "
                        f"(ulimit -n in a shell), or lower [http] max_connections")]
    return [Finding("descriptors", Result.OK, detail)]
