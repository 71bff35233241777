"""Valid settings that are still unsafe: said by `config check` and at startup, never fatal.

A plaintext central URL is allowed (a test bench, a central on the same box), but outside
loopback it sends the gateway's token and members' data readable to anyone on the path,
so it must never pass silently.
"""

from __future__ import annotations

import ipaddress
import logging
from urllib.parse import urlsplit

from gateway.settings.model import Settings
from gateway.settings.template_overlap import overlap_advice

log = logging.getLogger("gateway.settings")


def advice(settings: Settings) -> list[str]:
    """What is unsafe about these settings, one sentence each naming the fix."""
    said: list[str] = []
    central = settings.central
    if central.url is not None:
        parts = urlsplit(central.url)
        if parts.scheme == "http" and not is_loopback(parts.hostname or ""):
            said.append(f"[central] url {central.url} is plaintext http to another machine: "
                        "the token and members' data cross the network unencrypted; use "
                        "https:// (with ca_file for a private CA)")
        if parts.scheme == "https" and not central.verify_tls:
            said.append("[central] verify_tls = false: anyone on the path can pose as "
                        "central; set ca_file to central's CA instead")
    for template in settings.pos.templates:
        said += overlap_advice(template)
    return said


def log_advice(settings: Settings) -> None:
    for sentence in advice(settings):
        log.warning("%s", sentence)


def is_loopback(host: str) -> bool:
    """Whether `host` names this machine (`localhost` or a loopback address)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
