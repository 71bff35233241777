"""A throwaway PostgreSQL cluster from the machine's binaries, for one test session.

It listens only on a unix socket in its own temporary directory, on a free port number,
and is stopped and deleted at the end. As root the server runs as the `postgres` user
(PostgreSQL refuses to run as root). Without the binaries the PostgreSQL tests are skipped.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from tests.conftest import free_port

_names = itertools.count()


def bindir() -> Path | None:
    for candidate in (Path("/usr/lib/postgresql/15/bin"),):
        if (candidate / "initdb").exists():
            return candidate
    pg_config = shutil.which("pg_config")
    if pg_config:
        found = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True,
                               check=False).stdout.strip()
        if found and (Path(found) / "initdb").exists():
            return Path(found)
    return None


@contextlib.contextmanager
def cluster() -> Iterator[str]:
    """Start a cluster; yields the DSN of its `postgres` database."""
    binaries = bindir()
    if binaries is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
    root = Path(tempfile.mkdtemp(prefix="mallgate-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    data, port = root / "data", free_port()
    run = [*as_user]
    subprocess.run([*run, str(binaries / "initdb"), "-D", str(data), "-U", "postgres",
                    "--auth=trust", "-E", "UTF8", "--locale=C"],
                   check=True, capture_output=True, timeout=120)
    options = (f"-k {root} -p {port} -c listen_addresses='' -c fsync=off "
               "-c synchronous_commit=off -c full_page_writes=off")
    subprocess.run([*run, str(binaries / "pg_ctl"), "-D", str(data), "-o", options,
                    "-l", str(root / "log"), "-w", "-t", "60", "start"],
                   check=True, capture_output=True, timeout=90)
    try:
        yield f"postgresql://postgres@/postgres?host={root}&port={port}"
    finally:
        subprocess.run([*run, str(binaries / "pg_ctl"), "-D", str(data), "-m", "immediate",
                        "-w", "stop"], check=False, capture_output=True, timeout=60)
        shutil.rmtree(root, ignore_errors=True)


async def fresh_database(server_dsn: str) -> str:
    """A new empty database in the cluster; returns its DSN."""
    name = f"central_{os.getpid()}_{next(_names)}"
    conn = await asyncpg.connect(server_dsn)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return server_dsn.replace("/postgres?", f"/{name}?", 1)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    with cluster() as dsn:
        yield dsn
