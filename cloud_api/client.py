"""Typed client of the central member API over one aiohttp session.

Every call has a timeout (a silent central that accepts the connection and never answers
is detected, not waited on forever), and every failure becomes one of the typed errors of
`cloud_api.errors`, so callers decide by class: retry later, re-authenticate, or give up.
`Retry-After` of a 429 or 503 is carried on the error for the caller's backoff.

Redirects are never followed: the client would send the batch and the token again to
wherever the answer points, over plain HTTP too. A redirect is `CentralRedirected`, naming
the `Location`, so the operator fixes `[central] url` instead.

    async with CentralClient(url, token) as central:
        result = await central.push_batch("gw-1", events)
"""

from __future__ import annotations

import asyncio
import json
import ssl
import time
import zlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import aiohttp
import orjson

from cloud_api.errors import (
    CentralAuthError,
    CentralError,
    CentralRejected,
    CentralUnavailable,
    CursorExpired,
    PayloadTooLarge,
)


class CentralRedirected(CentralRejected):
    """Central's address answered with a redirect (3xx), which is never followed."""

    def __init__(self, message: str, *, status: int, location: str) -> None:
        super().__init__(message, status=status, code="redirect")
        self.location = location


def _redirected(status: int, location: str, what: str) -> CentralRedirected:
    return CentralRedirected(
        f"{what}: central answered {status} to {location or '(no Location)'}; redirects are "
        "not followed: set [central] url to the address central really serves (https://)",
        status=status, location=location)


# Read the snapshot in pieces this size, so flow control holds the rest back at central.
SNAPSHOT_READ_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class Verdict:
    event_id: str
    status: str  # accepted | duplicate | rejected
    server_seq: int | None
    code: str | None
    message: str | None


@dataclass(frozen=True, slots=True)
class ChangesPage:
    changes: list[dict[str, Any]]
    next_cursor: int
    head: int
    # As central sent them: the gateway checks each one (a bad one must not void the page).
    allowances: dict[str, Any]


