"""Reading a bearer token from its file, refused unless only its owner can read it.

Anyone who can read a token can act as its holder at central: the gateway's token
(`[central] token_file`) and a back-office token (`mallgate central rules ...
--token-file`) are read here alike. Standard library only: the CLI reads a token without
loading the settings models.
"""

from __future__ import annotations

import stat
from pathlib import Path


class TokenFileError(ValueError):
    """A token file that cannot be used: `problem` says why, `allowed` what would do."""

    def __init__(self, path: Path, problem: str, allowed: str) -> None:
        super().__init__(f"{path}: {problem}; allowed: {allowed}")
        self.path = path
        self.problem = problem
        self.allowed = allowed


def read_token_file(path: Path, *, owner_only: bool = True) -> str:
    """The token in `path`, stripped. `owner_only=False` reads a file others can read too
    (`mallgate doctor` reports it as one finding rather than stopping there)."""
    allowed = "a readable UTF-8 file holding the token"
    try:
        mode = path.stat().st_mode
        if mode & 0o077 and owner_only:
            raise TokenFileError(path, f"readable by group or others (mode "
                                       f"{stat.S_IMODE(mode):o})",
                                 f"a file only its owner reads: chmod 600 {path}")
        token = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise TokenFileError(path, f"cannot read the token file: {exc.strerror}",
                             allowed) from None
    except UnicodeDecodeError:
        raise TokenFileError(path, "the token file is not UTF-8 text", allowed) from None
    if not token:
        raise TokenFileError(path, "the token file is empty", allowed)
    return token
