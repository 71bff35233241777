"""What every benchmark shares: the JSON line it prints and percentiles."""

from __future__ import annotations

import json
import math
import os
import socket
import sys
from pathlib import Path

# Python puts a script's own folder first on the path, and this folder's `sync.py` (the sync
# benchmark) would then shadow the project's `sync` package. Every benchmark imports this
# module before any project package (it sorts with the third-party imports), so taking the
# folder off the path here lets `import sync` find the package from then on.
_FOLDER = Path(__file__).resolve().parent
sys.path[:] = [entry for entry in sys.path if Path(entry).resolve() != _FOLDER]


def emit(bench: str, metric: str, value: float, *, unit: str, target: str | None,
         baseline: float | None) -> None:
    """One figure: `target` compares against `value` (e.g. ">= 5000"); `baseline` is the
    peer or physical limit measured in the same run, or None."""
    print(json.dumps({"bench": bench, "metric": metric, "value": round(value, 3), "unit": unit,
                      "target": target,
                      "baseline": None if baseline is None else round(baseline, 3)}),
          flush=True)


def percentile(samples: list[float], pct: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(samples)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


def free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time a process has used so far (Linux /proc)."""
    # The command name may hold spaces; the fields after its closing parenthesis don't.
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