def retry_after_s(value: str | None, now: datetime | None = None) -> float | None:
    """`Retry-After` as seconds: either delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def event_json(event_id: str, event_type: str, payload_json: str) -> str:
    """One event of a batch, with the payload embedded as the JSON text it is stored as."""
    return (f'{{"event_id":{json.dumps(event_id)},"type":{json.dumps(event_type)},'
            f'"payload":{payload_json}}}')


@dataclass(frozen=True, slots=True)
class PublishedRules:
    """Central's answer to a published loyalty rules version: `duplicate` when the version
    was published before with this very content (nothing changed)."""

    server_seq: int
    version: str
    effective_at: str  # UTC, as central keeps it
    duplicate: bool


def batch_body(events: Sequence[str]) -> bytes:
    return ('{"events":[' + ",".join(events) + "]}").encode()


class CentralClient:
    def __init__(self, base_url: str, token: str, *, timeout_s: float = 10.0,
                 verify_tls: bool = True, ca_file: Path | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self._headers = {"Authorization": f"Bearer {token}"}
        self._verify_tls = verify_tls
        self._ca_file = ca_file
        self._session: aiohttp.ClientSession | None = None
        # Central's clock minus ours, from the last answer that carried `server_time`.
        self.clock_offset_ms: float | None = None

    async def __aenter__(self) -> Self:
        self.open()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.close()

    def open(self) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                headers=self._headers, connector=aiohttp.TCPConnector(ssl=self._tls()))

    def _tls(self) -> ssl.SSLContext | bool:
        # Verified against `ca_file` (a private CA) or the system's CAs; False only when
        # told to.
        if not self._verify_tls:
            return False
        if self._ca_file is None:
            return True
        return ssl.create_default_context(cafile=str(self._ca_file))

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _s(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("CentralClient is not open")
        return self._session

    # -- the transport: one request, one typed outcome ----------------------------------
    async def _request(self, method: str, path: str, *, timeout_s: float | None = None,
                       params: dict[str, str] | None = None, body: bytes | None = None,
                       json_body: Any = None, headers: dict[str, str] | None = None,
                       ) -> Any:
        if json_body is not None:
            body = json.dumps(json_body, ensure_ascii=False).encode()
        total = timeout_s or self.timeout_s
        sent = time.monotonic()
        wall_sent = time.time()
        try:
            async with asyncio.timeout(total):
                async with self._s().request(
                    method, self.base_url + path, params=params, data=body,
                    headers={"Content-Type": "application/json", **(headers or {})},
                    allow_redirects=False,
                ) as response:
                    text = await response.text()
                    status = response.status
                    location = response.headers.get("Location", "")
                    retry_after = retry_after_s(response.headers.get("Retry-After"))
        except TimeoutError:
            raise CentralUnavailable(f"{method} {path}: no answer within {total:g} s",
                                     code="timeout") from None
        except aiohttp.ClientError as exc:
            raise CentralUnavailable(f"{method} {path}: {exc}", code="unreachable") from None
        if 300 <= status < 400:
            raise _redirected(status, location, f"{method} {path}")
        if status >= 300:
            raise _error(status, text, retry_after, f"{method} {path}")
        data = json.loads(text) if text else None
        if isinstance(data, dict) and isinstance(data.get("server_time"), str):
            self._observe_clock(data["server_time"], wall_sent, time.monotonic() - sent)
        return data

    def _observe_clock(self, server_time: str, wall_sent: float, rtt: float) -> None:
        try:
            server = datetime.fromisoformat(server_time).timestamp()
        except ValueError:
            return
        self.clock_offset_ms = (server - (wall_sent + rtt / 2)) * 1000

    # -- gateway calls ------------------------------------------------------------------
    async def push_batch(self, gateway_id: str, events: Sequence[str], *,
                         idempotency_key: str | None = None) -> list[Verdict]:
        """Send events (each from `event_json`); one verdict per event, in order."""
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        data = await self._request("POST", f"/v1/gateways/{gateway_id}/events:batch",
                                   body=batch_body(events), headers=headers)
        return [Verdict(v["event_id"], v["status"], v.get("server_seq"), v.get("code"),
                        v.get("message")) for v in data["verdicts"]]

    async def changes(self, gateway_id: str, cursor: int, *, limit: int = 500,
                      wait_s: int = 0) -> ChangesPage:
        data = await self._request(
            "GET", f"/v1/gateways/{gateway_id}/changes",
            params={"cursor": str(cursor), "limit": str(limit), "wait": str(wait_s)},
            timeout_s=self.timeout_s + wait_s)
        try:
            return ChangesPage(list(data["changes"]), int(data["next_cursor"]),
                               int(data["head"]),
                               {a["account_id"]: a["points"] for a in data["allowances"]})
        except (KeyError, TypeError, ValueError) as exc:
            raise CentralRejected(f"changes: a page the gateway cannot read ({exc!r})",
                                  code="malformed_page") from None

    async def health(self) -> dict[str, Any]:
        """`GET /healthz`: whether central answers, without the token; observes its clock."""
        data: dict[str, Any] = await self._request("GET", "/healthz")
        return data

    async def heartbeat(self, gateway_id: str, status: dict[str, Any]) -> dict[str, Any]:
        data: dict[str, Any] = await self._request(
            "POST", f"/v1/gateways/{gateway_id}/heartbeat", json_body=status)
        return data

    async def snapshot(self, gateway_id: str, *, cursor: int | None = None,
                       phase: str = "member", after: str = "",
                       idle_timeout_s: float | None = None) -> AsyncIterator[dict[str, Any]]:
        """The snapshot's lines, decompressed and parsed, as they arrive. Each read has
        its own timeout, so a stalled stream fails instead of hanging."""
        params = {"phase": phase, "after": after}
        if cursor is not None:
            params["cursor"] = str(cursor)
        idle = idle_timeout_s or self.timeout_s
        url = f"{self.base_url}/v1/gateways/{gateway_id}/snapshot"
        try:
            async with asyncio.timeout(idle):
                response = await self._s().get(url, params=params, auto_decompress=False,
                                                allow_redirects=False)
        except TimeoutError:
            raise CentralUnavailable("snapshot: no answer", code="timeout") from None
        except aiohttp.ClientError as exc:
            raise CentralUnavailable(f"snapshot: {exc}", code="unreachable") from None
        async with response:
            await _refuse(response, "snapshot")
            gz = zlib.decompressobj(31)
            pending = b""
            while True:
                try:
                    async with asyncio.timeout(idle):
                        chunk = await response.content.read(SNAPSHOT_READ_BYTES)
                except TimeoutError:
                    raise CentralUnavailable("snapshot stalled", code="timeout") from None
                except aiohttp.ClientError as exc:
                    raise CentralUnavailable(f"snapshot broke: {exc}",
                                             code="unreachable") from None
                if not chunk:
                    break
                while chunk:  # bounded pieces: memory stays flat whatever the ratio
                    pending += gz.decompress(chunk, SNAPSHOT_READ_BYTES * 8)
                    chunk = gz.unconsumed_tail
                    complete, _, pending = pending.rpartition(b"\n")
                    if complete:
                        # One parse for many lines: far cheaper than one call per line;
                        # orjson parses them in half the time json takes.
                        for line in orjson.loads(b"[" + complete.replace(b"\n", b",") + b"]"):
                            yield line
            if pending.strip():
                yield orjson.loads(pending)

    # -- enrolment at a kiosk ------------------------------------------------------------
    async def request_enrolment_code(self, gateway_id: str, phone: str) -> dict[str, Any]:
        """Have central send a one-time code to `phone`; `phone_masked`, `expires_at`."""
        data: dict[str, Any] = await self._request(
            "POST", f"/v1/gateways/{gateway_id}/enrolment-codes", json_body={"phone": phone})
        return data

    async def enrol(self, gateway_id: str, enrolment: dict[str, Any]) -> dict[str, Any]:
        """Enrol a member (`enrolMember`): `{"member": edge view, "created": bool}`."""
        data: dict[str, Any] = await self._request(
            "POST", f"/v1/gateways/{gateway_id}/enrolments", json_body=enrolment)
        return data

    # -- back-office calls (mini-program, admin) ----------------------------------------
    async def create_member(self, mall_id: str, profile: dict[str, Any]) -> dict[str, Any]:
        data: dict[str, Any] = await self._request("POST", f"/v1/malls/{mall_id}/members",
                                                   json_body=profile)
        return data

    async def get_member(self, mall_id: str, member_id: str) -> dict[str, Any]:
        data: dict[str, Any] = await self._request(
            "GET", f"/v1/malls/{mall_id}/members/{member_id}")
        return data

    async def update_member(self, mall_id: str, member_id: str,
                            changes: dict[str, Any]) -> dict[str, Any]:
        data: dict[str, Any] = await self._request(
            "PATCH", f"/v1/malls/{mall_id}/members/{member_id}", json_body=changes)
        return data

    async def erase_member(self, mall_id: str, member_id: str) -> None:
        await self._request("DELETE", f"/v1/malls/{mall_id}/members/{member_id}")

    async def redeem(self, mall_id: str, member_id: str, *, request_id: str, cost: int,
                     item: str) -> dict[str, Any]:
        data: dict[str, Any] = await self._request(
            "POST", f"/v1/malls/{mall_id}/members/{member_id}/redemptions",
            json_body={"request_id": request_id, "cost": cost, "item": item})
        return data

    async def put_coupon_campaign(self, mall_id: str, campaign_id: str,
                                  definition: dict[str, Any]) -> dict[str, Any]:
        data: dict[str, Any] = await self._request(
            "PUT", f"/v1/malls/{mall_id}/coupon-campaigns/{campaign_id}",
            json_body=definition)
        return data

    async def issue_coupons(self, mall_id: str, campaign_id: str, *,
                            member_ids: Sequence[str] = (), tiers: Sequence[str] = (),
                            tags: Sequence[str] = ()) -> dict[str, Any]:
        data: dict[str, Any] = await self._request(
            "POST", f"/v1/malls/{mall_id}/coupon-campaigns/{campaign_id}/issue",
            json_body={"member_ids": list(member_ids), "tiers": list(tiers),
                       "tags": list(tags)})
        return data

    async def member_coupons(self, mall_id: str, member_id: str) -> list[dict[str, Any]]:
        data = await self._request("GET", f"/v1/malls/{mall_id}/members/{member_id}/coupons")
        return list(data["coupons"])

    async def redeem_coupon(self, mall_id: str, code: str, *, redemption_id: str,
                            basket: dict[str, Any],
                            member_id: str | None = None) -> dict[str, Any]:
        body = {"redemption_id": redemption_id, **basket}
        data: dict[str, Any] = await self._request(
            "POST", f"/v1/malls/{mall_id}/coupons/{code}/redeem",
            json_body=body | ({"member_id": member_id} if member_id else {}))
        return data

    async def void_coupon(self, mall_id: str, coupon_id: str, reason: str) -> dict[str, Any]:
        data: dict[str, Any] = await self._request(
            "POST", f"/v1/malls/{mall_id}/coupons/{coupon_id}/void",
            json_body={"reason": reason})
        return data

    async def adjust(self, mall_id: str, member_id: str, *, request_id: str, points: int,
                     reason: str) -> dict[str, Any]:
        data: dict[str, Any] = await self._request(
            "POST", f"/v1/malls/{mall_id}/members/{member_id}/adjustments",
            json_body={"request_id": request_id, "points": points, "reason": reason})
        return data

    async def checkin(self, mall_id: str, member_id: str) -> dict[str, Any]:
        """The member's daily check-in (the mini-program's): once per local day across
        every channel; `verdict.status` says whether this call checked in."""
        data: dict[str, Any] = await self._request(
            "POST", f"/v1/malls/{mall_id}/members/{member_id}/checkins")
        return data

    async def put_offer(self, mall_id: str, offer_id: str, offer: dict[str, Any]) -> int:
        data = await self._request("PUT", f"/v1/malls/{mall_id}/offers/{offer_id}",
                                   json_body=offer)
        return int(data["server_seq"])

    async def put_config(self, mall_id: str, kind: str, version: str, payload: Any, *,
                         effective_at: str | None = None) -> int:
        """Publish a configuration version; `effective_at` (ISO-8601): when a `loyalty`
        rules version comes into force (now if None). Its `server_seq`."""
        data = await self._put_config(mall_id, kind, version, payload, effective_at)
        return int(data["server_seq"])

    async def publish_rules(self, mall_id: str, version: str, payload: Any, *,
                            effective_at: str | None = None) -> PublishedRules:
        """`put_config` of a `loyalty` rules version, with all central answers of it."""
        data = await self._put_config(mall_id, "loyalty", version, payload, effective_at)
        try:
            return PublishedRules(server_seq=int(data["server_seq"]),
                                  version=str(data["version"]),
                                  effective_at=str(data["effective_at"]),
                                  duplicate=data["duplicate"] is True)
        except (KeyError, TypeError, ValueError):
            # A central older than this client answers the `server_seq` alone.
            raise CentralError(f"PUT /v1/malls/{mall_id}/config/loyalty: published, but "
                               f"the answer lacks the version kept: {str(data)[:200]}",
                               code="bad_answer") from None

    async def _put_config(self, mall_id: str, kind: str, version: str, payload: Any,
                          effective_at: str | None) -> dict[str, Any]:
        body: dict[str, Any] = {"version": version, "payload": payload}
        if effective_at is not None:
            body["effective_at"] = effective_at
        data: dict[str, Any] = await self._request(
            "PUT", f"/v1/malls/{mall_id}/config/{kind}", json_body=body)
        return data

    async def list_rules(self, mall_id: str) -> dict[str, Any]:
        """The mall's loyalty rules versions as central keeps them: `versions` (each with
        `version`, `effective_at`, `server_seq`, `published_at`, `in_force`) by effective
        time, and `in_force`, the version in force now (None: central's own rules)."""
        data: dict[str, Any] = await self._request("GET", f"/v1/malls/{mall_id}/config/loyalty")
        return data


async def _refuse(response: aiohttp.ClientResponse, what: str) -> None:
    """Raise the typed error of a response that is not a success."""
    if 300 <= response.status < 400:
        raise _redirected(response.status, response.headers.get("Location", ""), what)
    if response.status >= 300:
        raise _error(response.status, await response.text(),
                     retry_after_s(response.headers.get("Retry-After")), what)


def _error(status: int, text: str, retry_after: float | None, what: str) -> CentralError:
    try:
        body = json.loads(text)["error"]
        code, message = str(body["code"]), str(body["message"])
        details = body.get("details") or {}
    except (ValueError, KeyError, TypeError):
        code, message, details = f"http_{status}", text[:200], {}
    message = f"{what}: {status} {message}"
    if status in {401, 403}:
        return CentralAuthError(message, status=status, code=code, details=details)
    if status == 410:
        return CursorExpired(message, status=status, code=code, details=details)
    if status == 413:
        return PayloadTooLarge(message, status=status, code=code, details=details)
    if status == 429 or status >= 500:
        return CentralUnavailable(message, status=status, code=code, retry_after=retry_after)
    return CentralRejected(message, status=status, code=code, details=details)
