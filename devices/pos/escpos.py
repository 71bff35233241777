"""A sans-io ESC/POS tokenizer: bytes in, tokens out, every byte accounted for.

The tokenizer knows the parameter count of every command (the arity table below) and the
length rules of every binary block (images, barcodes, 2D codes, user-defined glyphs), so no
parameter or image byte ever reaches the text. Text runs are decoded with the code page in
force where they were printed: `ESC t` selects a single-byte table, `FS &` / `FS .` switch
Chinese mode on and off, and a port's default encoding says how the printer boots (Chinese
POS printers boot in Chinese mode and many POS never send `FS &`).

    tok = Tokenizer("gb18030")
    for token in tok.feed(chunk): ...
    tokens = tok.flush()  # at the end of a job: an unfinished command becomes INCOMPLETE

`sum(len(t.raw) for t in tokens)` always equals the number of bytes fed.
"""

from __future__ import annotations

import codecs
import enum
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

from devices.pos.const import DEFAULT_ENCODING, MAX_BLOCK_BYTES

ESC, GS, FS, DLE = 0x1B, 0x1D, 0x1C, 0x10
LF, HT, CR, FF = 0x0A, 0x09, 0x0D, 0x0C
# Printable bytes with the line controls between them (LF, CR, HT) form one text run: a
# receipt's lines are one token, not three per line.
_TEXT_RUN = re.compile(rb"[\x20-\xff\n\r\t]+")
_TEXT_BYTES = frozenset(range(0x20, 0x100)) | {LF, CR, HT}

# Encodings whose bytes >= 0x80 form multi-byte characters: a port set to one of these
# boots in Chinese (CJK) mode.
CJK_ENCODINGS = frozenset({"gb18030", "gbk", "gb2312", "big5", "cp936", "cp950", "euc_kr",
                           "cp949", "shift_jis", "cp932"})

# ESC t n: Epson's numbering of the single-byte code tables. Tables without a Python codec
# (TCVN-3, the Thai variants other than 42) fall back to the nearest or to CP437; the raw
# bytes are always kept, so a better table can re-read them later.
CODE_PAGES: dict[int, str] = {
    0: "cp437", 1: "cp932", 2: "cp850", 3: "cp860", 4: "cp863", 5: "cp865", 6: "cp932",
    7: "cp437", 8: "cp437", 11: "cp437", 12: "cp437", 13: "cp857", 14: "cp737",
    15: "iso8859_7", 16: "cp1252", 17: "cp866", 18: "cp852", 19: "cp858", 20: "cp874",
    21: "cp874", 26: "cp874", 30: "cp437", 32: "cp720", 33: "cp775", 34: "cp855",
    35: "cp861", 36: "cp862", 37: "cp864", 38: "cp869", 39: "iso8859_2", 40: "iso8859_15",
    44: "cp1125", 45: "cp1250", 46: "cp1251", 47: "cp1253", 48: "cp1254", 49: "cp1255",
    50: "cp1256", 51: "cp1257", 52: "cp1258", 53: "kz1048",
}


class Kind(enum.Enum):
    TEXT = "text"  # printable bytes with LF / CR / HT among them, decoded into `text`
    CONTROL = "control"  # another one-byte control: FF, CAN, NUL, ...
    COMMAND = "command"  # ESC / GS / FS / DLE with its parameters
    BLOCK = "block"  # a command carrying binary data: image, glyphs, barcode, 2D code
    INCOMPLETE = "incomplete"  # a command cut off at the end of the job


class Token(NamedTuple):  # a tuple: thousands are made per receipt
    kind: Kind
    raw: bytes
    name: str = ""  # e.g. "ESC t", "GS V", "LF"
    text: str = ""  # for TEXT: the decoded characters
    data: bytes = b""  # for barcodes and 2D codes: the encoded payload
    printed: bool = False  # for TEXT: something visible, not only spaces and line breaks


