"""Local BLE receivers: one long-lived bleak scanner per adapter, each mapped to a zone.

`ScannerReceiver` owns a `BleakScanner` on one BlueZ adapter ("hci0") and hands every
advertisement, converted to the sans-io `Advertisement`, to a callback together with the
receiver's zone and the time from an injectable clock. It is what `Pipeline.feed` expects.

A supervisor keeps the scanner running for as long as the receiver is open. It watches
bluetoothd on its own system-bus connection: the adapter object being removed, the adapter
being powered off, `org.bluez` leaving the bus (a daemon restart or crash), or the bus itself
going away end the current scan; a probe of the adapter every few seconds catches what no
signal announced. The scanner is then started again with capped exponential backoff and
jitter; the adapter (or bluetoothd) coming back cuts the wait short. One warning is logged
per outage and one line when scanning resumes.

Passive scanning (no scan requests sent, so beacons' batteries and the air are spared) needs
BlueZ's advertisement monitor API, which only reports adverts matching "or patterns";
`BEACON_OR_PATTERNS` match the three beacon families `parse` understands. Active scanning
needs no pattern and reports every advertising device.

BlueZ reports a device's cumulative properties, so manufacturer data of an earlier advert
under another company id may linger in an advertisement; `parse` picks frames by company id
and service UUID, so that is harmless.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from types import TracebackType
from typing import Literal, Self

from bleak import BleakScanner
from bleak.args.bluez import BlueZScannerArgs, OrPattern, OrPatternLike
from bleak.assigned_numbers import AdvertisementDataType
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData
from bleak.exc import BleakError
from dbus_fast import AuthError, BusType, DBusError, Message, MessageType
from dbus_fast.aio import MessageBus

from devices.ble import const
from devices.ble.protocol import Advertisement
from gateway.backoff import Backoff

log = logging.getLogger(__name__)

ScannerState = Literal["starting", "scanning", "down"]
ScanningMode = Literal["active", "passive"]
AdvertCallback = Callable[[Advertisement, str, float], object]
"""Called with (advertisement, zone, at) for every advert; its return value is ignored."""

BLUEZ_SERVICE = "org.bluez"
ADAPTER_INTERFACE = "org.bluez.Adapter1"
_DBUS = "org.freedesktop.DBus"
_PROPERTIES = "org.freedesktop.DBus.Properties"
_OBJECT_MANAGER = "org.freedesktop.DBus.ObjectManager"

BEACON_OR_PATTERNS: tuple[OrPattern, ...] = (
    # iBeacon: Apple's company id (little-endian 0x004C), then type 0x02, length 0x15.
    OrPattern(0, AdvertisementDataType.MANUFACTURER_SPECIFIC_DATA, b"\x4c\x00\x02\x15"),
    # AltBeacon: the beacon code 0xBEAC right after any company id.
    OrPattern(2, AdvertisementDataType.MANUFACTURER_SPECIFIC_DATA, b"\xbe\xac"),
    # Eddystone (UID, URL, TLM, EID): service data under the 16-bit UUID 0xFEAA.
    OrPattern(0, AdvertisementDataType.SERVICE_DATA_UUID16, b"\xaa\xfe"),
)
"""What a passive scan asks BlueZ to report: every beacon frame `parse` can read."""


class AdapterUnavailable(Exception):
    """The adapter cannot scan now (missing, powered off, bluetoothd not answering)."""

    def __init__(self, adapter: str, reason: str) -> None:
        super().__init__(f"{adapter}: {reason}")
        self.adapter = adapter
        self.reason = reason


# What a failed start or a lost scan can raise; anything else is a bug and propagates.
_OUTAGE_ERRORS = (AdapterUnavailable, BleakError, DBusError, AuthError, OSError, EOFError,
                  TimeoutError)


@dataclass(slots=True)
class ScannerHealth:
    """What /metrics and the dashboard show of one local receiver."""

    adapter: str
    zone: str
    mode: ScanningMode
    state: ScannerState = "starting"
    since: float | None = None  # clock time of the last change of state
    adverts: int = 0  # advertisements received from the scanner
    last_advert_at: float | None = None
    restarts: int = 0  # times scanning resumed after an outage
    outages: int = 0
    failed_starts: int = 0
    callback_errors: int = 0  # adverts whose callback raised
    last_error: str = ""

    def as_dict(self) -> dict[str, object]:
        return {"adapter": self.adapter, "zone": self.zone, "mode": self.mode,
                "state": self.state, "since": self.since, "adverts": self.adverts,
                "last_advert_at": self.last_advert_at, "restarts": self.restarts,
                "outages": self.outages, "failed_starts": self.failed_starts,
                "callback_errors": self.callback_errors, "last_error": self.last_error}


def advertisement_of(data: AdvertisementData) -> Advertisement:
    """bleak's `AdvertisementData` as the sans-io `Advertisement` that `parse` reads."""
    return Advertisement(
        manufacturer_data={company: bytes(value)
                           for company, value in data.manufacturer_data.items()},
        service_data={uuid: bytes(value) for uuid, value in data.service_data.items()},
        service_uuids=tuple(data.service_uuids),
        local_name=data.local_name,
        rssi=data.rssi,
        tx_power=data.tx_power,
    )


