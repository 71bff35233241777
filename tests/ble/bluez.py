"""A fake BlueZ on a private system bus, for driving the real `BleakScanner` without radios.

`FakeBlueZ` starts its own `dbus-daemon` (a generated configuration that allows everything)
and python-dbusmock's `bluez5` template on it, and points `DBUS_SYSTEM_BUS_ADDRESS` at that
bus so bleak's BlueZ backend (dbus-fast) talks to the fake instead of the host's bluetoothd.

Devices are created with the mock's generic `AddObject` plus an explicit `InterfacesAdded`
signal, with `ManufacturerData` typed `a{qv}` and `ServiceData` typed `a{sv}` (each value an
`ay`): the template's own `AddDevice` helper sends them as arrays of dictionaries, which bleak
cannot read. Later changes go through the mock's `UpdateProperties`, which stores the value
and emits `org.freedesktop.DBus.Properties.PropertiesChanged` as bluetoothd does for every
advert it reports while discovering.

What the fake does not model, so tests script it: bluetoothd's de-duplication, its merging of
manufacturer data per company id, idle-device expiry, and real advertisement-monitor callbacks
(the template's `RegisterMonitor` is bookkeeping only; in passive mode bleak still reports
adverts from Device1 signals, which is what the fake emits).

The processes are started and stopped by PID and every wait is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import sys
import tempfile
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from dbus_fast import Message, MessageType, Variant
from dbus_fast.aio import MessageBus

BLUEZ = "org.bluez"
MOCK_IFACE = "org.freedesktop.DBus.Mock"
BLUEZ_MOCK_IFACE = "org.bluez.Mock"
DEVICE_IFACE = "org.bluez.Device1"
ADAPTER_IFACE = "org.bluez.Adapter1"
OBJECT_MANAGER_IFACE = "org.freedesktop.DBus.ObjectManager"
STARTUP_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 5.0

_BUS_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_type="method_return"/>
    <allow send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="signal"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow send_destination="*"/>
    <allow receive_sender="*"/>
  </policy>
</busconfig>
"""


def device_path(adapter: str, address: str) -> str:
    return f"/org/bluez/{adapter}/dev_{address.replace(':', '_').upper()}"


def manufacturer_variant(data: Mapping[int, bytes]) -> Variant:
    """`ManufacturerData` as bluetoothd sends it: company id (uint16) to a variant `ay`."""
    return Variant("a{qv}", {company: Variant("ay", bytes(value))
                             for company, value in data.items()})


def service_variant(data: Mapping[str, bytes]) -> Variant:
    """`ServiceData` as bluetoothd sends it: 128-bit UUID string to a variant `ay`."""
    return Variant("a{sv}", {uuid: Variant("ay", bytes(value)) for uuid, value in data.items()})


class FakeBlueZError(RuntimeError):
    pass


