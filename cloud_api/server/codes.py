"""Every error code central answers with, so the contract can be checked against them.

`Code` is the `error.code` of a non-2xx answer; `VerdictCode` the `code` of a pushed event
rejected for good. Both lists are `enum`s in `openapi.yaml`, and a test keeps them equal.
"""

from __future__ import annotations

from enum import StrEnum


class Code(StrEnum):
    # 400: the request is wrong
    INVALID_JSON = "invalid_json"  # not JSON, not UTF-8, nested too deep, not an object
    INVALID_REQUEST = "invalid_request"  # a body outside its schema
    INVALID_MEMBER = "invalid_member"  # a member profile outside its schema
    INVALID_BATCH = "invalid_batch"  # a batch whose `events` is not a list of objects
    INVALID_PARAMETER = "invalid_parameter"  # a query parameter out of range
    INVALID_RULES = "invalid_rules"  # a loyalty rules version that cannot be applied
    # 401 / 403
    UNAUTHORIZED = "unauthorized"
    FORBIDDEN = "forbidden"
    # 404 / 405 / 409 / 410
    NOT_FOUND = "not_found"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    MEMBER_EXISTS = "member_exists"
    CURSOR_EXPIRED = "cursor_expired"
    PHONE_KEY_MISSING = "phone_key_missing"  # 409: no phone hash key for the mall here
    RULES_VERSION_EXISTS = "rules_version_exists"  # 409: the version was published otherwise
    # 413: send less at once
    TOO_LARGE = "too_large"
    TOO_MANY_EVENTS = "too_many_events"
    # 422: well-formed, refused by the loyalty rules
    INSUFFICIENT_POINTS = "insufficient_points"
    REDEMPTION_REFUSED = "redemption_refused"
    INVALID_CODE = "invalid_code"  # an enrolment's one-time code that does not match
    CODE_EXPIRED = "code_expired"  # no code for the number, or past its expiry: ask again
    TOO_MANY_ATTEMPTS = "too_many_attempts"  # the code's attempts are spent: ask again
    # 503: a dependency of central failed (the code could not be sent)
    UNAVAILABLE = "unavailable"
    COUPON_REFUSED = "coupon_refused"  # 422/409: `reason` says why (gateway.loyalty codes)
    # 500: central's own fault, logged under the `error_id` of the details
    INTERNAL = "internal"


class VerdictCode(StrEnum):
    INVALID_EVENT = "invalid_event"  # an event (or activity payload) outside its schema
    INVALID_ENTRY = "invalid_entry"  # a ledger entry outside its schema or its kind's rules
    OUT_OF_BOUNDS = "out_of_bounds"  # points, money or a field's size past central's limits
    UNKNOWN_TYPE = "unknown_type"
    CONFLICT = "conflict"  # the natural key is another entry's