# -- the arity table -------------------------------------------------------------------------
# A rule gets the buffer and the command's start and returns the command's whole length,
# or None when the buffer does not hold all of it yet.

Rule = Callable[[bytes, int], int | None] | int  # an int: a fixed whole length


def _fixed(n: int) -> int:
    return 2 + n


def _at(buf: bytes, j: int) -> int | None:
    return buf[j] if j < len(buf) else None


def _prefixed16(head: int) -> Rule:
    """`head` bytes (command + function bytes), then pL pH, then that many bytes."""
    def rule(buf: bytes, i: int) -> int | None:
        lo, hi = _at(buf, i + head), _at(buf, i + head + 1)
        if lo is None or hi is None:
            return None
        size = head + 2 + lo + hi * 256
        return size if len(buf) - i >= size else None
    return rule


def _gs_8(buf: bytes, i: int) -> int | None:
    """GS 8 L / GS 8 N: p1..p4 (32-bit little-endian length) then the data."""
    if len(buf) - i < 7:
        return None
    length = int.from_bytes(buf[i + 3:i + 7], "little")
    size = 7 + min(length, MAX_BLOCK_BYTES)
    return size if len(buf) - i >= size else None


def _esc_star(buf: bytes, i: int) -> int | None:
    """ESC * m nL nH d1..dk: k = n for 8-dot modes (m 0, 1), 3n for 24-dot modes."""
    if len(buf) - i < 5:
        return None
    m, n = buf[i + 2], buf[i + 3] + buf[i + 4] * 256
    size = 5 + n * (3 if m in (32, 33) else 1)
    return size if len(buf) - i >= size else None


def _gs_v0(buf: bytes, i: int) -> int | None:
    """GS v 0 m xL xH yL yH d1..dk: k = x * y."""
    if len(buf) - i < 8:
        return None
    x = buf[i + 4] + buf[i + 5] * 256
    y = buf[i + 6] + buf[i + 7] * 256
    size = 8 + x * y
    return size if len(buf) - i >= size else None


def _gs_star(buf: bytes, i: int) -> int | None:
    """GS * x y d1..dk: k = x * y * 8 (downloaded bit image)."""
    if len(buf) - i < 4:
        return None
    size = 4 + buf[i + 2] * buf[i + 3] * 8
    return size if len(buf) - i >= size else None


def _gs_k(buf: bytes, i: int) -> int | None:
    """GS k m ...: NUL-terminated data when m <= 6, a length byte when m >= 65."""
    m = _at(buf, i + 2)
    if m is None:
        return None
    if m <= 6:
        end = buf.find(b"\x00", i + 3)
        return end - i + 1 if end >= 0 else None
    n = _at(buf, i + 3)
    if n is None:
        return None
    size = 4 + n
    return size if len(buf) - i >= size else None


def _gs_cut(buf: bytes, i: int) -> int | None:
    """GS V m (m = 0, 1, 48, 49) or GS V m n (m = 65, 66, 97, 98, 103, 104)."""
    m = _at(buf, i + 2)
    if m is None:
        return None
    size = 3 if m in (0, 1, 48, 49) else 4
    return size if len(buf) - i >= size else None


def _esc_ampersand(buf: bytes, i: int) -> int | None:
    """ESC & y c1 c2 [x d1..d(y*x)] for each character c1..c2 (user-defined glyphs)."""
    if len(buf) - i < 5:
        return None
    y, c1, c2 = buf[i + 2], buf[i + 3], buf[i + 4]
    j = i + 5
    for _ in range(max(0, c2 - c1 + 1)):
        x = _at(buf, j)
        if x is None:
            return None
        j += 1 + y * x
    return j - i if j <= len(buf) else None


