"""Hybrid logical clock: stamps that follow wall time yet never go backwards.

A stamp is `WWWWWWWWWWWWW-CCCC-node`: wall milliseconds and a counter, fixed width so that
comparing the strings compares the clocks. A gateway whose clock jumps back keeps
issuing increasing stamps, and observing a stamp from central moves it past it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

_COUNTER_MAX = 0xFFFF


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True, order=True, slots=True)
class Stamp:
    wall: int
    counter: int
    node: str

    def __str__(self) -> str:
        return f"{self.wall:013d}-{self.counter:04x}-{self.node}"

    @classmethod
    def parse(cls, text: str) -> Stamp:
        wall, counter, node = text.split("-", 2)
        if len(wall) != 13 or len(counter) != 4 or not node:
            raise ValueError(f"not a clock stamp: {text!r}")
        return cls(int(wall), int(counter, 16), node)


class HybridClock:
    """Thread-safe: the store's writer thread and the event loop may both stamp."""

    def __init__(self, node: str, now_ms: Callable[[], int] = wall_ms) -> None:
        if not node:
            raise ValueError("node id must not be empty")
        self.node = node
        self._now_ms = now_ms
        self._wall = 0
        self._counter = 0
        self._lock = threading.Lock()

    def _advance(self, seen_wall: int, seen_counter: int) -> Stamp:
        physical = self._now_ms()
        wall = max(self._wall, seen_wall, physical)
        if wall == self._wall == seen_wall:
            counter = max(self._counter, seen_counter) + 1
        elif wall == self._wall:
            counter = self._counter + 1
        elif wall == seen_wall:
            counter = seen_counter + 1
        else:
            counter = 0
        if counter > _COUNTER_MAX:  # more than 65,536 stamps in one ms: borrow the next ms
            wall, counter = wall + 1, 0
        self._wall, self._counter = wall, counter
        return Stamp(wall, counter, self.node)

    def stamp(self) -> Stamp:
        with self._lock:
            return self._advance(0, 0)

    def observe(self, remote: Stamp) -> Stamp:
        """Merge a stamp received from another site; the next stamps sort after it."""
        with self._lock:
            return self._advance(remote.wall, remote.counter)

    def offset_ms(self) -> int:
        """How far the logical clock runs ahead of this machine's wall clock."""
        with self._lock:
            return max(0, self._wall - self._now_ms())
