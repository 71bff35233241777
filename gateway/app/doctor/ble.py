"""Check of the BLE adapters: each configured adapter present and powered in BlueZ.

Asked over the D-Bus system bus, as bleak does; a machine without one (a container, a
development laptop without BlueZ) is skipped, not failed, when no adapter is configured
there is nothing to ask.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway.app.doctor.model import Finding, Result
from gateway.settings import Settings

if TYPE_CHECKING:
    from dbus_fast.aio import MessageBus

BLUEZ = "org.bluez"
ADAPTER = "org.bluez.Adapter1"
PROPERTIES = "org.freedesktop.DBus.Properties"


async def adapters(settings: Settings) -> list[Finding]:
    ble = settings.ble
    if not ble.enabled or not ble.adapters:
        return [Finding("ble", Result.SKIP, "no [[ble.adapters]] configured")]
    from dbus_fast import BusType  # noqa: PLC0415 - loaded only with adapters to check
    from dbus_fast.aio import MessageBus  # noqa: PLC0415

    try:
        bus = await MessageBus(bus_type=BusType.SYSTEM).connect()
    except (OSError, ValueError, EOFError) as exc:
        return [Finding("ble", Result.SKIP, f"no D-Bus system bus ({exc})")]
    try:
        return [await _adapter(bus, a.name) for a in ble.adapters]
    finally:
        bus.disconnect()


async def _adapter(bus: MessageBus, name: str) -> Finding:
    from dbus_fast import Message, MessageType  # noqa: PLC0415

    check = f"ble {name}"
    reply = await bus.call(Message(destination=BLUEZ, path=f"/org/bluez/{name}",
                                   interface=PROPERTIES, member="Get", signature="ss",
                                   body=[ADAPTER, "Powered"]))
    if reply is None or reply.message_type == MessageType.ERROR:
        error = reply.error_name if reply is not None else "no reply"
        if error == "org.freedesktop.DBus.Error.ServiceUnknown":
            return Finding(check, Result.FAIL, "bluetoothd is not running",
                           "sudo systemctl enable --now bluetooth")
        return Finding(check, Result.FAIL, f"BlueZ has no adapter {name} ({error})",
                       "plug the adapter in, check hciconfig -a / bluetoothctl list, and "
                       "set [[ble.adapters]] name to one that is there")
    if not reply.body[0].value:
        return Finding(check, Result.FAIL, "present but powered off",
                       f"bluetoothctl power on (rfkill unblock bluetooth if blocked); "
                       f"AutoEnable=true in /etc/bluetooth/main.conf keeps {name} on")
    return Finding(check, Result.OK, "present and powered")
