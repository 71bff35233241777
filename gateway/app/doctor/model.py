"""Findings, their order of gravity, running checks each within a timeout, and the table."""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass


class Result(enum.IntEnum):
    """Ordered by gravity: the worst finding sets the exit code."""

    OK = 0
    SKIP = 1  # not applicable here (not configured, no D-Bus): never a problem
    WARN = 2
    FAIL = 3

    @property
    def label(self) -> str:
        return self.name.lower()


@dataclass(frozen=True, slots=True)
class Finding:
    check: str
    result: Result
    detail: str
    fix: str = ""  # what to do about a warn or fail


@dataclass(frozen=True, slots=True)
class Check:
    """A named check; `run` returns one finding or more (one per port, adapter...)."""

    name: str
    run: Callable[[], Awaitable[list[Finding]]]
    fix_on_timeout: str = ""


async def run_checks(checks: Sequence[Check], timeout_s: float) -> list[Finding]:
    """Every check, one after the other, each bounded by `timeout_s`; a check that raises
    or overruns is a failure of that check, never of the doctor."""
    findings: list[Finding] = []
    for check in checks:
        try:
            async with asyncio.timeout(timeout_s):
                findings += await check.run()
        except TimeoutError:
            findings.append(Finding(check.name, Result.FAIL, f"no answer within {timeout_s:g} s",
                                    check.fix_on_timeout))
        except Exception as exc:  # one broken check must not hide the others
            findings.append(Finding(check.name, Result.FAIL,
                                    f"the check failed: {type(exc).__name__}: {exc}"))
    return findings


def exit_code(findings: Sequence[Finding]) -> int:
    """0 when all is ok (or skipped), 1 with a warning, 2 with a failure."""
    worst = max((f.result for f in findings), default=Result.OK)
    return {Result.WARN: 1, Result.FAIL: 2}.get(worst, 0)


def table(findings: Sequence[Finding]) -> list[str]:
    """check | result | detail, with a `fix:` line under each warning and failure."""
    width = max([len("check"), *(len(f.check) for f in findings)])
    lines = [f"{'check':<{width}}  result  detail"]
    for f in findings:
        lines.append(f"{f.check:<{width}}  {f.result.label:<6}  {f.detail}")
        if f.fix and f.result >= Result.WARN:
            lines.append(f"{'':<{width}}  {'':<6}  fix: {f.fix}")
    return lines
