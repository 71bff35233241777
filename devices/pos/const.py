"""Named thresholds of the POS codecs and transports, each with the reason for its value."""

from __future__ import annotations

# Chinese POS printers boot in Chinese mode and many POS never send FS &: bytes >= 0x80
# are GB18030 (a superset of GB2312 and GBK) unless the port says otherwise.
DEFAULT_ENCODING = "gb18030"
# Printers pause mid-job when their buffer fills (XOFF / busy), for a second or more at
# 9600 baud, so the idle fallback that ends a job without a cut is seconds, not the
# 500 ms some capture tools use.
IDLE_GAP_S = 5.0
# After a cut, bytes such as a trailing LF or a drawer kick (ESC p) still belong to the
# receipt; a short grace closes the job when nothing else arrives.
CUT_GRACE_S = 0.5
# A text receipt is 0.5-2 KB and a logo receipt about 10 KB; 256 KB means the line
# carries something that is not a receipt (a raster-only driver, a stuck stream).
MAX_RECEIPT_BYTES = 256 * 1024
# 256 KB at 9600 baud takes about 270 s; a job still open after this is cut by force.
MAX_RECEIPT_S = 300.0
# ESC/POS binary blocks (GS 8 L with a 4-byte length) may announce up to 4 GB; anything
# above this is line noise, and the tokenizer stops waiting for it.
MAX_BLOCK_BYTES = 1024 * 1024

# Framed protocol: a payload is one receipt as JSON; 64 KB leaves room for long item lists.
MAX_FRAME_PAYLOAD = 64 * 1024
# The inter-byte timeout of a frame or JSON line: at 9600 baud a byte takes ~1 ms, so a
# 200 ms gap means the sender stopped mid-frame (the ZVT protocol uses the same T1).
INTER_BYTE_TIMEOUT_S = 0.2
MAX_JSON_LINE = MAX_FRAME_PAYLOAD + 64

# Port supervision: the first reopen is quick (a replugged adapter is back within a second
# or two), then the wait doubles up to the configured cap (`[pos] reopen_max_s`). Full
# jitter (`gateway.backoff`) keeps many ports that failed together (a USB hub reset) from
# retrying in lockstep.
REOPEN_FIRST_S = 0.2
# How often an idle port checks its job and frame timers.
TICK_S = 0.05
READ_CHUNK = 4096
# Jobs captured but not yet committed, per port; beyond this reading pauses (the tty and
# the printer buffer hold the bytes): receipts are never dropped.
JOB_QUEUE_MAX = 64
