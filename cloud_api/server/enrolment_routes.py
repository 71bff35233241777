"""The gateway's enrolment routes (`enrolment.py`): ask for a code, enrol a member."""

from __future__ import annotations

import logging

from aiohttp import web

from cloud_api.server.app import NOTIFIER, STORAGE, principal_of, read_body
from cloud_api.server.codes import Code
from cloud_api.server.enrolment import CodeSender, LogSender
from cloud_api.server.http_errors import error
from gateway.loyalty import InvalidPhone
from gateway.loyalty.phones import mask_phone, normalise_phone
from gateway.loyalty.wire import to_text

log = logging.getLogger(__name__)

CODE_SENDER: web.AppKey[CodeSender] = web.AppKey("code_sender")


def _number(body: dict[str, object]) -> str:
    try:
        return normalise_phone(str(body["phone"]))
    except InvalidPhone as exc:
        raise error(400, Code.INVALID_REQUEST, f"phone: {exc}", field="phone",
                    rule="format") from None


async def request_code(request: web.Request) -> web.Response:
    """A one-time code for the number, sent by the mall's code sender."""
    body = await read_body(request, "requestEnrolmentCode")
    number = _number(body)
    mall = principal_of(request).mall_id
    code, expires = await request.app[STORAGE].new_enrolment_code(mall, number)
    try:
        await request.app[CODE_SENDER].send(mall, number, code, expires)
    except Exception as exc:  # any failure of the sender: the gateway may ask again
        log.warning("enrolment code for %s not sent: %s", mask_phone(number), exc)
        raise error(503, Code.UNAVAILABLE, "the code could not be sent; try again") from None
    return web.json_response({"phone_masked": mask_phone(number),
                              "expires_at": to_text(expires)}, status=202)


async def enrol(request: web.Request) -> web.Response:
    """Enrol the member with this number: created now (201) or already a member (200)."""
    body = await read_body(request, "enrolMember")
    if "phone" in body:
        body["phone"] = _number(body)
    mall = principal_of(request).mall_id
    member, created = await request.app[STORAGE].enrol(mall, body)
    if created:
        request.app[NOTIFIER].notify(mall)
    return web.json_response({"member": member, "created": created},
                             status=201 if created else 200)


def add_enrolment_routes(app: web.Application, gateway_prefix: str,
                         sender: CodeSender | None) -> None:
    app[CODE_SENDER] = sender or LogSender()
    app.router.add_post(gateway_prefix + "/enrolment-codes", request_code)
    app.router.add_post(gateway_prefix + "/enrolments", enrol)
