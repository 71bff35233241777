"""The gateway's settings: one frozen, typed tree, parsed once at start from one TOML file.

Each `[section]` of the file is one model below and one field of `Settings`. To add a
section, define its model (every field with a default where one makes sense and a
`description`, which becomes the reference documentation) and add it to `Settings`; the
JSON Schema, `docs/configuration.md` and the drift tests follow from the models.

Below the models are the helpers that read the tree of models (which key is where, what it
accepts, how a value is written), shared by the error messages and the reference docs.
"""

from __future__ import annotations

import json
import re
import types
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeGuard, Union, get_args, get_origin
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, SecretStr, field_validator
from pydantic.fields import FieldInfo

from gateway.loyalty.rules import LoyaltyRules
from gateway.settings.base import SettingsModel
from gateway.settings.ble import BleSettings
from gateway.settings.kiosk import KioskSettings
from gateway.settings.limits import LimitsSettings
from gateway.settings.pos import PosSettings
from gateway.settings.sync import SyncSettings

# Mall and gateway ids appear in MQTT topics (`lty/v1/{site}/...`) and in central's URLs,
# so they are lower-case slugs: no `/`, `+`, `#` or spaces.
SLUG_PATTERN = r"^[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])?$"


class SiteSettings(SettingsModel):
    """Who this gateway is: the mall it serves and its own id within that mall."""

    mall_id: str = Field(
        pattern=SLUG_PATTERN,
        description="Id of the mall (the `site` in MQTT topics and central's URLs): "
        "lower-case letters, digits and hyphens, 1 to 32 characters.",
    )
    gateway_id: str = Field(
        pattern=SLUG_PATTERN,
        description="Id of this gateway within the mall, as registered with central; "
        "same character rules as `mall_id`.",
    )
    name: str = Field(
        default="",
        max_length=64,
        description="Display name shown on the dashboard; empty shows `mall_id`.",
    )
    coupon_key: SecretStr | None = Field(
        default=None,
        description="Key (shared with central) under which this mall's coupon codes are "
        "tagged, so a forged or another mall's code is told apart without a lookup. Unset, "
        "codes are still random and checked by lookup, under a key that lasts one run. A "
        "secret: give it as MALLGATE__SITE__COUPON_KEY.",
    )


class StoreSettings(SettingsModel):
    """The local SQLite store and its single writer."""

    path: Path = Field(
        default=Path("var/mallgate.db"),
        description="SQLite database file; a relative path is relative to the working "
        "directory. The directory is created if missing.",
    )
    batch_max: int = Field(
        default=512,
        ge=1,
        le=10_000,
        description="Most writes committed together in one transaction (group commit).",
    )
    batch_wait_ms: int = Field(
        default=0,
        ge=0,
        le=50,
        description="How long the writer waits for more writes to fill a batch, in "
        "milliseconds. 0 commits what is queued at once, which measured best: writes queue "
        "up anyway while the previous batch is being committed.",
    )
    dead_letter_retention_days: int = Field(
        default=90,
        ge=1,
        le=3650,
        description="Days a dead letter (refused input, kept masked with its reason) is kept; "
        "older ones are deleted once a day.",
    )
    pos_capture_retention_days: int = Field(
        default=90,
        ge=1,
        le=3650,
        description="Days the raw bytes of a POS capture (the unmasked source that replays "
        "read) are kept; after that they are deleted once a day and the parsed receipt stays. "
        "A capture not processed yet keeps its bytes.",
    )


# The roles of the local API: `ops` runs the gateway (metrics, parts, dead letters and
# their replay), `staff` serves members at the service desk and watches the dashboard, `pos`
# is a till asking who a member is and what they hold.
ApiRole = Literal["ops", "staff", "pos"]


class HttpToken(SettingsModel):
    """One bearer token of the local API, kept as the SHA-256 of the token, never the token."""

    name: str = Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$",
        description="Who holds the token (e.g. `desk-1`), written in the audit log.",
    )
    role: ApiRole = Field(description="What the token may do: `ops`, `staff` or `pos`.")
    sha256: str = Field(
        pattern=r"^[0-9a-f]{64}$",
        description="SHA-256 of the token, 64 lower-case hex digits, as `mallgate http "
        "token` prints it.",
    )