def _nul_terminated(start: int, most: int) -> Rule:
    """Parameters ended by NUL (ESC D, ESC B tab stops), at most `most` of them."""
    def rule(buf: bytes, i: int) -> int | None:
        end = buf.find(b"\x00", i + start, i + start + most + 1)
        if end >= 0:
            return end - i + 1
        return start + most if len(buf) - i >= start + most + 1 else None
    return rule


def _esc_c(buf: bytes, i: int) -> int | None:
    """ESC c 3 n, ESC c 4 n, ESC c 5 n: a sub-function byte and one parameter."""
    return 4 if len(buf) - i >= 4 else None


def _dle_dc4(buf: bytes, i: int) -> int | None:
    """DLE DC4 fn ...: fn 1 and 2 take two bytes, fn 7 one, fn 8 seven."""
    fn = _at(buf, i + 2)
    if fn is None:
        return None
    size = 3 + {1: 2, 2: 2, 7: 1, 8: 7}.get(fn, 0)
    return size if len(buf) - i >= size else None


def _fs_q(buf: bytes, i: int) -> int | None:
    """FS q n [xL xH yL yH d1..d(x*y*8)] x n: define NV bit images."""
    n = _at(buf, i + 2)
    if n is None:
        return None
    j = i + 3
    for _ in range(n):
        if len(buf) - j < 4:
            return None
        x = buf[j] + buf[j + 1] * 256
        y = buf[j + 2] + buf[j + 3] * 256
        j += 4 + x * y * 8
    return j - i if j <= len(buf) else None


def _fs_g1(buf: bytes, i: int) -> int | None:
    """FS g 1 m a1 a2 a3 a4 nL nH d1..dk: write to the NV user memory."""
    if len(buf) - i < 10:
        return None
    size = 10 + buf[i + 8] + buf[i + 9] * 256
    return size if len(buf) - i >= size else None


def _gs_c(buf: bytes, i: int) -> int | None:
    """GS C 0 n m, GS C 1 aL aH bL bH n r, GS C 2 nL nH (counter printing)."""
    fn = _at(buf, i + 2)
    if fn is None:
        return None
    size = {48: 5, 0: 5, 49: 9, 1: 9, 50: 5, 2: 5}.get(fn, 3)
    return size if len(buf) - i >= size else None


def _gs_g(buf: bytes, i: int) -> int | None:
    """GS g 0 m nL nH, GS g 2 m nL nH (maintenance counters)."""
    return 6 if len(buf) - i >= 6 else None


