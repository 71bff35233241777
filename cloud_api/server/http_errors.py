"""The one error shape, for every error: `{"error": {"code", "message", "details"}}`.

Handlers raise `ApiError`; storage raises `StorageError`; aiohttp raises its own HTTP
exceptions (unknown route, wrong method, body too large); anything else is a fault of
central, answered 500 `internal` with an `error_id` that names the logged traceback, so
no message of an unexpected exception (which may hold data) reaches the client.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from cloud_api.server.codes import Code
from cloud_api.server.storage import StorageError

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# aiohttp's own refusals, as the contract's codes.
_HTTP_CODES = {400: Code.INVALID_REQUEST, 401: Code.UNAUTHORIZED, 403: Code.FORBIDDEN,
               404: Code.NOT_FOUND, 405: Code.METHOD_NOT_ALLOWED, 413: Code.TOO_LARGE}


class ApiError(Exception):
    """An answer other than 2xx, in the contract's shape."""

    def __init__(self, status: int, code: Code, message: str, **details: Any) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.details = details

    def response(self) -> web.Response:
        return json_error(self.status, self.code, str(self), self.details)


def error(status: int, code: Code, message: str, **details: Any) -> ApiError:
    return ApiError(status, code, message, **details)


def json_error(status: int, code: str, message: str,
               details: dict[str, Any] | None = None) -> web.Response:
    return web.json_response(
        {"error": {"code": code, "message": message, "details": details or {}}},
        status=status)


def errors_middleware(max_body_bytes: int) -> Callable[..., Awaitable[web.StreamResponse]]:
    @web.middleware
    async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except ApiError as exc:
            return exc.response()
        except StorageError as exc:
            return json_error(exc.status, exc.code, str(exc), exc.details)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            code = _HTTP_CODES.get(exc.status, Code.INTERNAL)
            details = {"limit": max_body_bytes} if exc.status == 413 else {}
            return json_error(exc.status, code, exc.reason, details)
        except (asyncio.CancelledError, ConnectionResetError):
            raise
        except Exception:
            error_id = secrets.token_hex(8)
            log.exception("error %s in %s %s", error_id, request.method, request.path)
            return json_error(500, Code.INTERNAL, "central failed; the error id names it in "
                              "central's log", {"error_id": error_id})
    return errors
