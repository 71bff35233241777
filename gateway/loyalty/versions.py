"""Rule versions: which loyalty rules were in force at a given instant.

Central publishes the mall's rules as versioned documents (the `[loyalty]` schema of
`rules.LoyaltyRules`), each from an effective time. A `RuleBook` holds the versions a site
knows, ordered by that time: the rules of an entry are those of the latest version in
force at the entry's own time, so an entry dated before a new version keeps the rules it
was earned under, and a version dated in the future changes nothing until its time.
Until central publishes, the local settings are the rules (the book's base).
"""

from __future__ import annotations

import json
from bisect import bisect_right
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from gateway.loyalty.errors import InvalidRules
from gateway.loyalty.rules import LoyaltyRules

# The configuration kind central publishes the rules under (`PUT .../config/loyalty`).
RULES_KIND = "loyalty"
MAX_VERSION_CHARS = 64


@dataclass(frozen=True, slots=True)
class RuleVersion:
    """One published version: its rules, in force from `effective_at` on."""

    version: str
    effective_at: datetime
    rules: LoyaltyRules


def _problem(error: ValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "document"
    more = f" (and {error.error_count() - 1} more)" if error.error_count() > 1 else ""
    return f"{where}: {first['msg']}{more}"


def parse_effective_at(value: object, version: str) -> datetime:
    """An effective time as published: ISO-8601 text with its offset."""
    if type(value) is not str:
        raise InvalidRules(version, "effective_at must be an ISO-8601 time")
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidRules(version, f"effective_at {value[:40]!r} is not an ISO-8601 "
                                    f"time") from None
    if at.utcoffset() is None:
        raise InvalidRules(version, "effective_at needs its UTC offset")
    return at


def parse_rules(version: object, payload: object) -> LoyaltyRules:
    """The rules a published document describes, validated as strictly as the local
    `[loyalty]` settings; `InvalidRules` says why not. The document's own `version`, if
    given, must be the published one: every entry records it."""
    if type(version) is not str or not 0 < len(version) <= MAX_VERSION_CHARS:
        raise InvalidRules(str(version)[:MAX_VERSION_CHARS],
                           f"a version is text of 1 to {MAX_VERSION_CHARS} characters")
    if type(payload) is not dict:
        raise InvalidRules(version, "the rules must be an object")
    stated = payload.get("version", version)
    if stated != version:
        raise InvalidRules(version, f"the document says version {stated!r}")
    try:
        # JSON mode: arrays are the tuples of the schema, as in the TOML settings.
        return LoyaltyRules.model_validate_json(json.dumps({**payload, "version": version}))
    except ValidationError as exc:
        raise InvalidRules(version, _problem(exc)) from None
    except (TypeError, ValueError) as exc:
        raise InvalidRules(version, f"not plain JSON: {exc}") from None


def parse_version(version: object, effective_at: object, payload: object) -> RuleVersion:
    """A published version, or `InvalidRules` with the reason."""
    rules = parse_rules(version, payload)
    return RuleVersion(rules.version, parse_effective_at(effective_at, rules.version), rules)


def rules_document(rules: LoyaltyRules) -> dict[str, Any]:
    """The rules as a publishable document (what `parse_rules` reads back)."""
    document: dict[str, Any] = json.loads(rules.model_dump_json())
    return document


@dataclass(frozen=True, slots=True)
class RuleBook:
    """The base rules and the published versions, by effective time. Immutable: a site
    swaps its book whole, so a reader sees the old book or the new one, never half."""

    base: LoyaltyRules
    versions: tuple[RuleVersion, ...] = ()
    # The versions' effective times, for bisecting: the rules are looked up on every sale.
    _times: tuple[datetime, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_times", tuple(v.effective_at for v in self.versions))

    @staticmethod
    def of(base: LoyaltyRules, versions: Iterable[RuleVersion]) -> RuleBook:
        """The book of `versions` over `base`; of two versions with one effective time,
        the one listed last wins."""
        by_time: dict[datetime, RuleVersion] = {}
        for version in versions:
            by_time[version.effective_at] = version
        return RuleBook(base, tuple(by_time[t] for t in sorted(by_time)))

    def at(self, when: datetime) -> LoyaltyRules:
        """The rules in force at `when`: the latest version effective by then."""
        index = bisect_right(self._times, when)
        return self.versions[index - 1].rules if index else self.base