_ESC_RULES: dict[int, Rule] = {
    0x0C: _fixed(0), 0x20: _fixed(1), 0x21: _fixed(1), 0x24: _fixed(2), 0x25: _fixed(1),
    0x26: _esc_ampersand, 0x28: _prefixed16(3), 0x2A: _esc_star, 0x2D: _fixed(1),
    0x32: _fixed(0), 0x33: _fixed(1), 0x3C: _fixed(0), 0x3D: _fixed(1), 0x3F: _fixed(1),
    0x40: _fixed(0), 0x42: _nul_terminated(2, 32), 0x44: _nul_terminated(2, 32),
    0x45: _fixed(1), 0x47: _fixed(1), 0x4A: _fixed(1), 0x4B: _fixed(1), 0x4C: _fixed(0),
    0x4D: _fixed(1), 0x52: _fixed(1), 0x53: _fixed(0), 0x54: _fixed(1), 0x55: _fixed(1),
    0x56: _fixed(1), 0x57: _fixed(8), 0x5C: _fixed(2), 0x61: _fixed(1), 0x63: _esc_c,
    0x64: _fixed(1), 0x65: _fixed(1), 0x66: _fixed(2), 0x67: _fixed(1), 0x69: _fixed(0),
    0x6A: _fixed(1), 0x6D: _fixed(0), 0x70: _fixed(3), 0x72: _fixed(1), 0x74: _fixed(1),
    0x75: _fixed(1), 0x76: _fixed(0), 0x7B: _fixed(1),
}
_GS_RULES: dict[int, Rule] = {
    0x21: _fixed(1), 0x23: _fixed(1), 0x24: _fixed(2), 0x28: _prefixed16(3),
    0x2A: _gs_star, 0x2F: _fixed(1), 0x3A: _fixed(0), 0x38: _gs_8, 0x42: _fixed(1),
    0x43: _gs_c, 0x44: _prefixed16(3), 0x45: _fixed(1), 0x48: _fixed(1), 0x49: _fixed(1),
    0x4C: _fixed(2), 0x50: _fixed(2), 0x51: _fixed(1), 0x54: _fixed(1), 0x56: _gs_cut,
    0x57: _fixed(2), 0x5C: _fixed(2), 0x5E: _fixed(3), 0x61: _fixed(1), 0x62: _fixed(1),
    0x63: _fixed(0), 0x66: _fixed(1), 0x67: _gs_g, 0x68: _fixed(1), 0x6B: _gs_k,
    0x72: _fixed(1), 0x76: _gs_v0, 0x77: _fixed(1), 0x7A: _fixed(3), 0x7C: _fixed(1),
}
_FS_RULES: dict[int, Rule] = {
    0x21: _fixed(1), 0x26: _fixed(0), 0x28: _prefixed16(3), 0x2D: _fixed(1), 0x2E: _fixed(0),
    0x32: _fixed(74), 0x43: _fixed(1), 0x53: _fixed(2), 0x57: _fixed(1), 0x67: _fs_g1,
    0x70: _fixed(2), 0x71: _fs_q, 0x3F: _fixed(2),
}
_DLE_RULES: dict[int, Rule] = {0x04: _fixed(1), 0x05: _fixed(1), 0x14: _dle_dc4}
_FAMILIES: dict[int, tuple[str, dict[int, Rule]]] = {
    ESC: ("ESC", _ESC_RULES), GS: ("GS", _GS_RULES), FS: ("FS", _FS_RULES),
    DLE: ("DLE", _DLE_RULES),
}
# Commands whose parameters are binary data rather than settings.
_BLOCKS = frozenset({"ESC &", "ESC *", "GS (", "GS *", "GS 8", "GS D", "GS k", "GS v",
                     "FS 2", "FS q", "FS g", "FS ("})
_STATEFUL = frozenset({"ESC t", "FS &", "FS .", "ESC @"})
# Fixed-length commands that only format text: never a receipt boundary, never a trailer
# after a cut, no effect on decoding.
_FORMATTING = frozenset({"ESC a", "ESC E", "ESC !", "GS !", "ESC -", "GS B", "ESC G",
                         "ESC M", "ESC 3", "ESC 2", "ESC 0x20", "GS L", "GS W", "ESC $",
                         "ESC \\", "ESC {", "ESC V", "ESC r", "GS b", "GS H", "GS h",
                         "GS w", "GS f", "ESC U", "ESC T"})
_CONTROL_NAMES = {LF: "LF", HT: "HT", CR: "CR", FF: "FF", 0x18: "CAN"}


def _command_name(family: str, second: int) -> str:
    return f"{family} {chr(second) if 0x21 <= second < 0x7F else f'0x{second:02X}'}"


# Every (prefix, command byte) -> (name, rule or None for an unknown command), built once.
_TABLE: dict[int, tuple[tuple[str, Rule | None], ...]] = {
    prefix: tuple((_command_name(family, second), rules.get(second)) for second in range(256))
    for prefix, (family, rules) in _FAMILIES.items()
}


