"""The gateway's rule book: its `[loyalty]` settings and the versions central published.

Versions reach the store by sync (`config_versions`, kind `loyalty`), each checked before
it is stored (one the gateway cannot parse is refused there and never stored), so the
book is rebuilt from the store on start and after every page that brought documents.
"""

from __future__ import annotations

import json
import logging
import sqlite3

from gateway.loyalty import InvalidRules, LoyaltyRules, RuleBook, RuleVersion, parse_version
from gateway.loyalty.versions import RULES_KIND

log = logging.getLogger(__name__)


def load_book(conn: sqlite3.Connection, base: LoyaltyRules) -> RuleBook:
    """The published versions stored, over the local rules `base`."""
    versions: list[RuleVersion] = []
    for version, effective_at, payload in conn.execute(
            "SELECT version, effective_at, payload FROM config_versions WHERE kind = ? "
            "AND effective_at IS NOT NULL ORDER BY applied_at, rowid", (RULES_KIND,)):
        try:
            versions.append(parse_version(version, effective_at, json.loads(payload)))
        except (InvalidRules, ValueError) as exc:  # stored by an older gateway unchecked
            log.warning("loyalty rules version %s in the store is not applied: %s",
                        version, exc)
    return RuleBook.of(base, versions)
