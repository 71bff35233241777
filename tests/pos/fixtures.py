"""Where the ESC/POS fixtures live: the shared public captures and this package's own."""

from __future__ import annotations

from pathlib import Path

OWN = Path(__file__).resolve().parent / "fixtures"
# Public ESC/POS streams, copied byte for byte with their sources and licences
# (fixtures/escpos/SOURCES.md).
SHARED = OWN / "escpos"


def shared(name: str) -> bytes:
    matches = sorted(SHARED.rglob(name))
    assert matches, f"fixture {name} not found under {SHARED}"
    return matches[0].read_bytes()


def shared_files() -> list[Path]:
    return sorted(SHARED.rglob("*.bin"))


def own(name: str) -> bytes:
    return (OWN / name).read_bytes()
