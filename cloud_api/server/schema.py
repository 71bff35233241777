"""Central's tables, one definition for both backends, changed only by numbered migrations.

Two things differ: PostgreSQL needs BIGINT for sequences and sums that outgrow 32 bits
(SQLite's INTEGER is already 64-bit), and the snapshot pages through member ids in byte
order, which is SQLite's default but on PostgreSQL the "C" collation, so an index says so.

A database records the migrations it has had in `schema_migrations`; opening it applies
the missing ones, in order, in one transaction. A database made before migrations were
numbered has none recorded: the first migration (the tables as they were then, created
only if absent) is a no-op on it, and the later ones bring it up to date. A migration,
once released, never changes.
"""

from __future__ import annotations

from dataclasses import dataclass

_TABLES = """
CREATE TABLE IF NOT EXISTS tokens (
    token_sha256 TEXT PRIMARY KEY, mall_id TEXT NOT NULL, scope TEXT NOT NULL,
    gateway_id TEXT, created_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS malls (
    mall_id TEXT PRIMARY KEY, seq {integer} NOT NULL DEFAULT 0,
    purged_through {integer} NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS ledger (
    entry_id TEXT PRIMARY KEY, mall_id TEXT NOT NULL, account_id TEXT NOT NULL,
    source_type TEXT NOT NULL, source_key TEXT NOT NULL, kind TEXT NOT NULL,
    origin TEXT NOT NULL, server_seq {integer} NOT NULL, payload TEXT NOT NULL,
    received_at TEXT NOT NULL, UNIQUE (source_type, source_key, kind));
CREATE INDEX IF NOT EXISTS ledger_account ON ledger (mall_id, account_id);
CREATE TABLE IF NOT EXISTS accounts (
    mall_id TEXT NOT NULL, account_id TEXT NOT NULL, entries {integer} NOT NULL,
    points_sum {integer} NOT NULL, last_seq {integer} NOT NULL,
    PRIMARY KEY (mall_id, account_id));
CREATE TABLE IF NOT EXISTS members (
    mall_id TEXT NOT NULL, member_id TEXT NOT NULL, account_id TEXT NOT NULL,
    profile TEXT NOT NULL, edge_view TEXT NOT NULL, version {integer} NOT NULL, erased_at TEXT,
    updated_at TEXT NOT NULL, PRIMARY KEY (mall_id, member_id));
CREATE TABLE IF NOT EXISTS changes (
    mall_id TEXT NOT NULL, server_seq {integer} NOT NULL, kind TEXT NOT NULL,
    key TEXT NOT NULL, origin TEXT NOT NULL, account_id TEXT, payload TEXT NOT NULL,
    created_at TEXT NOT NULL, PRIMARY KEY (mall_id, server_seq));
CREATE TABLE IF NOT EXISTS flagged_debts (
    entry_id TEXT PRIMARY KEY, mall_id TEXT NOT NULL, account_id TEXT NOT NULL,
    debt {integer} NOT NULL, flagged_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS gateways (
    mall_id TEXT NOT NULL, gateway_id TEXT NOT NULL, status TEXT NOT NULL,
    last_seen_at TEXT NOT NULL, PRIMARY KEY (mall_id, gateway_id));
CREATE TABLE IF NOT EXISTS activity_events (
    mall_id TEXT NOT NULL, event_id TEXT PRIMARY KEY, gateway_id TEXT NOT NULL,
    type TEXT NOT NULL, member_id TEXT NOT NULL, payload TEXT NOT NULL,
    occurred_at TEXT NOT NULL, received_at TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS activity_member ON activity_events (mall_id, member_id);
CREATE TABLE IF NOT EXISTS documents (
    mall_id TEXT NOT NULL, kind TEXT NOT NULL, key TEXT NOT NULL, payload TEXT NOT NULL,
    server_seq {integer} NOT NULL, PRIMARY KEY (mall_id, kind, key));
"""


# The members' primary key orders ids in the database's own collation; on PostgreSQL the
# snapshot needs them in byte order too (the edge checks that order to tell which of its
# members central no longer has).
_MEMBERS_IN_BYTE_ORDER = """
CREATE INDEX IF NOT EXISTS members_snapshot ON members (mall_id, member_id COLLATE "C");
"""