@dataclass(slots=True)
class _CodeState:
    default: str
    chinese: bool = False
    table: int = 0
    cjk: str = DEFAULT_ENCODING
    decoder: codecs.IncrementalDecoder | None = field(default=None, repr=False)

    def reset(self) -> None:
        base = codecs.lookup(self.default).name
        self.chinese = base in CJK_ENCODINGS
        self.cjk = base if self.chinese else DEFAULT_ENCODING
        self.table = 0
        self.decoder = None

    @property
    def encoding(self) -> str:
        if self.chinese:
            return self.cjk
        if self.table == 0 and self.default:
            base = codecs.lookup(self.default).name
            if base not in CJK_ENCODINGS:
                return base
        return CODE_PAGES.get(self.table, "cp437")

    def decode(self, data: bytes, *, whole: bool) -> str:
        """Decode a text run; `whole`: the run is complete (not cut by the read's end)."""
        if whole and self.decoder is None:
            return data.decode(self.encoding, errors="replace")
        if self.decoder is None:
            self.decoder = codecs.getincrementaldecoder(self.encoding)(errors="replace")
        return self.decoder.decode(data)

    def end_run(self) -> str:
        """Finish the text run: a character split by a command is replaced, not carried."""
        if self.decoder is None:
            return ""
        tail = self.decoder.decode(b"", final=True)
        self.decoder = None
        return tail


class Tokenizer:
    """Feed bytes, get tokens. Holds back only a command whose parameters have not arrived."""

    def __init__(self, encoding: str = DEFAULT_ENCODING, *, decode: bool = True) -> None:
        """`decode=False`: structure only (TEXT tokens keep their bytes, `text` is empty),
        for finding receipt boundaries on a busy line; the text is read later."""
        codecs.lookup(encoding)  # an unknown encoding fails here, at configuration time
        self._state = _CodeState(encoding)
        self._state.reset()
        self._buf = b""
        self._decode = decode

    @property
    def encoding(self) -> str:
        """The encoding text is decoded with right now."""
        return self._state.encoding

    def feed(self, data: bytes) -> list[Token]:
        self._buf += data
        tokens, used = self._scan(self._buf, final=False)
        self._buf = self._buf[used:]
        return tokens

    def flush(self) -> list[Token]:
        """End of a job: whatever is held back is emitted (an unfinished command as such)."""
        tokens, used = self._scan(self._buf, final=True)
        rest = self._buf[used:]
        self._buf = b""
        if rest:
            tokens.append(Token(Kind.INCOMPLETE, rest, name=_incomplete_name(rest)))
        tail = self._state.end_run()
        if tail:
            tokens.append(Token(Kind.TEXT, b"", text=tail))
        return tokens

    @property
    def pending(self) -> int:
        """Bytes fed but not yet emitted as tokens."""
        return len(self._buf)

    def _scan(self, buf: bytes, *, final: bool) -> tuple[list[Token], int]:  # noqa: PLR0912, PLR0915 - the hot loop stays in one frame
        tokens: list[Token] = []
        state = self._state
        i, end = 0, len(buf)
        while i < end:
            b = buf[i]
            if b in _TEXT_BYTES:
                if not self._decode:
                    i = self._structure_run(buf, i, tokens)
                    continue
                match = _TEXT_RUN.match(buf, i)
                assert match is not None  # noqa: S101 - buf[i] is a text byte: it matches
                run = match.group()
                i = match.end()
                if i == end and not final:  # the run may go on in the next read
                    tokens.append(Token(Kind.TEXT, run, "", state.decode(run, whole=False),
                                        b"", bool(run.strip())))
                    break
                text = state.decode(run, whole=True)
                tokens.append(Token(Kind.TEXT, run, "", text + state.end_run(), b"",
                                    bool(run.strip())))
                continue
            tail = state.end_run()
            if tail:
                tokens.append(Token(Kind.TEXT, b"", text=tail))
            table = _TABLE.get(b)
            if table is None:
                tokens.append(Token(Kind.CONTROL, buf[i:i + 1],
                                    name=_CONTROL_NAMES.get(b, f"0x{b:02X}")))
                i += 1
                continue
            if i + 1 >= end:
                break  # wait for the command byte
            name, rule = table[buf[i + 1]]
            if isinstance(rule, int):  # fixed length: most commands
                if end - i < rule:
                    break
                raw = buf[i:i + rule]
                if name in _STATEFUL:
                    self._command(name, raw)
                tokens.append(Token(Kind.COMMAND, raw, name))
                i += rule
                continue
            if rule is None:
                if b == DLE:  # a lone DLE (not a real-time command) is one control byte
                    tokens.append(Token(Kind.CONTROL, buf[i:i + 1], name="DLE"))
                    i += 1
                    continue
                # Unknown: take the two command bytes and resynchronise on what follows.
                tokens.append(Token(Kind.COMMAND, buf[i:i + 2], name=name + " ?"))
                i += 2
                continue
            size = rule(buf, i)
            if size is None:
                break
            raw = buf[i:i + size]
            tokens.append(self._command(name, raw))
            i += size
        return tokens, i

    def _structure_run(self, buf: bytes, start: int, tokens: list[Token]) -> int:
        """Structure mode: one TEXT token for text and the pure formatting commands between
        its runs (alignment, emphasis, size): they end nothing and change no code page."""
        end, i, printed = len(buf), start, False
        while i < end:
            b = buf[i]
            if b in _TEXT_BYTES:
                match = _TEXT_RUN.match(buf, i)
                assert match is not None  # noqa: S101 - b is a text byte
                printed = printed or bool(match.group().strip())
                i = match.end()
                continue
            table = _TABLE.get(b)
            if table is None or i + 1 >= end:
                break
            name, rule = table[buf[i + 1]]
            if not isinstance(rule, int) or name not in _FORMATTING or end - i < rule:
                break
            i += rule
        tokens.append(Token(Kind.TEXT, buf[start:i], "", "", b"", printed))
        return i

    def _command(self, name: str, raw: bytes) -> Token:
        state = self._state
        if name == "ESC t":
            state.table = raw[2]
        elif name == "FS &":
            state.chinese = True
        elif name == "FS .":
            state.chinese = False
        elif name == "ESC @":
            state.reset()
        if name in _BLOCKS:
            return Token(Kind.BLOCK, raw, name=name, data=_payload(name, raw))
        return Token(Kind.COMMAND, raw, name=name)


