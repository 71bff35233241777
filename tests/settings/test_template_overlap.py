"""`config check` warns about a member-code pattern that matches inside another field."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from gateway.cli import main
from gateway.settings.pos import ReceiptTemplate
from gateway.settings.template_overlap import group_source, member_code_overlaps

CLEAN_ENV: dict[str, str | None] = {k: None for k in os.environ if k.startswith("MALLGATE__")}
# The example template's fields, as in config/example-mall.toml.
FIELDS: dict[str, Any] = {
    "store_id": "S01",
    "receipt_no": r"单号[:\uff1a]\s*(?P<receipt_no>[0-9A-Za-z-]+)",
    "occurred_at": r"时间[:\uff1a]\s*(?P<occurred_at>\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2})",
    "total": r"合计[:\uff1a]\s*(?P<total>[¥￥]?[\d,]+\.\d{2})",
}
# The pattern an installer writes for eight-digit member cards: it takes the date inside
# the receipt number 20261122-0001, printed above the member line.
NATURAL = r"(?P<member_code>\d{8})"


def test_the_natural_member_pattern_takes_the_date_in_the_receipt_number() -> None:
    template = ReceiptTemplate(**FIELDS, member_code=NATURAL)
    assert member_code_overlaps(template)[0] == ("receipt_no", "20261122-0001", "20261122")


def test_a_member_pattern_anchored_to_its_label_is_fine() -> None:
    template = ReceiptTemplate(
        **FIELDS, member_code=r"(?:会员[:\uff1a]\s*|MBR:)(?P<member_code>M\d{8})")
    assert member_code_overlaps(template) == []
    anchored = ReceiptTemplate(**FIELDS, member_code=r"会员[:\uff1a]\s*(?P<member_code>\d{8})")
    assert member_code_overlaps(anchored) == []


def test_a_compact_date_format_is_probed_too() -> None:
    template = ReceiptTemplate(**{
        **FIELDS, "receipt_no": r"单号[:\uff1a]\s*(?P<receipt_no>[A-Z]-\d+)",
        "occurred_at": r"时间[:\uff1a]\s*(?P<occurred_at>\d{14})"},
        datetime_format="%Y%m%d%H%M%S", member_code=r"(?P<member_code>\d{10})")
    assert member_code_overlaps(template)[0][:2] == ("occurred_at", "20261122140509")


def test_group_source_follows_nesting_classes_and_escapes() -> None:
    assert group_source(r"a(?P<x>(\d+)[)(]\))b", "x") == r"(\d+)[)(]\)"
    assert group_source(r"no group", "x") is None


def test_config_check_warns_naming_the_store_field_and_fix(tmp_path: Path) -> None:
    config = tmp_path / "gw.toml"
    lines = "\n".join(f"{k} = '{v}'" for k, v in FIELDS.items())
    config.write_text('[site]\nmall_id = "m1"\ngateway_id = "gw-1"\n[[pos.templates]]\n'
                      f"{lines}\nmember_code = '{NATURAL}'\n")
    result = CliRunner().invoke(main, ["config", "check", str(config)], env=CLEAN_ENV)
    assert result.exit_code == 0, result.output
    assert "warning: [[pos.templates]] store S01: member_code" in result.stderr
    assert "inside the receipt_no ('20261122-0001' gives member code '20261122')" in result.stderr
    assert "anchor it to the label" in result.stderr
