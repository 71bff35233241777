"""Holds: points a till reserves before a sale pays with them, applied exactly once.

`model` is what a till asks and is answered (pure values, importable by the sans-io POS
protocol), `rows` reads and changes holds inside a writer transaction (what other checks
subtract, the capture a sale makes), `service` authorizes and voids, one writer op each.
"""

from gateway.holds.model import (
    HOLD_CODES,
    AuthorizeRequest,
    BasketLine,
    HoldRefused,
    VoidRequest,
    hold_id_for,
)

__all__ = ["HOLD_CODES", "AuthorizeRequest", "BasketLine", "HoldRefused", "VoidRequest",
           "hold_id_for"]
