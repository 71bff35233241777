"""Read the configuration: TOML file, then `MALLGATE__...` environment overrides, then the
secret files, then one strict validation. Every problem found is reported, each with its
key path, the bad value (secrets redacted), what is wrong and what is allowed.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, time
from pathlib import Path
from typing import Any, Final

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from gateway.secret_file import TokenFileError, read_token_file
from gateway.settings.model import (
    Settings,
    describe,
    field_at,
    is_model,
    is_secret,
    is_text,
)
from gateway.settings.model import toml_literal as _toml

ENV_PREFIX = "MALLGATE__"
_ENV_SEPARATOR = "__"
# An unknown key with one of these words in its name is treated as a secret: its value is
# never shown (a misspelt `tokn = "..."` must not print the token).
_SECRET_WORDS = ("token", "secret", "password", "passwd", "credential", "private", "api_key")
_SHOW_MAX = 120
_TOML_ERROR = re.compile(r"^(?P<what>.*) \(at line (?P<line>\d+), column (?P<column>\d+)\)$")

Loc = tuple[str | int, ...]


class _Marker:
    def __init__(self, text: str) -> None:
        self._text = text

    def __repr__(self) -> str:
        return self._text

    __str__ = __repr__


MISSING: Final = _Marker("(missing)")
"""`SettingIssue.value` of a key that is required but absent, or of a file-level issue."""
REDACTED: Final = _Marker("<redacted>")
"""`SettingIssue.value` standing in for a secret."""


@dataclass(frozen=True)
class SettingIssue:
    """One problem in the configuration. `path` is the dotted key path (`http.port`,
    `loyalty.tiers.tiers.1.qualifying_fen`), empty for the file as a whole."""

    path: str
    value: object
    problem: str
    allowed: str

    def __str__(self) -> str:
        where = self.path
        if self.value is not MISSING:
            shown = _toml(self.value)
            shown = shown if len(shown) <= _SHOW_MAX else shown[: _SHOW_MAX - 3] + "..."
            where = f"{where} = {shown}"
        lead = f"{where}: " if where else ""
        return f"{lead}{self.problem}; allowed: {self.allowed}"


class SettingsError(Exception):
    """The configuration is unusable; `issues` lists every problem found."""

    def __init__(self, source: str, issues: Sequence[SettingIssue]) -> None:
        super().__init__(source, tuple(issues))
        self.source = source
        self.issues = tuple(issues)

    def __str__(self) -> str:
        count = len(self.issues)
        head = f"{self.source}: invalid configuration ({count} error{'s' * (count != 1)})"
        return "\n".join([head, *(f"  {issue}" for issue in self.issues)])


def load_settings(
    path: str | os.PathLike[str], *, environ: Mapping[str, str] | None = None,
    secret_modes: bool = True,
) -> Settings:
    """Read, override from `environ` (default: `os.environ`) and validate a TOML file.

    Raises `SettingsError` with every problem found. `secret_modes=False` reads a token
    file others can read too: `mallgate doctor` reports it as one finding among the others
    rather than stopping there.
    """
    source = os.fspath(path)
    data = _read_toml(Path(path), source)
    issues: list[SettingIssue] = []
    env_paths = _apply_env(data, os.environ if environ is None else environ, issues)
    # Issues of these two steps are about values they replace or add before validation;
    # validation errors at the same keys would only repeat them.
    replaced: list[SettingIssue] = []
    _check_values(data, (), replaced)
    _read_token_file(data, replaced, secret_modes=secret_modes)
    issues += replaced
    try:
        settings = Settings.model_validate_json(json.dumps(data))
    except ValidationError as exc:
        shadowed = {issue.path for issue in replaced}
        for error in exc.errors(include_url=False):
            issue = _issue(error, env_paths)
            if not any(issue.path == p or issue.path.startswith(f"{p}.") for p in shadowed):
                issues.append(issue)
    if issues:
        raise SettingsError(source, issues)
    return settings


def _read_toml(path: Path, source: str) -> dict[str, Any]:
    def fail(problem: str, allowed: str) -> SettingsError:
        return SettingsError(source, [SettingIssue("", MISSING, problem, allowed)])

    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise fail(f"file not found: {source}", "the path of a TOML file") from None
    except OSError as exc:
        raise fail(f"cannot read {source}: {exc.strerror}", "a readable TOML file") from None
    except UnicodeDecodeError as exc:
        raise fail(f"not UTF-8 text (byte {exc.start})", "a UTF-8 TOML file") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        if match := _TOML_ERROR.match(message):
            message = (f"at line {match['line']}, column {match['column']}: "
                       f"{match['what'][:1].lower()}{match['what'][1:]}")
        raise fail(f"TOML syntax error {message}", "TOML 1.0 syntax") from None


def _dotted(loc: Sequence[str | int]) -> str:
    return ".".join(str(part) for part in loc)


def _secret(loc: Loc) -> bool:
    """Whether the value at `loc` must not be shown: a secret key, or an unknown key that
    is named like a secret or sits next to one (a misspelt `tokn` is still a token)."""
    ref = field_at(loc)
    if ref is not None:
        return is_secret(ref.annotation)
    if not loc:
        return False
    parent = field_at(loc[:-1])
    if parent is not None and is_model(parent.annotation):
        fields = parent.annotation.model_fields.values()
        if any(is_secret(f.annotation) for f in fields):
            return True
    return any(word in str(loc[-1]).lower() for word in _SECRET_WORDS)


# The user information of a URL (`https://user:password@host`) is a credential.
_USERINFO = re.compile(r"(?<=://)[^/@\s]*@")


def _redact(loc: Loc, value: object) -> object:
    if loc and _secret(loc):
        return REDACTED
    if isinstance(value, str):
        return _USERINFO.sub(f"{REDACTED}@", value)
    if isinstance(value, dict):
        return {k: _redact((*loc, k), v) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact((*loc, i), v) for i, v in enumerate(value)]
    return value


def _env_value(raw: str, loc: Loc) -> object:
    """`raw` as a TOML value when it is one; as written for secrets and string keys."""
    if _secret(loc):
        return raw
    try:
        parsed = tomllib.loads(f"v = {raw}")
    except tomllib.TOMLDecodeError:
        return raw
    value = parsed.get("v")
    if len(parsed) != 1 or isinstance(value, date | time):
        return raw
    ref = field_at(loc)
    if ref is not None and is_text(ref.annotation) and not isinstance(value, str):
        return raw
    return value


def _apply_env(
    data: dict[str, Any], environ: Mapping[str, str], issues: list[SettingIssue]
) -> dict[Loc, str]:
    """Overlay `MALLGATE__A__B=value` onto `data`; return which variable set which key."""
    names = [n for n in environ if n.startswith(ENV_PREFIX)]
    by_depth = sorted(names, key=lambda n: (n.count(_ENV_SEPARATOR), n))
    applied: dict[Loc, str] = {}
    for name in by_depth:
        loc: Loc = tuple(p.lower() for p in name[len(ENV_PREFIX) :].split(_ENV_SEPARATOR))
        if not all(loc):
            issues.append(SettingIssue("", MISSING, f"malformed environment variable {name}",
                                       f"{ENV_PREFIX}SECTION__KEY, one __ per level"))
            continue
        node = data
        for depth, part in enumerate(loc[:-1], start=1):
            child = node.setdefault(str(part), {})
            if not isinstance(child, dict):
                issues.append(SettingIssue(
                    _dotted(loc[:depth]), MISSING,
                    f"{name} sets a key inside it, but it is not a table ({_kind(child)})",
                    f"override {_dotted(loc[:depth])} as a whole",
                ))
                break
            node = child
        else:
            node[str(loc[-1])] = _env_value(environ[name], loc)
            applied[loc] = name
    return applied


def _check_values(value: object, loc: Loc, issues: list[SettingIssue]) -> object:
    """Report TOML dates and times (no key takes one); make `value` JSON-serialisable."""
    if isinstance(value, dict):
        for key, item in value.items():
            value[key] = _check_values(item, (*loc, key), issues)
    elif isinstance(value, list):
        value[:] = [_check_values(item, (*loc, i), issues) for i, item in enumerate(value)]
    elif isinstance(value, date | time):
        ref = field_at(loc)  # an unknown key is reported as such by validation
        if ref is not None:
            issues.append(SettingIssue(_dotted(loc), _redact(loc, value.isoformat()),
                                       "wrong type (date/time)", describe(ref)))
        return value.isoformat()
    return value


def _read_token_file(data: dict[str, Any], issues: list[SettingIssue], *,
                     secret_modes: bool = True) -> None:
    central = data.get("central")
    if not isinstance(central, dict) or not isinstance(central.get("token_file"), str):
        return  # absent; a wrong type is reported by validation
    token_file = central["token_file"]
    if "token" in central:
        issues.append(SettingIssue("central.token", REDACTED, "set together with token_file",
                                   "central.token or central.token_file, not both"))
        return
    try:
        central["token"] = read_token_file(Path(token_file), owner_only=secret_modes)
    except TokenFileError as exc:
        issues.append(SettingIssue("central.token_file", token_file, exc.problem,
                                   exc.allowed))


def _kind(value: object) -> str:
    """The TOML type of a parsed value."""
    kinds = [(bool, "boolean"), (int, "integer"), (float, "float"), (str, "string"),
             (list, "array"), (dict, "table")]
    return next((name for t, name in kinds if isinstance(value, t)), type(value).__name__)


def _is_type_error(kind: str) -> bool:
    return kind.endswith(("_type", "_parsing")) or kind == "int_from_float"


def _issue(error: ErrorDetails, env_paths: Mapping[Loc, str]) -> SettingIssue:
    loc: Loc = tuple(error["loc"])
    kind = error["type"]
    ref = field_at(loc)
    value = MISSING if kind == "missing" else _redact(loc, error.get("input"))
    if ref is None:
        context = error.get("ctx", {}).items()
        allowed = ", ".join(f"{k} {v}" for k, v in context) or "see docs/configuration.md"
    elif is_model(ref.annotation):
        allowed = "a table with keys " + ", ".join(ref.annotation.model_fields)
    else:
        allowed = describe(ref)
    if kind == "extra_forbidden":
        parent = field_at(loc[:-1])
        if parent is not None and is_model(parent.annotation):
            keys = ", ".join(parent.annotation.model_fields)
            where = f"of [{_dotted(loc[:-1])}]" if loc[:-1] else "at the top level"
            allowed = f"keys {where}: {keys}"
        problem = "unknown key"
    elif kind == "missing":
        problem = "required key is missing"
    elif _is_type_error(kind):
        problem = f"wrong type ({_kind(error.get('input'))})"
    elif kind == "string_pattern_mismatch":
        problem = "invalid format"
    else:
        problem = error["msg"].removeprefix("Value error, ").replace("Input should", "should")
    # The variable that set this key, a table above it, or a key below it.
    origins = (n for p, n in env_paths.items() if loc[: len(p)] == p or p[: len(loc)] == loc)
    if origin := next(origins, None):
        problem += f" (from {origin})"
    return SettingIssue(_dotted(loc), value, problem, allowed)
