"""The mall's loyalty rules as versioned documents: published, kept, and looked up by time.

A version is published once (`PUT /v1/malls/{mall}/config/loyalty`): validated by the same
schema as the gateway's `[loyalty]` settings, kept for good in `rule_versions` and sent
down the change feed as a `config.version`. Republishing a version with the same content
is a duplicate with its first `server_seq`; with other content it is refused (a version
names one set of rules forever, since entries record it). Everything central computes
itself (online redemptions, adjustments, tier reviews, offline allowances) takes the rules
in force at the time it concerns from the mall's `RuleBook`; until a mall publishes, the
server's own rules are its base.
"""

from __future__ import annotations

import json
from datetime import datetime
from functools import lru_cache
from typing import Any

from cloud_api.server.codes import Code
from cloud_api.server.operations import lock_mall, log_change
from cloud_api.server.queries import Dialect, Execute, Fetch, Op
from cloud_api.server.storage import PublishedRules, StorageError
from gateway.loyalty import InvalidRules, LoyaltyRules, RuleBook, RuleVersion, parse_version
from gateway.loyalty.versions import RULES_KIND
from gateway.loyalty.wire import to_text

CHANGE_KIND = "config.version"


def check_version(version: object, payload: object, effective_at: object) -> RuleVersion:
    """The version a PUT publishes, or a 400 that says what is wrong with it."""
    try:
        return parse_version(version, effective_at, payload)
    except InvalidRules as exc:
        raise StorageError(Code.INVALID_RULES, str(exc), 400, reason=exc.reason) from None


@lru_cache(maxsize=512)
def _parsed(version: str, effective_at: str, payload: str) -> RuleVersion:
    """A stored version, parsed once per worker (it was validated when published)."""
    return parse_version(version, effective_at, json.loads(payload))


def rule_book(mall_id: str, base: LoyaltyRules) -> Op[RuleBook]:
    """The mall's published versions over `base`."""
    rows = yield Fetch("SELECT version, effective_at, payload FROM rule_versions "
                       "WHERE mall_id = ? ORDER BY effective_at, server_seq", (mall_id,))
    return RuleBook.of(base, [_parsed(str(v), str(t), str(p)) for v, t, p in rows])


def documents(mall_id: str) -> Op[list[dict[str, Any]]]:
    """Every version of the mall as the change feed carries it, in publishing order (for
    the snapshot: a gateway that resyncs gets the rules whose changes were purged)."""
    rows = yield Fetch("SELECT version, effective_at, payload, server_seq FROM rule_versions "
                       "WHERE mall_id = ? ORDER BY server_seq", (mall_id,))
    return [{"server_seq": int(seq), "key": RULES_KIND, "version": str(version),
             "effective_at": str(at), "payload": json.loads(payload)}
            for version, at, payload, seq in rows]


def listing(mall_id: str, now: datetime) -> Op[list[dict[str, Any]]]:
    """The mall's versions by effective time (ties: publishing order), each with when it
    was published and whether its rules are the ones in force at `now` (the latest
    version effective by then, as `RuleBook.at` picks it)."""
    rows = yield Fetch("SELECT version, effective_at, server_seq, published_at "
                       "FROM rule_versions WHERE mall_id = ? "
                       "ORDER BY effective_at, server_seq", (mall_id,))
    now_text = to_text(now) or ""
    # Fixed-width UTC text (`to_text`): ordering by the text is ordering by the time.
    in_force = max((i for i, row in enumerate(rows) if str(row[1]) <= now_text), default=None)
    return [{"version": str(version), "effective_at": str(at), "server_seq": int(seq),
             "published_at": str(published), "in_force": i == in_force}
            for i, (version, at, seq, published) in enumerate(rows)]


def publish(dialect: Dialect, mall_id: str, version: RuleVersion, payload: dict[str, Any],
            at: str, *, timed: bool = True) -> Op[PublishedRules]:
    """Keep a checked version and send it down. `timed=False`: published without an
    effective time (from now); the same rules again are then a duplicate whatever time
    they were first published with, so a retry of "publish now" is answered, not
    refused."""
    yield from lock_mall(dialect, mall_id)  # one publisher of the mall at a time
    effective_at = to_text(version.effective_at) or ""
    text = json.dumps(payload, ensure_ascii=False, sort_keys=True)
    rows = yield Fetch("SELECT effective_at, payload, server_seq FROM rule_versions "
                       "WHERE mall_id = ? AND version = ?", (mall_id, version.version))
    if rows:
        if str(rows[0][1]) == text and (not timed or str(rows[0][0]) == effective_at):
            return PublishedRules(int(rows[0][2]), version.version, str(rows[0][0]),
                                  duplicate=True)
        raise StorageError(Code.RULES_VERSION_EXISTS,
                           f"rules version {version.version} was published with other "
                           f"rules or another effective time; publish a new version", 409)
    document = {"version": version.version, "effective_at": effective_at, "payload": payload}
    seq = yield from log_change(mall_id, CHANGE_KIND, RULES_KIND,
                                payload={"key": RULES_KIND, **document}, at=at)
    yield Execute("INSERT INTO rule_versions VALUES (?, ?, ?, ?, ?, ?)",
                  (mall_id, version.version, effective_at, text, seq, at))
    yield Execute("INSERT INTO documents VALUES (?, 'config', ?, ?, ?) ON CONFLICT "
                  "(mall_id, kind, key) DO UPDATE SET payload = excluded.payload, "
                  "server_seq = excluded.server_seq",
                  (mall_id, RULES_KIND, json.dumps(document), seq))
    return PublishedRules(seq, version.version, effective_at, duplicate=False)


def default_effective_at(given: object, now: datetime) -> object:
    """A version published without an effective time is in force from now."""
    return to_text(now) if given is None else given
