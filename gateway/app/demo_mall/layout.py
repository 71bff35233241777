"""The demo mall's layout: its ids, its POS lines, where each part keeps its files under
the working directory, and the gateway settings generated for it."""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from devices.ble.demo import DEMO_MALL_UUID, DEMO_RECEIVERS
from devices.pos.printouts import DEFAULT_TEMPLATE
from gateway.settings import Settings

MALL_ID = "demo-mall"
GATEWAY_ID = "gw-1"
# Keys known to everyone, as in config/demo.toml: a real mall gets its own from central.
QR_KEY = "demo-qr-key"
PHONE_HASH_KEY = "demo-phone-key"
# Which kiosk stands in which BLE zone (the receivers are devices.ble.demo's).
ZONE_KIOSKS = {"entrance-north": "k1", "entrance-south": "k2", "atrium": "k3"}
KIOSKS = tuple(ZONE_KIOSKS.values())
ZONE_KINDS = {"entrance-north": "entrance", "entrance-south": "entrance", "atrium": "area"}

Mode = Literal["escpos", "framed", "jsonl"]


@dataclass(frozen=True, slots=True)
class PosLine:
    """One simulated till and the gateway port it is wired to."""

    store_id: str
    pos_id: str
    mode: Mode
    seed: int

    @property
    def name(self) -> str:
        return f"{self.store_id}-{self.pos_id}"


# One line per protocol; the escpos store's receipts are read by the simulated stores'
# template, which knows the demo members' cards.
POS_LINES = (PosLine("S01", "P1", "framed", 1), PosLine("S02", "P1", "jsonl", 2),
             PosLine("S03", "P1", "escpos", 3))


@dataclass(frozen=True, slots=True)
class Layout:
    """Every file of a demo run, under `root`."""

    root: Path

    @property
    def gateway_db(self) -> Path:
        return self.root / "gateway.db"

    @property
    def central_db(self) -> Path:
        return self.root / "central.db"

    @property
    def mqtt_dir(self) -> Path:
        return self.root / "mqtt"

    @property
    def pty_dir(self) -> Path:
        return self.root / "pos"

    @property
    def log(self) -> Path:
        return self.root / "demo.log"

    @property
    def admin_token(self) -> Path:
        return self.root / "admin.token"

    @property
    def staff_token(self) -> Path:
        return self.root / "staff.token"

    def pos_end(self, line: PosLine) -> Path:
        return self.pty_dir / f"{line.name}-pos"

    def gateway_end(self, line: PosLine) -> Path:
        return self.pty_dir / f"{line.name}-gw"

    def fresh(self) -> None:
        """Start a new mall: remove what a previous run left, and only that (the
        directory may hold other files)."""
        self.root.mkdir(parents=True, exist_ok=True)
        for db in (self.gateway_db, self.central_db):
            for path in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
                path.unlink(missing_ok=True)
        for path in (self.log, self.admin_token, self.staff_token):
            path.unlink(missing_ok=True)
        for directory in (self.mqtt_dir, self.pty_dir):
            shutil.rmtree(directory, ignore_errors=True)
        self.pty_dir.mkdir()

    def write_secret(self, path: Path, value: str) -> None:
        path.touch(mode=0o600, exist_ok=True)
        path.write_text(value + "\n", encoding="utf-8")


def port_or_free(wanted: int) -> int:
    """`wanted` if nothing listens on it on loopback (0: none wanted), else a free port."""
    if wanted:
        with socket.socket() as sock, contextlib.suppress(OSError):
            sock.bind(("127.0.0.1", wanted))
            return wanted
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def template(store_id: str) -> dict[str, Any]:
    t = DEFAULT_TEMPLATE
    return {"store_id": store_id, **t["fields"], "item": t["item"],
            "refund_marker": t["markers"]["refund"], "copy_marker": t["markers"]["copy"],
            "non_sale_marker": t["markers"]["non_sale"]}


def gateway_settings(layout: Layout, *, http_port: int, broker_port: int,
                     central_url: str, token: str, staff_token: str) -> Settings:
    """The demo gateway: kiosks and BLE receivers on the demo broker, the three POS lines,
    sync with the demo's central; everything under the working directory."""
    # Written as the JSON a configuration file parses to: the models are strict in Python.
    return Settings.model_validate_json(json.dumps({
        "site": {"mall_id": MALL_ID, "gateway_id": GATEWAY_ID, "name": "Demo Mall"},
        "store": {"path": str(layout.gateway_db)},
        # The dashboard's staff token, made for this run (kept only hashed in the settings).
        "http": {"host": "127.0.0.1", "port": http_port, "tokens": [
            {"name": "demo-staff", "role": "staff",
             "sha256": hashlib.sha256(staff_token.encode("utf-8")).hexdigest()}]},
        "central": {"url": central_url, "token": token},
        "kiosk": {"enabled": True, "broker": "embedded", "port": broker_port,
                  "embedded_dir": str(layout.mqtt_dir), "qr_key": QR_KEY,
                  "phone_hash_key": PHONE_HASH_KEY},
        "ble": {
            "enabled": True, "mall_uuid": str(DEMO_MALL_UUID),
            "zones": [{"id": zone, "kind": ZONE_KINDS[zone], "kiosks": [kid]}
                      for zone, kid in ZONE_KIOSKS.items()],
            "receivers": [{"id": rid, "zone": zone} for rid, zone in DEMO_RECEIVERS.items()],
        },
        "pos": {
            "ports": [{"path": str(layout.gateway_end(line)), "store_id": line.store_id,
                       "pos_id": line.pos_id, "mode": line.mode, "baudrate": 115200}
                      for line in POS_LINES],
            "templates": [template(line.store_id) for line in POS_LINES
                          if line.mode == "escpos"],
            # The simulated printer always cuts; the gap only ends a job that did not.
            "idle_gap_s": 1.0,
        },
    }))
