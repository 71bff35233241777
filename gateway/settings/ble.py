"""The `[ble]` section: receivers, zones and welcome offers of BLE proximity."""

from __future__ import annotations

import uuid
from datetime import time
from typing import Literal

from pydantic import Field, model_validator

from gateway.loyalty.calendar import HH_MM_PATTERN
from gateway.settings.base import SettingsModel

_SLUG = r"^[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])?$"


class BleZone(SettingsModel):
    """An area where members are detected: an entrance, a store front, the atrium."""

    id: str = Field(pattern=_SLUG, description="Zone id (lower-case slug); required.")
    kind: Literal["entrance", "store", "area"] = Field(
        default="area", description="What the zone is; offers can target a kind of zone.")
    kiosks: tuple[str, ...] = Field(
        default=(),
        description="Kiosks (their MQTT ids) that show this zone's welcome offers; none: visits "
        "are recorded, no offer is shown.",
    )
    enter_rssi_dbm: float = Field(
        default=-75.0, ge=-110, le=0, allow_inf_nan=False,
        description="Smoothed signal at or above which a member counts as in the zone, in "
        "dBm; tune per zone (a phone in a pocket 2-3 m away reads about -70).",
    )
    exit_hysteresis_db: float = Field(
        default=10.0, ge=0, le=40, allow_inf_nan=False,
        description="How far under `enter_rssi_dbm` the signal must fall before the member "
        "counts as gone, in dB; smaller values make a member standing still flap.",
    )


class BleAdapter(SettingsModel):
    """A Bluetooth adapter of this machine, scanning for one zone."""

    name: str = Field(pattern=r"^hci[0-9]{1,2}$", description='BlueZ adapter, e.g. "hci0".')
    zone: str = Field(pattern=_SLUG, description="Zone the adapter hears; required.")
    mode: Literal["active", "passive"] = Field(
        default="passive",
        description="`passive` only listens (no scan requests, less radio traffic, enough for "
        "beacon frames); `active` also asks devices for their scan response.",
    )


class BleReceiver(SettingsModel):
    """A remote receiver (e.g. an ESP32 node) forwarding sightings over MQTT."""

    id: str = Field(pattern=_SLUG,
                    description="Receiver id, its MQTT username (lower-case slug); required.")
    zone: str = Field(pattern=_SLUG, description="Zone the receiver hears; required.")


class WelcomeSettings(SettingsModel):
    """When a detected member gets a welcome offer on the zone's kiosks."""

    enabled: bool = Field(default=True, description="Show welcome offers on arrival.")
    cooldown_s: int = Field(
        default=86_400, ge=0, le=31_536_000,
        description="After an offer, the same member gets no other offer in the same zone for "
        "this long, in seconds. Default: a day.",
    )
    quiet_start: str | None = Field(
        default=None, pattern=HH_MM_PATTERN,
        description='Local time from which no offer is shown (e.g. "21:30"); with '
        "`quiet_end`. Unset: no quiet hours.",
    )
    quiet_end: str | None = Field(
        default=None, pattern=HH_MM_PATTERN,
        description='Local time until which no offer is shown (e.g. "10:00"); may be '
        "earlier than `quiet_start` (the quiet hours then span midnight).",
    )
    show_expiry_s: int = Field(
        default=120, ge=5, le=3600,
        description="How long a `cmd/offer.show` waits for an offline kiosk before the broker "
        "drops it, in seconds (MQTT message expiry).",
    )
    claim_s: int = Field(
        default=3600, ge=60, le=604_800,
        description="How long after it is shown an offer can be claimed at a kiosk, in "
        "seconds.",
    )

    @model_validator(mode="after")
    def _quiet_pair(self) -> WelcomeSettings:
        if (self.quiet_start is None) != (self.quiet_end is None):
            raise ValueError("quiet_start and quiet_end are set together or not at all")
        return self

    @property
    def quiet_hours(self) -> tuple[time, time] | None:
        """(start, end) in local time, or None without quiet hours."""
        if self.quiet_start is None or self.quiet_end is None:
            return None
        return time.fromisoformat(self.quiet_start), time.fromisoformat(self.quiet_end)


class BleSettings(SettingsModel):
    """BLE proximity: which receivers hear which zones, and welcome offers on arrival."""

    enabled: bool = Field(
        default=False,
        description="Track members' phones and BLE cards in the zones below. Remote "
        "receivers use the [kiosk] broker settings, even with [kiosk] disabled; welcome "
        "offers need [kiosk] enabled.",
    )
    mall_uuid: uuid.UUID | None = Field(
        default=None,
        description="The iBeacon proximity UUID under which the mall's iOS mini-program "
        "advertises a member's rotating token. Unset: only Eddystone-EID and static ids.",
    )
    tick_s: float = Field(
        default=1.0, gt=0, le=10, allow_inf_nan=False,
        description="How often silent members are checked for an exit and EID windows "
        "turned, in seconds.",
    )
    key_refresh_s: float = Field(
        default=30.0, gt=0, le=3600, allow_inf_nan=False,
        description="How often members' beacon keys changed by sync are reloaded, in "
        "seconds.",
    )
    zones: tuple[BleZone, ...] = Field(
        default=(), description="The zones where members are detected.")
    adapters: tuple[BleAdapter, ...] = Field(
        default=(), description="Local Bluetooth adapters, one scanner each.")
    receivers: tuple[BleReceiver, ...] = Field(
        default=(), description="Remote receivers forwarding sightings over MQTT.")
    welcome: WelcomeSettings = WelcomeSettings()

    @model_validator(mode="after")
    def _zones_known(self) -> BleSettings:
        zones = [zone.id for zone in self.zones]
        if len(set(zones)) != len(zones):
            raise ValueError("zone ids must be unique")
        for part, ids in (("adapters", [a.name for a in self.adapters]),
                          ("receivers", [r.id for r in self.receivers])):
            if len(set(ids)) != len(ids):
                raise ValueError(f"{part} must be unique")
        for zone in [a.zone for a in self.adapters] + [r.zone for r in self.receivers]:
            if zone not in zones:
                raise ValueError(f"zone {zone!r} is not one of [[ble.zones]]")
        return self