def restart_backoff(first: float = const.SCANNER_RETRY_FIRST_S,
                    cap: float = const.SCANNER_RETRY_MAX_S,
                    rand: Callable[[float, float], float] = random.uniform) -> Backoff:
    """The waits between scanner restarts: doubling from `first` up to `cap`."""
    return Backoff(first, cap, rand)


class ScannerReceiver:
    """One adapter's scanner, kept running while the receiver is open.

    Use as `async with ScannerReceiver(...)`, or run `run()` as a task of your own
    (a TaskGroup) and cancel it to stop.
    """

    def __init__(
        self,
        adapter: str,
        zone: str,
        on_advert: AdvertCallback,
        *,
        scanning_mode: ScanningMode = "active",
        or_patterns: Sequence[OrPatternLike] = BEACON_OR_PATTERNS,
        clock: Callable[[], float] = time.time,
        retry_first_s: float = const.SCANNER_RETRY_FIRST_S,
        retry_max_s: float = const.SCANNER_RETRY_MAX_S,
        probe_interval_s: float = const.SCANNER_PROBE_INTERVAL_S,
        call_timeout_s: float = const.SCANNER_CALL_TIMEOUT_S,
        rand: Callable[[float, float], float] = random.uniform,
    ) -> None:
        if scanning_mode == "passive" and not or_patterns:
            raise ValueError("passive scanning needs at least one or-pattern")
        self.adapter = adapter
        self.zone = zone
        self.on_advert = on_advert
        self.scanning_mode: ScanningMode = scanning_mode
        self.or_patterns = list(or_patterns)
        self.clock = clock
        self.retry_first_s = retry_first_s
        self.retry_max_s = retry_max_s
        self.probe_interval_s = probe_interval_s
        self.call_timeout_s = call_timeout_s
        self.backoff = restart_backoff(retry_first_s, retry_max_s, rand)
        self.health = ScannerHealth(adapter, zone, scanning_mode)
        self.adapter_path = f"/org/bluez/{adapter}"
        self._bus: MessageBus | None = None
        self._lost = asyncio.Event()  # the running scan ended; why is in _lost_reason
        self._lost_reason = ""
        self._wake = asyncio.Event()  # the adapter or bluetoothd (re)appeared
        self._state_changed = asyncio.Event()
        self._callback_logged_at: float | None = None
        self._task: asyncio.Task[None] | None = None

    # --- lifetime -----------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        self._task = asyncio.create_task(self.run(), name=f"ble-scanner:{self.adapter}")
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        await asyncio.wait({task})
        error = None if task.cancelled() else task.exception()
        if error is not None:
            raise error

    async def wait_for_state(self, state: ScannerState) -> None:
        """Return once the receiver is in `state` (bound it with `asyncio.timeout`)."""
        while self.health.state != state:
            await self._state_changed.wait()

    async def run(self) -> None:
        """Scan until cancelled, restarting the scanner whenever it is lost."""
        try:
            while True:
                self._lost.clear()
                self._wake.clear()
                try:
                    reason = await self._scan()
                    self.backoff.reset()  # it was scanning: start again from the first wait
                except _OUTAGE_ERRORS as error:
                    reason = _describe(error)
                    if self.health.state != "scanning":
                        self.health.failed_starts += 1
                self._down(reason)
                delay = self.backoff.next_delay()
                try:
                    async with asyncio.timeout(delay):
                        await self._wake.wait()
                except TimeoutError:
                    pass
        except Exception:
            # A bug, not an outage: show it on the dashboard and let it propagate.
            log.exception("BLE scanner supervisor on %s failed", self.adapter)
            self._down("supervisor failed")
            raise
        finally:
            if self._bus is not None:
                self._bus.disconnect()
                self._bus = None

    # --- one scan -----------------------------------------------------------------------

    async def _scan(self) -> str:
        """Start the scanner and return, with the reason, once the scan is lost."""
        bus = await self._watch()
        await self._probe(bus)
        bluez: BlueZScannerArgs = {"adapter": self.adapter}
        if self.scanning_mode == "passive":
            bluez["or_patterns"] = self.or_patterns
        scanner = BleakScanner(self._on_detection, scanning_mode=self.scanning_mode,
                               bluez=bluez)
        async with asyncio.timeout(self.call_timeout_s):
            await scanner.start()
        try:
            self._up()
            while not self._lost.is_set():
                try:
                    async with asyncio.timeout(self.probe_interval_s):
                        await self._lost.wait()
                except TimeoutError:
                    await self._probe(bus)
            return self._lost_reason
        finally:
            await self._stop(scanner)

    async def _stop(self, scanner: BleakScanner) -> None:
        # Stopping a scan on a vanished adapter or daemon fails; there is nothing to stop.
        try:
            async with asyncio.timeout(self.call_timeout_s):
                await scanner.stop()
        except (*_OUTAGE_ERRORS, AssertionError) as error:  # bleak asserts a live bus
            log.debug("stopping the scanner on %s: %s", self.adapter, _describe(error))

    async def _probe(self, bus: MessageBus) -> None:
        """Raise `AdapterUnavailable` unless bluetoothd has the adapter, powered."""
        reply = await asyncio.wait_for(bus.call(Message(
            destination=BLUEZ_SERVICE, path=self.adapter_path, interface=_PROPERTIES,
            member="Get", signature="ss", body=[ADAPTER_INTERFACE, "Powered"])),
            self.call_timeout_s)
        if reply is None or reply.message_type == MessageType.ERROR:
            detail = reply.error_name if reply is not None else "no reply"
            raise AdapterUnavailable(self.adapter, f"not available ({detail})")
        if not reply.body[0].value:
            raise AdapterUnavailable(self.adapter, "powered off")

    # --- watching bluetoothd ------------------------------------------------------------

    async def _watch(self) -> MessageBus:
        """The system-bus connection that watches the adapter, (re)connected if needed."""
        if self._bus is not None and self._bus.connected:
            return self._bus
        if self._bus is not None:
            self._bus.disconnect()
            self._bus = None
        bus = MessageBus(bus_type=BusType.SYSTEM)
        try:
            async with asyncio.timeout(self.call_timeout_s):
                await bus.connect()
                bus.add_message_handler(self._on_message)
                for rule in self._match_rules():
                    await self._add_match(bus, rule)
        except BaseException:
            bus.disconnect()
            raise
        disconnected = asyncio.ensure_future(
            bus.wait_for_disconnect())  # type: ignore[no-untyped-call]  # returns None
        disconnected.add_done_callback(partial(self._on_disconnect, bus))
        self._bus = bus
        return bus

    async def _add_match(self, bus: MessageBus, rule: str) -> None:
        reply = await bus.call(Message(
            destination=_DBUS, path="/org/freedesktop/DBus", interface=_DBUS,
            member="AddMatch", signature="s", body=[rule]))
        if reply is None or reply.message_type == MessageType.ERROR:
            raise AdapterUnavailable(self.adapter, f"cannot watch D-Bus: {rule}")

    def _match_rules(self) -> list[str]:
        return [
            f"type='signal',sender='{_DBUS}',interface='{_DBUS}',member='NameOwnerChanged',"
            f"arg0='{BLUEZ_SERVICE}'",
            f"type='signal',interface='{_OBJECT_MANAGER}',member='InterfacesAdded',"
            f"arg0path='{self.adapter_path}'",
            f"type='signal',interface='{_OBJECT_MANAGER}',member='InterfacesRemoved',"
            f"arg0path='{self.adapter_path}'",
            f"type='signal',interface='{_PROPERTIES}',member='PropertiesChanged',"
            f"path='{self.adapter_path}',arg0='{ADAPTER_INTERFACE}'",
        ]

    def _on_message(self, message: Message) -> None:
        if message.message_type != MessageType.SIGNAL:
            return
        body = message.body
        if message.member == "NameOwnerChanged" and body[0] == BLUEZ_SERVICE:
            if body[2]:
                self._wake.set()
            else:
                self._lose("bluetoothd left the bus")
        elif message.member in {"InterfacesAdded", "InterfacesRemoved"}:
            if body[0] != self.adapter_path or ADAPTER_INTERFACE not in body[1]:
                return
            if message.member == "InterfacesAdded":
                self._wake.set()
            else:
                self._lose("adapter removed")
        elif (message.member == "PropertiesChanged" and message.path == self.adapter_path
              and body[0] == ADAPTER_INTERFACE and "Powered" in body[1]):
            if body[1]["Powered"].value:
                self._wake.set()
            else:
                self._lose("adapter powered off")

    def _on_disconnect(self, bus: MessageBus, future: asyncio.Future[None]) -> None:
        error = None if future.cancelled() else future.exception()
        if bus is not self._bus:
            return  # a connection this receiver already replaced or closed
        self._lose(f"D-Bus connection lost ({error!r})" if error else "D-Bus connection lost")

    def _lose(self, reason: str) -> None:
        if not self._lost.is_set():
            self._lost_reason = reason
            self._lost.set()

    # --- adverts ------------------------------------------------------------------------

    def _on_detection(self, device: BLEDevice, data: AdvertisementData) -> None:
        # Called by bleak for each advert: nothing may raise back into it.
        at = self.clock()
        self.health.adverts += 1
        self.health.last_advert_at = at
        try:
            self.on_advert(advertisement_of(data), self.zone, at)
        except Exception:
            self.health.callback_errors += 1
            last = self._callback_logged_at
            if last is None or at - last >= const.SCANNER_CALLBACK_LOG_INTERVAL_S:
                self._callback_logged_at = at
                log.exception("BLE advert callback failed on %s (%d failures so far)",
                              self.adapter, self.health.callback_errors)

    # --- state --------------------------------------------------------------------------

    def _set_state(self, state: ScannerState) -> None:
        self.health.state = state
        self.health.since = self.clock()
        self._state_changed.set()
        self._state_changed = asyncio.Event()

    def _up(self) -> None:
        if self.health.state == "down":
            self.health.restarts += 1
            log.info("BLE adapter %s scanning again for zone %s", self.adapter, self.zone)
        else:
            log.info("BLE adapter %s scanning (%s) for zone %s", self.adapter,
                     self.scanning_mode, self.zone)
        self._set_state("scanning")

    def _down(self, reason: str) -> None:
        self.health.last_error = reason
        if self.health.state != "down":
            # One line per outage: the failed restarts that follow stay quiet.
            self.health.outages += 1
            log.warning("BLE adapter %s down: %s; retrying with backoff", self.adapter, reason)
            self._set_state("down")
        else:
            log.debug("BLE adapter %s still down: %s", self.adapter, reason)


def _describe(error: BaseException) -> str:
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
