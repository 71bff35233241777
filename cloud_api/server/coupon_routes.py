"""The back office's coupon endpoints: define a campaign, issue it, list a member's
coupons, redeem online, void. The work is `coupons.py`'s, one transaction each."""

from __future__ import annotations

from aiohttp import web

from cloud_api.server.app import NOTIFIER, STORAGE, read_body
from cloud_api.server.codes import Code
from cloud_api.server.http_errors import error
from gateway.loyalty import basket_from_wire


async def put_campaign(request: web.Request) -> web.Response:
    body = await read_body(request, "putCouponCampaign")
    campaign = await request.app[STORAGE].put_campaign(
        request.match_info["mall"], request.match_info["campaign"], body)
    return web.json_response(campaign)


async def issue_campaign(request: web.Request) -> web.Response:
    mall = request.match_info["mall"]
    body = await read_body(request, "issueCoupons")
    result = await request.app[STORAGE].issue_coupons(mall, request.match_info["campaign"],
                                                      body)
    if result["issued"]:
        request.app[NOTIFIER].notify(mall)  # the coupons are on the change feed
    return web.json_response(result, status=201 if result["issued"] else 200)


async def member_coupons(request: web.Request) -> web.Response:
    coupons = await request.app[STORAGE].member_coupons(request.match_info["mall"],
                                                        request.match_info["member"])
    return web.json_response({"coupons": coupons})


async def redeem_coupon(request: web.Request) -> web.Response:
    mall = request.match_info["mall"]
    body = await read_body(request, "redeemCoupon")
    try:
        basket = basket_from_wire(body)
    except ValueError as exc:
        raise error(400, Code.INVALID_REQUEST, str(exc)) from None
    result = await request.app[STORAGE].redeem_coupon(
        mall, request.match_info["code"], redemption_id=body["redemption_id"],
        member_id=body.get("member_id"), basket=basket)
    if not result["duplicate"]:
        request.app[NOTIFIER].notify(mall)
    return web.json_response(result, status=200 if result["duplicate"] else 201)


async def void_coupon(request: web.Request) -> web.Response:
    mall = request.match_info["mall"]
    body = await read_body(request, "voidCoupon")
    result = await request.app[STORAGE].void_coupon(mall, request.match_info["coupon"],
                                                    str(body.get("reason", "")))
    request.app[NOTIFIER].notify(mall)
    return web.json_response(result)


def add_routes(router: web.UrlDispatcher, mall: str) -> None:
    router.add_put(mall + "/coupon-campaigns/{campaign}", put_campaign)
    router.add_post(mall + "/coupon-campaigns/{campaign}/issue", issue_campaign)
    router.add_get(mall + "/members/{member}/coupons", member_coupons)
    router.add_post(mall + "/coupons/{code}/redeem", redeem_coupon)
    router.add_post(mall + "/coupons/{coupon}/void", void_coupon)
