"""Sans-io receipt splitter: an ESC/POS byte stream in, one `Job` per printed receipt out.

Boundaries, in order of trust: a cut (`GS V` in all forms, `ESC i`, `ESC m`) ends a
receipt, but the bytes that follow it before anything new starts (LF, `ESC p` drawer kick,
feeds, real-time status requests) stay with it; `ESC @` after content starts the next job;
an idle gap ends a job that never cut; size and duration guards end a runaway stream.
Time is passed in by the caller (`now`, seconds on a monotonic clock).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from devices.pos.const import (
    CUT_GRACE_S,
    DEFAULT_ENCODING,
    IDLE_GAP_S,
    MAX_RECEIPT_BYTES,
    MAX_RECEIPT_S,
)
from devices.pos.escpos import Kind, Token, Tokenizer, codes, receipt_text, tokenize

_CUTS = frozenset({"GS V", "ESC i", "ESC m"})
_BOUNDARIES = _CUTS | {"ESC @"}
# What may follow a cut and still belong to the receipt that was cut.
_TRAILERS = frozenset({"LF", "CR", "FF", "ESC p", "ESC d", "ESC J", "DLE 0x04", "DLE 0x05",
                       "DLE 0x14", "GS V", "ESC i", "ESC m", "GS a", "GS r"})


@dataclass(frozen=True, slots=True)
class Job:
    """One receipt's bytes as they came over the line, and how the job ended."""

    raw: bytes
    tokens: tuple[Token, ...]  # structure only: TEXT tokens carry bytes, not text
    ended_by: str  # cut | init | idle | size | duration | flush
    encoding: str = DEFAULT_ENCODING  # the port's, to read the text with

    @property
    def text(self) -> str:
        """The printed text, decoded from the job's bytes with the port's encoding."""
        return receipt_text(tokenize(self.raw, self.encoding))

    @property
    def codes(self) -> list[bytes]:
        return codes(list(self.tokens))

    @property
    def has_content(self) -> bool:
        return any(_printed(t) for t in self.tokens)


def _printed(token: Token) -> bool:
    """Text with something visible, or a block (image, code): what makes a job a receipt."""
    return token.kind is Kind.BLOCK or (token.kind is Kind.TEXT and token.printed)


@dataclass(slots=True)
class _Open:
    started: float
    tokens: list[Token] = field(default_factory=list)
    size: int = 0
    cut: bool = False
    content: bool = False


class Splitter:
    def __init__(self, encoding: str = DEFAULT_ENCODING, *, idle_gap: float = IDLE_GAP_S,
                 cut_grace: float = CUT_GRACE_S, max_bytes: int = MAX_RECEIPT_BYTES,
                 max_seconds: float = MAX_RECEIPT_S) -> None:
        self.encoding = encoding
        # Boundaries need the structure, not the text: a job's text is decoded on demand.
        self._tok = Tokenizer(encoding, decode=False)
        self.idle_gap, self.cut_grace = idle_gap, cut_grace
        self.max_bytes, self.max_seconds = max_bytes, max_seconds
        self._job: _Open | None = None
        self._last_byte_at = 0.0

    def feed(self, data: bytes, now: float) -> list[Job]:
        """Bytes read at `now`. Only what is in the bytes ends jobs here (and the guards):
        quiet time is judged by `tick`, called when a read found the line silent."""
        jobs: list[Job] = []
        if not data:
            return jobs
        self._last_byte_at = now
        add = self._add
        for token in self._tok.feed(data):
            job = self._job
            # The common case inline: a token that neither ends nor starts a job.
            if (job is not None and not job.cut and token.kind is not Kind.BLOCK
                    and token.name not in _BOUNDARIES):
                job.tokens.append(token)
                job.size += len(token.raw)
                if not job.content and token.printed:
                    job.content = True
                continue
            jobs.extend(add(token, now))
        job = self._job
        if job is not None and (job.size + self._tok.pending >= self.max_bytes
                                or now - job.started >= self.max_seconds):
            jobs.extend(self._close("size" if job.size >= self.max_bytes else "duration"))
        return jobs

    def tick(self, now: float) -> list[Job]:
        """Close a job on the idle gap (or the short grace after a cut)."""
        if self._job is None and not self._tok.pending:
            return []
        quiet = now - self._last_byte_at
        if self._job is not None and self._job.cut and quiet >= self.cut_grace:
            return self._close("cut")
        if quiet >= self.idle_gap:
            return self._close("idle")
        return []

    def flush(self) -> list[Job]:
        """The line closed: whatever was received is a job."""
        return self._close("flush")

    @property
    def pending(self) -> int:
        """Bytes received and not yet handed out in a job."""
        return (self._job.size if self._job else 0) + self._tok.pending

    def _add(self, token: Token, now: float) -> list[Job]:
        jobs: list[Job] = []
        job = self._job
        printed = _printed(token)
        if job is not None and job.cut and (printed or (
                token.kind is not Kind.TEXT and token.name not in _TRAILERS)):
            jobs.extend(self._emit("cut"))
            job = None
        elif job is not None and token.name == "ESC @" and job.content:
            jobs.extend(self._emit("init"))
            job = None
        if job is None:
            job = self._job = _Open(started=now)
        job.tokens.append(token)
        job.size += len(token.raw)
        if printed:
            job.content = True
        if token.name in _CUTS:
            job.cut = True
        return jobs

    def _close(self, reason: str) -> list[Job]:
        for token in self._tok.flush():
            if self._job is None:
                self._job = _Open(started=self._last_byte_at)
            self._job.tokens.append(token)
            self._job.size += len(token.raw)
        return self._emit(reason)

    def _emit(self, reason: str) -> list[Job]:
        job, self._job = self._job, None
        if job is None or not job.tokens:
            return []
        raw = b"".join(t.raw for t in job.tokens)
        return [Job(raw, tuple(job.tokens), "cut" if job.cut else reason, self.encoding)]