class HttpSettings(SettingsModel):
    """The local HTTP API, dashboard and metrics."""

    host: str = Field(
        default="127.0.0.1",
        pattern=r"^\S+$",
        description="Address to listen on; `0.0.0.0` listens on every interface.",
    )
    port: int = Field(default=8080, ge=1, le=65_535, description="TCP port to listen on.")
    ops_token: SecretStr | None = Field(
        default=None,
        description="Bearer token of the operations role (metrics and operator endpoints). "
        "Give it through `MALLGATE__HTTP__OPS_TOKEN`. Unset: those endpoints answer only "
        "when the API listens on a loopback address.",
    )
    max_connections: int = Field(
        default=512, ge=8, le=100_000,
        description="Most connections open at once; at the limit the oldest one that has "
        "not sent a request yet is dropped for a new one. Keep it well below the process's "
        "descriptor limit (`LimitNOFILE`), which the store, the broker link and the POS "
        "ports share.",
    )
    header_timeout_s: float = Field(
        default=10.0, gt=0, le=300, allow_inf_nan=False,
        description="A connection that has not sent a whole request's headers this many "
        "seconds after opening (or after its previous request) is closed.",
    )
    tokens: tuple[HttpToken, ...] = Field(
        default=(),
        description="Bearer tokens of `/api/v1` and the dashboard, one `[[http.tokens]]` "
        "table each; `ops_token` counts as one more of the `ops` role.",
    )

    @field_validator("tokens")
    @classmethod
    def _distinct_tokens(cls, tokens: tuple[HttpToken, ...]) -> tuple[HttpToken, ...]:
        names = [token.name for token in tokens]
        if len(set(names)) != len(names):
            raise ValueError("each token needs its own name (the audit log tells them apart)")
        hashes = [token.sha256 for token in tokens]
        if len(set(hashes)) != len(hashes):
            raise ValueError("the same token is listed twice")
        return tokens


class CentralSettings(SettingsModel):
    """The central member API that this gateway syncs with."""

    url: str | None = Field(
        default=None,
        pattern=r"^https?://\S+$",
        description="Base URL of the central member API (`https://...`; `http://` is "
        "warned about outside loopback). No user name or password in it: the credential "
        "is `token` or `token_file`. Unset runs the gateway standalone, without sync.",
    )
    token: SecretStr | None = Field(
        default=None,
        description="Bearer token of this gateway. Prefer `token_file` or the "
        "`MALLGATE__CENTRAL__TOKEN` environment variable to writing it in the file.",
    )
    token_file: Path | None = Field(
        default=None,
        description="File holding the bearer token (surrounding whitespace is ignored), "
        "read once at start; set this or `token`, not both. It must be readable by its "
        "owner only (`chmod 600`).",
    )
    timeout_s: float = Field(
        default=10.0,
        gt=0,
        le=600,
        allow_inf_nan=False,
        description="Timeout of one request to central, in seconds.",
    )
    verify_tls: bool = Field(
        default=True,
        description="Verify central's TLS certificate. Turn off only for a test server.",
    )
    ca_file: Path | None = Field(
        default=None,
        description="CA certificate(s) (PEM) that sign central's TLS certificate, for a "
        "private CA; unset trusts the system's CAs.",
    )

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL with a host")
        if parts.query or parts.fragment:
            raise ValueError("must not have a query or fragment")
        if parts.username is not None or parts.password is not None:
            # It would be printed wherever the URL is, and sync sends its own token anyway.
            raise ValueError("must not hold a user name or password: give the credential "
                             "with token_file or MALLGATE__CENTRAL__TOKEN")
        return value.rstrip("/")

    @field_validator("ca_file")
    @classmethod
    def _readable_ca(cls, value: Path | None) -> Path | None:
        # Found at start, not at the first sync an hour later.
        if value is not None and not value.is_file():
            raise ValueError("no such file: give the PEM file of central's CA")
        return value


class LoggingSettings(SettingsModel):
    """Log output. Personal data is masked at every level: mobile and card numbers and
    personal fields (card, phone, name) in messages, arguments, exceptions and extra fields."""

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", description="Least severe level that is logged."
    )
    format: Literal["console", "json"] = Field(
        default="console",
        description="`console`: readable lines for a terminal; `json`: one JSON object per "
        "line for a log collector.",
    )


class Settings(SettingsModel):
    """All settings of one gateway."""

    site: SiteSettings
    store: StoreSettings = StoreSettings()
    http: HttpSettings = HttpSettings()
    central: CentralSettings = CentralSettings()
    logging: LoggingSettings = LoggingSettings()
    kiosk: KioskSettings = KioskSettings()
    pos: PosSettings = PosSettings()
    ble: BleSettings = BleSettings()
    sync: SyncSettings = SyncSettings()
    limits: LimitsSettings = LimitsSettings()
    loyalty: LoyaltyRules = Field(
        default=LoyaltyRules(),
        description="The loyalty programme's rules: earning, expiry, check-in, tasks, "
        "birthday, tiers and redemption. Central may ship newer rules down through sync.",
    )


# Reading the tree of models: which key is where, what it accepts, how a value is written.
# Error messages (load.py) and the reference documentation (reference.py) share these.

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")
_CONSTRAINTS = ("gt", "ge", "lt", "le", "min_length", "max_length", "pattern")


@dataclass(frozen=True)
class FieldRef:
    """A key of the settings tree: its type and, for a model field, its `FieldInfo`."""

    annotation: Any
    info: FieldInfo | None


