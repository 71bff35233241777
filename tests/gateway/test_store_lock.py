"""One gateway per store: a second `mallgate run` on a store in use exits 1 naming the holder."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gateway.store.lock import StoreBusy, StoreLock, holder, is_locked, lock_path
from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]


def test_the_lock_is_exclusive_names_its_holder_and_goes_with_its_descriptor(
        tmp_path: Path) -> None:
    store = tmp_path / "var" / "mallgate.db"
    with StoreLock(store):
        assert lock_path(store).is_file() and is_locked(store)
        assert holder(store) == os.getpid()
        with pytest.raises(StoreBusy) as busy:
            StoreLock(store).acquire()
        assert busy.value.pid == os.getpid()
        assert str(store) in str(busy.value) and str(os.getpid()) in str(busy.value)
    assert not is_locked(store)
    with StoreLock(store):  # released: the next one takes it
        pass


def _config(tmp_path: Path, name: str, store: Path) -> Path:
    config = tmp_path / f"{name}.toml"
    config.write_text(f'[site]\nmall_id = "m1"\ngateway_id = "gw-1"\n[store]\npath = "{store}"\n'
                      f'[http]\nport = {free_port()}\n')
    return config


def _run(config: Path) -> list[str]:
    return [sys.executable, "-c", "from gateway.cli import main; main()", "run", "--config",
            str(config)]


def test_a_second_gateway_on_the_same_store_exits_1_naming_the_store_and_the_holder(
        tmp_path: Path) -> None:
    store = tmp_path / "gw.db"
    first = subprocess.Popen(_run(_config(tmp_path, "a", store)), cwd=ROOT,
                             stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while holder(store) != first.pid:
            assert first.poll() is None, "the first gateway stopped"
            assert time.monotonic() < deadline, "the first gateway never took the store"
            time.sleep(0.05)
        second = subprocess.run(_run(_config(tmp_path, "b", store)), cwd=ROOT,
                                capture_output=True, text=True, timeout=60, check=False)
        assert second.returncode == 1
        assert f"store {store} is in use by process {first.pid}" in second.stderr
        assert "Traceback" not in second.stderr
        assert first.poll() is None  # the first one never noticed
    finally:
        first.terminate()
        first.wait(timeout=30)
    assert not is_locked(store)

