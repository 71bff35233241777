"""One gateway per store: an exclusive lock file beside the database, held for the process's life.

Two gateways writing one store would each believe their own sequence numbers and ledger;
SQLite would let them (its locks are per transaction). `fcntl.flock` on `<store>.lock` is
released by the kernel when the process dies however it dies, so a crash never leaves a
stale lock, and the file names the PID of the holder for the one who is refused.

Readers (`mallgate ledger`, `deadletters replay`, `doctor`) do not take it: they are safe
beside a running gateway.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path
from types import TracebackType
from typing import Self

from gateway.store.errors import StoreError


class StoreBusy(StoreError):
    """Another process holds the store's lock; `pid` is its PID when it could be read."""

    def __init__(self, store: Path, pid: int | None) -> None:
        holder = f"process {pid}" if pid is not None else "another process"
        super().__init__(f"store {store} is in use by {holder} (another gateway?); "
                         "stop it or give this gateway its own [store] path")
        self.store = store
        self.pid = pid


def lock_path(store: Path) -> Path:
    return store.with_name(store.name + ".lock")


def holder(store: Path) -> int | None:
    """The PID written in the store's lock file, if there is one (held or not)."""
    try:
        text = lock_path(store).read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return int(text) if text.isdigit() else None


def is_locked(store: Path) -> bool:
    """Whether a process holds the store's lock now (without taking it)."""
    try:
        fd = os.open(lock_path(store), os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


class StoreLock:
    """`with StoreLock(path):` holds the store for this process, or raises `StoreBusy`."""

    def __init__(self, store: Path) -> None:
        self.store = store
        self._fd: int | None = None

    def acquire(self) -> None:
        self.store.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock_path(self.store), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise StoreBusy(self.store, holder(self.store)) from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode("ascii"))
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)
            os.close(self._fd)  # closing the descriptor releases the lock
            self._fd = None

    def __enter__(self) -> Self:
        self.acquire()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()