class FakeBlueZ:
    """A private system bus with the mock `org.bluez` on it; use `running()` to get one."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.address = f"unix:path={workdir / 'bus'}"
        self._daemon: asyncio.subprocess.Process | None = None
        self._mock: asyncio.subprocess.Process | None = None
        self._bus: MessageBus | None = None
        self._mock_log = workdir / "bluez-mock.log"

    # --- processes ----------------------------------------------------------------------

    async def start(self) -> None:
        config = self.workdir / "bus.conf"
        config.write_text(_BUS_CONFIG.format(socket=self.workdir / "bus"))
        self._daemon = await asyncio.create_subprocess_exec(
            "dbus-daemon", f"--config-file={config}", "--nofork", "--print-address=1",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
        assert self._daemon.stdout is not None
        line = await asyncio.wait_for(self._daemon.stdout.readline(), STARTUP_TIMEOUT_S)
        if not line:
            raise FakeBlueZError("dbus-daemon exited before printing its address")
        self._bus = await MessageBus(bus_address=self.address).connect()
        await self.start_bluez()

    async def start_bluez(self) -> None:
        """Start (or restart) the mock bluetoothd; it owns `org.bluez` when this returns."""
        env = {**os.environ, "DBUS_SYSTEM_BUS_ADDRESS": self.address}
        with self._mock_log.open("ab") as log:
            self._mock = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "dbusmock", "--system", "--template", "bluez5",
                env=env, stdout=log, stderr=log)
        async with asyncio.timeout(STARTUP_TIMEOUT_S):
            while not await self._name_has_owner(BLUEZ):
                if self._mock.returncode is not None:
                    raise FakeBlueZError(f"bluez mock exited: {self._mock_log.read_text()}")
                await asyncio.sleep(0.02)

    async def stop_bluez(self) -> None:
        """Stop the mock bluetoothd by its PID, as a crash or restart of the daemon would."""
        await _stop(self._mock)
        self._mock = None
        async with asyncio.timeout(STARTUP_TIMEOUT_S):
            # The name is released by the bus daemon, in another process: poll it.
            while await self._name_has_owner(BLUEZ):  # noqa: ASYNC110
                await asyncio.sleep(0.02)

    async def stop(self) -> None:
        if self._bus is not None:
            self._bus.disconnect()
            self._bus = None
        await _stop(self._mock)
        await _stop(self._daemon)

    # --- adapters -----------------------------------------------------------------------

    async def add_adapter(self, name: str = "hci0") -> str:
        body = await self._call("/", BLUEZ_MOCK_IFACE, "AddAdapter", "ss", [name, f"mall {name}"])
        return str(body[0])

    async def remove_adapter(self, name: str = "hci0") -> None:
        """Remove the adapter object (and emit InterfacesRemoved), as unplugging it would."""
        await self._call("/", BLUEZ_MOCK_IFACE, "RemoveAdapter", "s", [name])

    async def adapter_property(self, name: str, prop: str) -> Any:
        body = await self._call(f"/org/bluez/{name}", "org.freedesktop.DBus.Properties", "Get",
                                "ss", [ADAPTER_IFACE, prop])
        return body[0].value

    async def calls(self, path: str) -> list[str]:
        """Names of the mock methods called on `path` since it was created."""
        body = await self._call(path, MOCK_IFACE, "GetCalls", "", [])
        return [str(call[1]) for call in body[0]]

    # --- devices ------------------------------------------------------------------------

    async def add_device(
        self,
        address: str,
        *,
        adapter: str = "hci0",
        rssi: int = -60,
        manufacturer_data: Mapping[int, bytes] | None = None,
        service_data: Mapping[str, bytes] | None = None,
        uuids: Sequence[str] = (),
        name: str | None = None,
        tx_power: int | None = None,
        address_type: str = "random",
    ) -> str:
        """Create `org.bluez.Device1` at `/org/bluez/<adapter>/dev_XX_...` and announce it."""
        path = device_path(adapter, address)
        props: dict[str, Variant] = {
            "Address": Variant("s", address),
            "AddressType": Variant("s", address_type),
            "Alias": Variant("s", name or address.replace(":", "-")),
            "Adapter": Variant("o", f"/org/bluez/{adapter}"),
            "Paired": Variant("b", False),
            "Connected": Variant("b", False),
            "Trusted": Variant("b", False),
            "Blocked": Variant("b", False),
            "LegacyPairing": Variant("b", False),
            "ServicesResolved": Variant("b", False),
            "UUIDs": Variant("as", list(uuids)),
            "RSSI": Variant("n", rssi),
            "ManufacturerData": manufacturer_variant(manufacturer_data or {}),
            "ServiceData": service_variant(service_data or {}),
        }
        if name is not None:
            props["Name"] = Variant("s", name)
        if tx_power is not None:
            props["TxPower"] = Variant("n", tx_power)
        await self._call("/", MOCK_IFACE, "AddObject", "ssa{sv}a(ssss)",
                         [path, DEVICE_IFACE, props, []])
        await self._call("/", MOCK_IFACE, "EmitSignal", "sssav", [
            OBJECT_MANAGER_IFACE, "InterfacesAdded", "oa{sa{sv}}",
            [Variant("o", path), Variant("a{sa{sv}}", {DEVICE_IFACE: props})]])
        return path

    async def update_device(
        self,
        path: str,
        *,
        rssi: int | None = None,
        manufacturer_data: Mapping[int, bytes] | None = None,
        service_data: Mapping[str, bytes] | None = None,
    ) -> None:
        """Change advert properties and emit PropertiesChanged, as a new advert would."""
        changed: dict[str, Variant] = {}
        if rssi is not None:
            changed["RSSI"] = Variant("n", rssi)
        if manufacturer_data is not None:
            changed["ManufacturerData"] = manufacturer_variant(manufacturer_data)
        if service_data is not None:
            changed["ServiceData"] = service_variant(service_data)
        await self._call(path, MOCK_IFACE, "UpdateProperties", "sa{sv}", [DEVICE_IFACE, changed])

    async def remove_device(self, path: str, *, adapter: str = "hci0") -> None:
        await self._call(f"/org/bluez/{adapter}", ADAPTER_IFACE, "RemoveDevice", "o", [path])

    # --- plumbing -----------------------------------------------------------------------

    async def _call(self, path: str, interface: str, member: str, signature: str,
                    body: list[Any]) -> list[Any]:
        assert self._bus is not None, "FakeBlueZ is not started"
        reply = await asyncio.wait_for(self._bus.call(Message(
            destination=BLUEZ, path=path, interface=interface, member=member,
            signature=signature, body=body)), STARTUP_TIMEOUT_S)
        assert reply is not None
        if reply.message_type == MessageType.ERROR:
            raise FakeBlueZError(f"{interface}.{member} on {path}: {reply.error_name} "
                                 f"{reply.body}")
        return list(reply.body)

    async def _name_has_owner(self, name: str) -> bool:
        assert self._bus is not None
        reply = await asyncio.wait_for(self._bus.call(Message(
            destination="org.freedesktop.DBus", path="/org/freedesktop/DBus",
            interface="org.freedesktop.DBus", member="NameHasOwner", signature="s",
            body=[name])), STARTUP_TIMEOUT_S)
        assert reply is not None
        return bool(reply.body[0])


async def _stop(process: asyncio.subprocess.Process | None) -> None:
    if process is None or process.returncode is not None:
        return
    process.terminate()
    try:
        await asyncio.wait_for(process.wait(), STOP_TIMEOUT_S)
    except TimeoutError:
        process.kill()
        await asyncio.wait_for(process.wait(), STOP_TIMEOUT_S)


def require_dbus_daemon() -> None:
    if shutil.which("dbus-daemon") is None:
        reason = "dbus-daemon is not installed (Debian package `dbus`): no fake BlueZ bus"
        print(f"SKIP: {reason}")
        pytest.skip(reason)


@contextlib.asynccontextmanager
async def running(monkeypatch: pytest.MonkeyPatch, *adapters: str) -> AsyncIterator[FakeBlueZ]:
    """A started fake BlueZ with `adapters` added; the system bus points at it meanwhile."""
    require_dbus_daemon()
    with tempfile.TemporaryDirectory(prefix="mg-bluez-") as workdir:  # short socket path
        fake = FakeBlueZ(Path(workdir))
        monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", fake.address)
        try:
            await fake.start()
            for adapter in adapters:
                await fake.add_adapter(adapter)
            yield fake
        finally:
            await fake.stop()

