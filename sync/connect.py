"""The client for `[central]`, as the gateway's settings describe it."""

from __future__ import annotations

from cloud_api.client import CentralClient
from gateway.settings import Settings


def central_client(settings: Settings) -> CentralClient | None:
    """The client for `[central]`, or None when the gateway runs standalone."""
    central = settings.central
    if central.url is None or not settings.sync.enabled:
        return None
    token = central.token.get_secret_value() if central.token is not None else ""
    return CentralClient(central.url, token, timeout_s=central.timeout_s,
                         verify_tls=central.verify_tls, ca_file=central.ca_file)
