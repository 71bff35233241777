"""How hard the randomised tests push: short in the default suite, long under make fuzz/chaos."""

from __future__ import annotations

import os

FUZZ = os.environ.get("MALLGATE_FUZZ") == "1"
CHAOS = os.environ.get("MALLGATE_CHAOS") == "1"
_FUZZ_FACTOR = 40
_CHAOS_FACTOR = 10


def examples(default: int) -> int:
    """Hypothesis examples for a property: `default` normally, many more under make fuzz."""
    return default * _FUZZ_FACTOR if FUZZ else default


def rounds(default: int) -> int:
    """Kill points or fault rounds for a crash test: more under make chaos."""
    return default * _CHAOS_FACTOR if CHAOS else default
