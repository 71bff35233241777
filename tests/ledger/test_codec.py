"""Ledger rows as JSON: the outbox payload central receives, the canonical wire text."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.ledger.codec import COLUMNS, row_to_json
from tests.scale import examples

ROW_VALUES = st.none() | st.integers(-(2**63), 2**63 - 1) | st.text()


@given(st.fixed_dictionaries(dict.fromkeys(COLUMNS, ROW_VALUES)))
@settings(max_examples=examples(200))
def test_row_to_json_is_sorted_compact_json_byte_for_byte(row: dict[str, Any]) -> None:
    assert row_to_json(row) == json.dumps(row, ensure_ascii=False, separators=(",", ":"),
                                          sort_keys=True)
