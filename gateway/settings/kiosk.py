"""The `[kiosk]` section: the MQTT link to the mall's kiosks and how kiosk requests are served."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator

from gateway.settings.base import SettingsModel


class KioskSettings(SettingsModel):
    """Kiosks over MQTT (lty/v1/{site}/kiosk/...): broker, credentials, limits, identity keys.

    The broker settings here are those of the gateway's one MQTT link, which BLE remote
    receivers share."""

    enabled: bool = Field(
        default=False,
        description="Serve kiosk requests over MQTT. Off: the gateway connects to the broker "
        "below only for BLE remote receivers ([[ble.receivers]]).",
    )
    broker: Literal["embedded", "external"] = Field(
        default="external",
        description="`external`: connect to the mall's broker at `host`:`port` (production, "
        "see config/mosquitto); `embedded`: start a loopback-only demo broker listening on "
        "127.0.0.1:`port` (see `embedded_broker`).",
    )
    embedded_broker: Literal["auto", "mosquitto", "iotcore"] = Field(
        default="auto",
        description="Which demo broker `broker = \"embedded\"` starts: `auto` runs mosquitto "
        "from PATH if installed, else rumqttd from the `iotcore` package (`pip install "
        "'mallgate[broker]'`; MQTT v5 only, state in memory only); `mosquitto` or "
        "`iotcore` forces one.",
    )
    host: str = Field(default="127.0.0.1", pattern=r"^\S+$",
                      description="Broker host (external broker).")
    port: int = Field(default=1883, ge=1, le=65_535,
                      description="TCP port of the broker: the one the gateway connects to "
                      "(external broker), or the one the embedded demo broker listens on "
                      "(loopback).")
    tls: bool = Field(
        default=False,
        description="Connect with TLS, verifying the broker's certificate (against `ca_file` "
        "or the system's CAs). Never falls back to plaintext.",
    )
    ca_file: Path | None = Field(
        default=None, description="CA certificate(s) that sign the broker's TLS certificate.")
    client_id: str = Field(
        default="",
        max_length=64,
        pattern=r"^[A-Za-z0-9._-]*$",
        description="MQTT client id of the gateway, fixed so its persistent session "
        "survives restarts; empty uses `mallgate-{gateway_id}`.",
    )
    username: str | None = Field(
        default=None, max_length=64,
        description="Broker username of the gateway (the ACL's gateway user); unset "
        "connects anonymously (embedded demo broker only).",
    )
    password: SecretStr | None = Field(
        default=None,
        description="Broker password, a secret: give it as MALLGATE__KIOSK__PASSWORD.",
    )
    keepalive_s: int = Field(
        default=30, ge=5, le=600,
        description="MQTT keepalive in seconds; the broker publishes the gateway's Last Will "
        "about 1.5 x this after the gateway vanishes.",
    )
    session_expiry_s: int = Field(
        default=86_400, ge=60, le=2_592_000,
        description="How long the broker keeps the gateway's session and queued requests "
        "while the gateway is away, in seconds.",
    )
    max_payload_bytes: int = Field(
        default=16_384, ge=1024, le=262_144,
        description="Largest request payload accepted, in bytes; keep it at or below the "
        "broker's `max_packet_size`.",
    )
    rate_per_s: float = Field(
        default=5.0, gt=0, le=1000, allow_inf_nan=False,
        description="Requests per second one kiosk may make on average; beyond it the kiosk "
        "gets `rate_limited`.",
    )
    rate_burst: int = Field(
        default=20, ge=1, le=10_000,
        description="Requests one kiosk may make at once before `rate_per_s` applies.",
    )
    qr_key: SecretStr | None = Field(
        default=None,
        description="Key (shared with central) that signs the member app's QR tokens; unset "
        "refuses QR identification. A secret: give it as MALLGATE__KIOSK__QR_KEY.",
    )
    phone_hash_key: SecretStr | None = Field(
        default=None,
        description="Key of the keyed hash under which central stores phone numbers; unset "
        "refuses identification by phone. A secret: MALLGATE__KIOSK__PHONE_HASH_KEY.",
    )
    clock_skew_s: int = Field(
        default=60, ge=0, le=3600,
        description="Tolerance for the clocks of central (QR token expiry) and kiosks, in "
        "seconds.",
    )
    session_s: int = Field(
        default=300, ge=30, le=3600,
        description="How long the session `member.identify` returns authorizes check-in, "
        "redeem and offer claims at that kiosk, in seconds; after it the kiosk identifies "
        "the member again.",
    )
    embedded_dir: Path = Field(
        default=Path("var/mqtt"),
        description="Directory of the embedded broker's generated configuration, "
        "persistence and log.",
    )
    demo_members: int = Field(
        default=0, ge=0, le=1_000_000,
        description="Demo only: create this many demo members (cards DEMO0001..., 500 "
        "welcome points each) at start if the store has no members. 0 in production.",
    )

    @model_validator(mode="after")
    def _check(self) -> KioskSettings:
        if self.broker == "embedded" and self.tls:
            raise ValueError("the embedded broker listens on loopback without TLS")
        return self