def is_model(annotation: object) -> TypeGuard[type[BaseModel]]:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _strip_optional(annotation: Any) -> Any:
    if get_origin(annotation) in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


def _is_optional(annotation: Any) -> bool:
    return get_origin(annotation) in (Union, types.UnionType) and type(None) in get_args(
        annotation
    )


def model_array_item(annotation: Any) -> type[BaseModel] | None:
    """The model of an array of tables (`tuple[Model, ...]`), else None."""
    if get_origin(annotation) is tuple:
        item = get_args(annotation)[0]
        if is_model(item):
            return item
    return None


def field_at(path: Sequence[str | int], root: type[BaseModel] = Settings) -> FieldRef | None:
    """The key at `path` (as in a validation error's `loc`), or None if there is none."""
    ref = FieldRef(root, None)
    for segment in path:
        annotation = _strip_optional(ref.annotation)
        origin = get_origin(annotation)
        if is_model(annotation):
            fields = annotation.model_fields
            if not isinstance(segment, str) or segment not in fields:
                return None
            info = fields[segment]
            ref = FieldRef(info.annotation, info)
        elif origin is tuple and isinstance(segment, int):
            ref = FieldRef(get_args(annotation)[0], None)
        elif origin is dict and isinstance(segment, str):
            ref = FieldRef(get_args(annotation)[1], None)
        else:
            return None
    return ref


def is_secret(annotation: Any) -> bool:
    return _strip_optional(annotation) is SecretStr


def is_text(annotation: Any) -> bool:
    """True for keys whose value is written as a TOML string."""
    annotation = _strip_optional(annotation)
    if get_origin(annotation) is Literal:
        return all(isinstance(arg, str) for arg in get_args(annotation))
    return annotation in (str, SecretStr, Path)


def _type_name(annotation: Any) -> str:
    annotation = _strip_optional(annotation)
    origin = get_origin(annotation)
    if origin is Literal:
        return "one of " + ", ".join(toml_literal(arg) for arg in get_args(annotation))
    if origin is tuple:
        item = get_args(annotation)[0]
        return "array of tables" if is_model(item) else f"array of {_type_name(item)} values"
    if origin is dict:
        return f"table of {_type_name(get_args(annotation)[1])} values by key"
    if is_model(annotation):
        return "table"
    names = {bool: "boolean", int: "integer", float: "number", str: "string",
             SecretStr: "secret string", Path: "path"}
    return names.get(annotation, getattr(annotation, "__name__", str(annotation)))


def _constraints(info: FieldInfo) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for item in info.metadata:
        for name in _CONSTRAINTS:
            value = getattr(item, name, None)
            if value is not None:
                found[name] = value
    return found


def _bounds(c: dict[str, Any]) -> str:
    if "ge" in c and "le" in c:
        return f"{c['ge']}..{c['le']}"
    low = f"> {c['gt']}" if "gt" in c else f">= {c['ge']}" if "ge" in c else ""
    high = f"< {c['lt']}" if "lt" in c else f"<= {c['le']}" if "le" in c else ""
    return " and ".join(p for p in (low, high) if p)


def _lengths(c: dict[str, Any]) -> str:
    low, high = c.get("min_length"), c.get("max_length")
    if low is not None and high is not None:
        return f"{low}..{high} characters"
    if high is not None:
        return f"at most {high} characters"
    if low is not None:
        return f"at least {low} character" + ("" if low == 1 else "s")
    return ""


def describe(ref: FieldRef) -> str:
    """A short human description of what a key accepts, e.g. `integer, 1..65535`."""
    c = _constraints(ref.info) if ref.info is not None else {}
    details = [_bounds(c), _lengths(c), f"matching `{c['pattern']}`" if "pattern" in c else ""]
    text = ", ".join([_type_name(ref.annotation), *(d for d in details if d)])
    return text + ", or unset" if _is_optional(ref.annotation) else text


def toml_literal(value: object) -> str:
    """`value` written as TOML (inline), for defaults and for values in error messages."""
    match value:
        case BaseModel():
            return toml_literal(value.model_dump())
        case list() | tuple():
            return "[" + ", ".join(toml_literal(v) for v in value) + "]"
        case dict():
            items = ", ".join(f"{_key(k)} = {toml_literal(v)}" for k, v in value.items())
            return f"{{ {items} }}" if items else "{}"
        case _:
            return _scalar(value)


def _scalar(value: object) -> str:
    if value is None:
        return "unset"
    if isinstance(value, SecretStr):
        return '"**********"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str | Path):
        return json.dumps(str(value), ensure_ascii=False)
    return str(value)


def _key(key: object) -> str:
    text = str(key)
    return text if _BARE_KEY.match(text) else json.dumps(text, ensure_ascii=False)
