"""Checks of the POS serial ports: there, readable and writable, held by no one else, stable name.

A port the gateway itself has open (pyserial's exclusive `flock`) is fine when the holder
is the gateway that holds this configuration's store. Any other process with the device
open (ModemManager probing it, a getty, a second gateway) steals bytes from the line.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import re
from pathlib import Path

from gateway.app.doctor.model import Finding, Result
from gateway.settings import Settings
from gateway.store.lock import holder, is_locked

# Kernel names that change when adapters re-enumerate (docs/pos.md, "Ports that come and go").
_UNSTABLE = re.compile(r"^/dev/tty(USB|ACM|S|AMA|XRUSB)\d+$")
_PTMX = "/dev/ptmx"


def _holders(device: str) -> list[tuple[int, str]]:
    """Processes (other than this one) that have `device` open, with their command name.

    The process that made a pseudo-terminal holds its slave as well as the multiplexer:
    it is the line's other end, not a competitor, so it is left out."""
    found: list[tuple[int, str]] = []
    own = os.getpid()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == own:
            continue
        targets = _open_files(entry)
        if device in targets and not (device.startswith("/dev/pts/") and _PTMX in targets):
            try:
                name = (entry / "comm").read_text().strip()
            except OSError:
                name = "?"
            found.append((int(entry.name), name))
    return found


def _open_files(process: Path) -> set[str]:
    found: set[str] = set()
    try:
        descriptors = list((process / "fd").iterdir())
    except OSError:
        return found  # gone, or not ours to look at
    for fd in descriptors:
        try:
            found.add(str(fd.readlink()))
        except OSError:
            continue  # closed meanwhile
    return found


def _flock_busy(device: str) -> bool:
    fd = os.open(device, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        with contextlib.suppress(OSError):
            os.close(fd)  # also releases our lock
    return False


def _reachable(name: str, path: str) -> Finding | None:
    """A failure when the device is not there or not ours to open."""
    if not os.path.exists(path):  # noqa: PTH110 - a device path, may be a dangling link
        return Finding(name, Result.FAIL, "no such device",
                       "plug the adapter in and check its cable; ls -l /dev/serial/by-id/ "
                       "lists the adapters present, then set [[pos.ports]] path to one")
    if not os.access(path, os.R_OK | os.W_OK):
        return Finding(name, Result.FAIL, "not readable and writable by this user",
                       "add the service user to the port's group (sudo usermod -aG dialout "
                       "USER) or give it access with a udev rule")
    return None


def check_port(path: str, gateway_pid: int | None) -> Finding:
    name = f"serial {path}"
    if (unreachable := _reachable(name, path)) is not None:
        return unreachable
    device = os.path.realpath(path)
    try:
        busy = _flock_busy(device)
    except OSError as exc:
        return Finding(name, Result.FAIL, f"cannot open {device}: {exc.strerror}",
                       "check the adapter (dmesg) and that nothing else holds the port")
    others = [(pid, comm) for pid, comm in _holders(device) if pid != gateway_pid]
    if others:
        named = ", ".join(f"PID {pid} ({comm})" for pid, comm in others)
        return Finding(name, Result.FAIL, f"held by {named}",
                       "stop that process: ModemManager (udev ENV{ID_MM_DEVICE_IGNORE}=\"1\"), "
                       "a serial getty (systemctl disable --now serial-getty@...), or "
                       "another gateway")
    if busy and gateway_pid is None:
        return Finding(name, Result.FAIL, "locked by another process",
                       "stop the other program using the port (another gateway?)")
    used = f", in use by the running gateway (PID {gateway_pid})" if busy else ""
    if _UNSTABLE.match(path):
        return Finding(name, Result.WARN, f"kernel name {path}: it changes when adapters "
                       f"re-enumerate{used}",
                       "use the adapter's stable name: ls -l /dev/serial/by-id/ (or "
                       "/dev/serial/by-path/ for adapters without a serial number)")
    return Finding(name, Result.OK, f"{device}, readable and writable{used}")


async def ports(settings: Settings) -> list[Finding]:
    if not settings.pos.ports:
        return [Finding("serial", Result.SKIP, "no [[pos.ports]] configured")]
    store = settings.store.path
    gateway_pid = holder(store) if is_locked(store) else None
    paths = [p for port in settings.pos.ports
             for p in (port.path, port.printer_path) if p is not None]
    return [await asyncio.to_thread(check_port, path, gateway_pid) for path in paths]
