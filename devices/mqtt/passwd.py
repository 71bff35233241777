"""mosquitto's password file, written in Python: no password on a process command line.

`mosquitto_passwd -b FILE USER PASSWORD` shows the password to every user of the machine
(`ps`, /proc/PID/cmdline) while it runs. The hash is mosquitto 2's `$7$` format instead:
PBKDF2-HMAC-SHA512, `$7${iterations}${base64 salt}${base64 hash}`, which mosquitto reads.

The files are written whole to a temporary file and renamed over the old one, so the broker
never reads half a file, and handed to the user mosquitto runs as, who must read them.
"""

from __future__ import annotations

import base64
import hashlib
import os
import pwd
import secrets
import tempfile
from pathlib import Path

# mosquitto_passwd's own defaults. The passwords `mallgate kiosk add` makes are 144 random
# bits: more iterations would cost the broker CPU at every login and add no strength.
ITERATIONS = 101
SALT_BYTES = 12
BROKER_USER = "mosquitto"


def hash_password(password: str, *, salt: bytes | None = None,
                  iterations: int = ITERATIONS) -> str:
    salt = salt if salt is not None else secrets.token_bytes(SALT_BYTES)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations, 64)
    return (f"$7${iterations}${base64.b64encode(salt).decode()}"
            f"${base64.b64encode(digest).decode()}")


def check_password(hashed: str, password: str) -> bool:
    """Whether `password` matches a `$7$` line's hash (as mosquitto checks it)."""
    try:
        _, kind, iterations, salt, digest = hashed.split("$")
        if kind != "7":
            return False
        expected = base64.b64decode(digest)
        got = hashlib.pbkdf2_hmac("sha512", password.encode(), base64.b64decode(salt),
                                  int(iterations), len(expected))
    except ValueError:
        return False
    return secrets.compare_digest(expected, got)


def with_password(text: str, user: str, password: str) -> str:
    """Password file `text` with `user`'s line replaced (or added)."""
    lines = [line for line in text.splitlines()
             if line.strip() and line.split(":", 1)[0] != user]
    lines.append(f"{user}:{hash_password(password)}")
    return "\n".join(lines) + "\n"


def write_broker_file(path: Path, text: str) -> str | None:
    """Replace `path` with `text`, readable by mosquitto and no one else.

    Run as root, the file is handed to the `mosquitto` user (mode 0600), as mosquitto reads
    its password and ACL files after dropping to that user. Otherwise the file keeps its
    owner with mode 0600, and the returned warning says who must own it.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    broker = _broker_user()
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    tmp = Path(name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        tmp.chmod(0o600)
        if broker is not None and os.geteuid() == 0:
            os.chown(tmp, broker.pw_uid, broker.pw_gid)
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if broker is not None and path.stat().st_uid != broker.pw_uid:
        return (f"{path} belongs to you, and mosquitto (user {BROKER_USER}) cannot read it: "
                f"run this command as root, or `sudo chown {BROKER_USER}: {path}`")
    return None


def _broker_user() -> pwd.struct_passwd | None:
    try:
        return pwd.getpwnam(BROKER_USER)
    except KeyError:
        return None
