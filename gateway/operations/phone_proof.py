"""The proof of a `member.identify` by phone: a bare number, or one proved by a code.

A phone number is easy to learn, so a session it opens reads and adds points but does not
spend them (`sessions.UNVERIFIED`). While central is reachable, an identification by phone
without `code` has central text a one-time code to the number (the enrolment codes: kept
hashed, short-lived, attempt-limited) and says so in the reply (`verification`); the
kiosk asks the member for it, and the identification with `code` has central check it and
opens a session with the proof `phone_code`, which spends. Offline nobody can check a
code: the bare-number session still serves check-in and balance, the mall keeps working,
and spending needs the card or the app's QR code.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from gateway.central import EnrolmentPort, EnrolmentRefused, EnrolmentUnavailable
from gateway.loyalty import InvalidPhone
from gateway.loyalty.phones import mask_phone, normalise_phone
from gateway.operations.enrol import CODE_REFUSALS
from gateway.operations.model import OperationRequest, RefusalCode, Refused
from gateway.operations.sessions import Proof

log = logging.getLogger(__name__)


def _unavailable() -> Refused:
    return Refused("verification_unavailable", "central cannot check the code now: identify "
                   "the member by their card or the QR code of their app")


def verification_id(request_key: str) -> str:
    """Central's id of the check a request makes: a redelivered request (after a crash
    between central's answer and the reply) passes again with the code it already used."""
    return "v-" + hashlib.sha256(f"verify\x1f{request_key}".encode()).hexdigest()[:24]


@dataclass(frozen=True, slots=True)
class PhoneProofs:
    central: Callable[[], EnrolmentPort | None]

    async def prove(self, request: OperationRequest) -> tuple[Proof, dict[str, Any]]:
        """The proof of this identification by phone and what the reply adds about it."""
        try:
            number = normalise_phone(request.data["value"])
        except InvalidPhone as exc:
            raise Refused("invalid_payload", f"data/value: {exc}") from None
        port = self.central()
        code = request.data.get("code")
        if code is None:
            return "phone", await self._send_code(port, number)
        if port is None:
            raise _unavailable()
        try:
            await port.verify_code(verification_id(request.key), number, code)
        except EnrolmentUnavailable:
            raise _unavailable() from None
        except EnrolmentRefused as refused:
            if refused.code not in CODE_REFUSALS:
                # Central cannot check codes for this mall (no phone key, say): the kiosk
                # can do nothing about it but ask for the card.
                log.warning("central refused to check a phone code: %s %s", refused.code,
                            refused.msg)
                raise _unavailable() from None
            raise Refused(cast(RefusalCode, refused.code), refused.msg) from None
        return "phone_code", {}

    @staticmethod
    async def _send_code(port: EnrolmentPort | None, number: str) -> dict[str, Any]:
        """Have central text a code, if it can: without one the session still reads and
        adds points, so a failure here is logged, not refused."""
        if port is None:
            return {}
        try:
            sent = await port.request_code(number)
        except (EnrolmentUnavailable, EnrolmentRefused) as exc:
            log.warning("no verification code sent to %s: %s", mask_phone(number), exc)
            return {}
        return {"verification": {"step": "code_sent", "phone_masked": sent["phone_masked"],
                                 "expires_at": sent["expires_at"]}}