# Malls are isolated: an entry, its natural key, a flagged debt and an activity event are
# each unique within their mall, not across malls (another mall's gateway recording the
# same check-in key first must not make this mall's a duplicate). Each table is rebuilt
# with its keys led by `mall_id`, the same column order, its rows copied.
_KEYS_BY_MALL = """
CREATE TABLE ledger_by_mall (
    entry_id TEXT NOT NULL, mall_id TEXT NOT NULL, account_id TEXT NOT NULL,
    source_type TEXT NOT NULL, source_key TEXT NOT NULL, kind TEXT NOT NULL,
    origin TEXT NOT NULL, server_seq {integer} NOT NULL, payload TEXT NOT NULL,
    received_at TEXT NOT NULL, PRIMARY KEY (mall_id, entry_id),
    UNIQUE (mall_id, source_type, source_key, kind));
INSERT INTO ledger_by_mall SELECT entry_id, mall_id, account_id, source_type, source_key,
    kind, origin, server_seq, payload, received_at FROM ledger;
DROP TABLE ledger;
ALTER TABLE ledger_by_mall RENAME TO ledger;
CREATE INDEX ledger_account ON ledger (mall_id, account_id);
CREATE TABLE flagged_debts_by_mall (
    entry_id TEXT NOT NULL, mall_id TEXT NOT NULL, account_id TEXT NOT NULL,
    debt {integer} NOT NULL, flagged_at TEXT NOT NULL, PRIMARY KEY (mall_id, entry_id));
INSERT INTO flagged_debts_by_mall SELECT entry_id, mall_id, account_id, debt, flagged_at
    FROM flagged_debts;
DROP TABLE flagged_debts;
ALTER TABLE flagged_debts_by_mall RENAME TO flagged_debts;
CREATE TABLE activity_events_by_mall (
    mall_id TEXT NOT NULL, event_id TEXT NOT NULL, gateway_id TEXT NOT NULL,
    type TEXT NOT NULL, member_id TEXT NOT NULL, payload TEXT NOT NULL,
    occurred_at TEXT NOT NULL, received_at TEXT NOT NULL, PRIMARY KEY (mall_id, event_id));
INSERT INTO activity_events_by_mall SELECT mall_id, event_id, gateway_id, type, member_id,
    payload, occurred_at, received_at FROM activity_events;
DROP TABLE activity_events;
ALTER TABLE activity_events_by_mall RENAME TO activity_events;
CREATE INDEX activity_member ON activity_events (mall_id, member_id);
"""

# A member's phone number leaves the profile: central keeps its keyed hash (searched by
# the service desk, so indexed within the mall), its masked form and, only if configured,
# the number encrypted (`phones.py`). Numbers an older central kept in the profile are
# converted when central starts with the mall's key (`operations.convert_clear_phones`).
_PHONE_COLUMNS = """
ALTER TABLE members ADD COLUMN phone_hash TEXT;
ALTER TABLE members ADD COLUMN phone_masked TEXT;
ALTER TABLE members ADD COLUMN phone_encrypted TEXT;
CREATE INDEX members_phone ON members (mall_id, phone_hash);
"""

# Tiers kept live: the anniversary a member's tier is next reviewed on, as a column so the
# review finds the members due without reading every profile. Members written before keep
# it in their profile only until their next change.
_TIER_ANNIVERSARY = """
ALTER TABLE members ADD COLUMN tier_anniversary TEXT;
CREATE INDEX members_tier_review ON members (mall_id, tier_anniversary);
"""

# Loyalty rules as versioned documents: every version a mall published, each in force from
# its effective time, kept for good so an entry is always judged by the rules of its time.
_RULE_VERSIONS = """
CREATE TABLE rule_versions (
    mall_id TEXT NOT NULL, version TEXT NOT NULL, effective_at TEXT NOT NULL,
    payload TEXT NOT NULL, server_seq {integer} NOT NULL, published_at TEXT NOT NULL,
    PRIMARY KEY (mall_id, version));
CREATE INDEX rule_versions_effective ON rule_versions (mall_id, effective_at);
"""

# Member notices (`notices.py`): numbered per mall in commit order (`notice_seqs` is taken
# until COMMIT, as the change log's sequence is), so a reader paging by `seq` never skips
# one that commits late. Each webhook's delivery of a notice is one row of
# `notice_deliveries`: pending (with its next attempt and, while a worker sends it, a
# lease), delivered or dead; `webhook_cursors` says up to which notice a webhook's
# deliveries have been queued.
_NOTICES = """
CREATE TABLE notice_seqs (mall_id TEXT PRIMARY KEY, seq {integer} NOT NULL);
CREATE TABLE notices (
    mall_id TEXT NOT NULL, notice_id TEXT NOT NULL, seq {integer} NOT NULL,
    member_id TEXT NOT NULL, account_id TEXT NOT NULL, kind TEXT NOT NULL,
    payload TEXT NOT NULL, created_at TEXT NOT NULL, PRIMARY KEY (mall_id, notice_id));
CREATE UNIQUE INDEX notices_by_seq ON notices (mall_id, seq);
CREATE INDEX notices_by_member ON notices (mall_id, member_id, seq);
CREATE TABLE webhook_cursors (
    mall_id TEXT NOT NULL, webhook TEXT NOT NULL, seq {integer} NOT NULL,
    PRIMARY KEY (mall_id, webhook));
CREATE TABLE notice_deliveries (
    mall_id TEXT NOT NULL, webhook TEXT NOT NULL, notice_id TEXT NOT NULL,
    seq {integer} NOT NULL, state TEXT NOT NULL, attempts INTEGER NOT NULL,
    next_attempt_at TEXT NOT NULL, lease_owner TEXT, lease_until TEXT, last_error TEXT,
    delivered_at TEXT, PRIMARY KEY (mall_id, webhook, notice_id));
CREATE INDEX notice_deliveries_due ON notice_deliveries (mall_id, webhook, state, seq);
"""

