"""Who the demo members are, so the demo gateway, the simulators and the benchmarks agree.

Only for the demo (config/demo.toml): a production store is filled by sync from central.
Member n is `m-demo-NNNN` on account `a-demo-NNNN`, with card `DEMONNNN` and phone
1380000NNNN; each starts with 500 welcome points.
"""

from __future__ import annotations

DEMO_SOURCE = "demo.welcome"
WELCOME_POINTS = 500


def demo_ids(n: int) -> tuple[str, str, str, str]:
    """Member id, account id, card number and phone number of demo member `n` (from 1)."""
    return f"m-demo-{n:04d}", f"a-demo-{n:04d}", f"DEMO{n:04d}", f"1380000{n:04d}"
