"""Dead letters: input the gateway refused, kept (redacted, bounded) with why, replayable.

`keep` is the one way any part keeps a rejected input; `cli` is `mallgate deadletters`.
"""

from gateway.deadletters.forget import forget_letters_naming, mentions
from gateway.deadletters.keep import (
    MAX_CONTEXT_CHARS,
    MAX_CONTEXT_KEYS,
    MAX_ERROR_CHARS,
    MAX_RAW_BYTES,
    keep,
    keep_with,
    reword,
)
from gateway.redaction import redact

__all__ = ["MAX_CONTEXT_CHARS", "MAX_CONTEXT_KEYS", "MAX_ERROR_CHARS", "MAX_RAW_BYTES",
           "forget_letters_naming", "keep", "keep_with", "mentions", "redact", "reword"]
