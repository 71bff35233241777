"""Checks of central: reachable, the gateway's token accepted, and the clocks agreeing.

Reachability and the clock come from `GET /healthz` (no token needed; its `server_time`,
or else the HTTP `Date`); the token from a heartbeat, the gateway's own authenticated call.
"""

from __future__ import annotations

from cloud_api.client import CentralClient
from cloud_api.errors import (
    CentralAuthError,
    CentralError,
    CentralRejected,
    CentralUnavailable,
)
from gateway.app.doctor.model import Finding, Result
from gateway.settings import Settings

CLOCK_WARN_S = 2.0


async def central(settings: Settings) -> list[Finding]:
    c = settings.central
    if c.url is None:
        return [Finding("central", Result.SKIP, "no [central] url: standalone gateway")]
    token = c.token.get_secret_value() if c.token is not None else ""
    async with CentralClient(c.url, token, timeout_s=c.timeout_s, verify_tls=c.verify_tls,
                             ca_file=c.ca_file) as client:
        try:
            await client.health()
        except CentralError as exc:
            return [Finding("central", Result.FAIL, f"{c.url}: {exc}",
                            "check [central] url, DNS, the proxy and the firewall; "
                            "https needs ca_file for a private CA"),
                    Finding("central auth", Result.SKIP, "central did not answer"),
                    Finding("clock", Result.SKIP, "central did not answer")]
        return [Finding("central", Result.OK, f"{c.url} answers"),
                await _auth(client, settings), _clock(client.clock_offset_ms, settings)]


async def _auth(client: CentralClient, settings: Settings) -> Finding:
    site = settings.site
    fix = (f"issue a token for this gateway (mallgate central token --mall {site.mall_id} "
           f"--gateway {site.gateway_id}) and put it in [central] token_file")
    if settings.central.token is None:
        return Finding("central auth", Result.FAIL, "no token configured", fix)
    try:
        await client.heartbeat(site.gateway_id, {})
    except CentralAuthError as exc:
        return Finding("central auth", Result.FAIL,
                       f"token refused (HTTP {exc.status}) for gateway {site.gateway_id} "
                       f"of mall {site.mall_id}", fix)
    except CentralRejected as exc:
        return Finding("central auth", Result.FAIL, f"heartbeat refused: {exc}",
                       "check [site] mall_id and gateway_id as registered with central")
    except CentralUnavailable as exc:
        return Finding("central auth", Result.FAIL, f"heartbeat: {exc}",
                       "central answers /healthz but not the heartbeat: see its log")
    return Finding("central auth", Result.OK, f"token accepted for gateway {site.gateway_id}")


def _clock(offset_ms: float | None, settings: Settings) -> Finding:
    if offset_ms is None:
        return Finding("clock", Result.WARN, "central's answer carried no time",
                       "upgrade central, or check the clock by hand (timedatectl)")
    offset_s = offset_ms / 1000
    detail = f"central's clock is {offset_s:+.1f} s from this machine's"
    fix = ("turn on time sync: sudo timedatectl set-ntp true (systemd-timesyncd or chrony), "
           "then timedatectl status")
    if abs(offset_s) > settings.kiosk.clock_skew_s:
        return Finding("clock", Result.FAIL, f"{detail}, beyond [kiosk] clock_skew_s "
                       f"({settings.kiosk.clock_skew_s} s): QR tokens and holds expire wrongly",
                       fix)
    if abs(offset_s) > CLOCK_WARN_S:
        return Finding("clock", Result.WARN, detail, fix)
    return Finding("clock", Result.OK, detail)