# Enrolment at a kiosk: the one-time code of each number being enrolled (only its keyed
# hash), and each enrolment's member, so a retried enrolment gets the same member.
_ENROLMENT = """
CREATE TABLE enrolment_codes (
    mall_id TEXT NOT NULL, phone_hash TEXT NOT NULL, code_hash TEXT NOT NULL,
    expires_at TEXT NOT NULL, attempts_left INTEGER NOT NULL, verified_for TEXT,
    created_at TEXT NOT NULL, PRIMARY KEY (mall_id, phone_hash));
CREATE TABLE enrolments (
    mall_id TEXT NOT NULL, enrolment_id TEXT NOT NULL, member_id TEXT NOT NULL,
    provisional_member_id TEXT, created_at TEXT NOT NULL,
    PRIMARY KEY (mall_id, enrolment_id));
"""

# A confirmed member's provisional ids (its tier counts what it spent under them), and
# the member a provisional id became, found without reading every enrolment of the mall.
_ENROLMENT_LOOKUPS = """
CREATE INDEX enrolments_by_member ON enrolments (mall_id, member_id);
CREATE INDEX enrolments_by_provisional ON enrolments (mall_id, provisional_member_id);
"""

MIGRATIONS_TABLE = """CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"""


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    statements: tuple[str, ...]


def _statements(script: str) -> tuple[str, ...]:
    return tuple(s.strip() for s in script.split(";") if s.strip())


# Coupons: campaigns as the back office defines them, each coupon once per mall (its code
# unique within the mall), and each of its facts once by id (`cloud_api/server/coupons.py`).
_COUPONS = """
CREATE TABLE coupon_campaigns (
    mall_id TEXT NOT NULL, campaign_id TEXT NOT NULL, definition TEXT NOT NULL,
    updated_at TEXT NOT NULL, PRIMARY KEY (mall_id, campaign_id));
CREATE TABLE coupons (
    mall_id TEXT NOT NULL, coupon_id TEXT NOT NULL, code TEXT NOT NULL, member_id TEXT NOT NULL,
    campaign_id TEXT NOT NULL, document TEXT NOT NULL, issued_at TEXT NOT NULL,
    PRIMARY KEY (mall_id, coupon_id), UNIQUE (mall_id, code));
CREATE INDEX coupons_member ON coupons (mall_id, member_id);
CREATE INDEX coupons_campaign ON coupons (mall_id, campaign_id);
CREATE TABLE coupon_facts (
    mall_id TEXT NOT NULL, fact_id TEXT NOT NULL, coupon_id TEXT NOT NULL,
    payload TEXT NOT NULL, recorded_at TEXT NOT NULL, PRIMARY KEY (mall_id, fact_id));
CREATE INDEX coupon_facts_coupon ON coupon_facts (mall_id, coupon_id);
"""


def migrations(integer: str, *, c_collation: bool = False) -> list[Migration]:
    """Every migration, in order, with `integer` as the integer type ("INTEGER" or
    "BIGINT"); `c_collation`: the database orders text by its locale, so a byte-order
    index names the "C" collation (PostgreSQL)."""
    baseline = _TABLES.format(integer=integer)
    return [
        Migration(1, "tables", _statements(
            baseline + _MEMBERS_IN_BYTE_ORDER if c_collation else baseline)),
        Migration(2, "keys scoped by mall", _statements(_KEYS_BY_MALL.format(
            integer=integer))),
        Migration(3, "phone numbers as keyed hashes", _statements(_PHONE_COLUMNS)),
        Migration(4, "tier anniversaries", _statements(_TIER_ANNIVERSARY)),
        Migration(5, "loyalty rule versions", _statements(_RULE_VERSIONS.format(
            integer=integer))),
        Migration(6, "member notices and webhook deliveries", _statements(
            _NOTICES.format(integer=integer))),
        Migration(7, "enrolment", _statements(_ENROLMENT)),
        Migration(8, "coupons", _statements(_COUPONS)),
        Migration(9, "enrolment lookups", _statements(_ENROLMENT_LOOKUPS)),
    ]