def _payload(name: str, raw: bytes) -> bytes:
    """The encoded data of a barcode (`GS k`) or of a stored 2D symbol (`GS ( k` fn 80)."""
    if name == "GS k":
        return raw[3:-1] if raw[2] <= 6 else raw[4:]
    if name == "GS (" and raw[2] == 0x6B and len(raw) >= 8 and raw[6] in (80, 0x50) \
            and raw[5] in (48, 49, 50, 51):
        return raw[8:]  # cn fn m d1..dk
    return b""


def _incomplete_name(rest: bytes) -> str:
    family = _FAMILIES.get(rest[0])
    if family is None or len(rest) < 2:
        return "0x%02X" % rest[0]  # noqa: UP031 - byte in hex
    return _command_name(family[0], rest[1])


def tokenize(data: bytes, encoding: str = DEFAULT_ENCODING) -> list[Token]:
    """All tokens of one complete job."""
    tok = Tokenizer(encoding)
    return tok.feed(data) + tok.flush()


def receipt_text(tokens: list[Token]) -> str:
    """The printed text of a job: LF ends a line; HT, ESC $ and ESC \\ separate columns."""
    parts: list[str] = []
    for token in tokens:
        if token.kind is Kind.TEXT:
            parts.append(token.text.replace("\r", "") if "\r" in token.text else token.text)
        elif token.name in {"FF", "ESC d", "ESC J"}:
            parts.append("\n")
        elif token.name in {"ESC $", "ESC \\"}:
            parts.append("\t")
    return "".join(parts)


def codes(tokens: list[Token]) -> list[bytes]:
    """Payloads of the barcodes and 2D codes printed in a job (member codes, links)."""
    return [t.data for t in tokens if t.kind is Kind.BLOCK and t.data]
