"""Members' phone numbers at central: kept as the mall's keyed hash and a masked form.

A number is stored as three columns of its member, never in the profile:

- `phone_hash`: the keyed hash under the mall's phone hash key (`gateway.loyalty.phones`,
  the same key as the mall's `[kiosk] phone_hash_key`), sent to the gateways as the
  member's `phone_hash` identifier and searched by the service desk; absent when central
  has no key for the mall;
- `phone_masked`: `138****8000`, for display, at the edge too;
- `phone_encrypted`: the number itself, encrypted with a Fernet key, only when central is
  given one (to call or text members back); otherwise central cannot read it back.

The keys come from files outside the database: a database that leaks without them holds
no number (a mainland mobile number's hash without its key is reversed in seconds by
trying every number). A key file must be readable by its owner only.
"""

from __future__ import annotations

import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken

from gateway.loyalty.errors import InvalidPhone
from gateway.loyalty.phones import mask_phone, normalise_phone, phone_hash


class SecretFileError(ValueError):
    """A key file central refuses: readable by others, unreadable or malformed."""


@dataclass(frozen=True, slots=True)
class StoredPhone:
    """A member's number as stored: each column, None where not kept."""

    hash: str | None
    masked: str | None
    encrypted: str | None

    @classmethod
    def none(cls) -> StoredPhone:
        return cls(None, None, None)


@dataclass(frozen=True)
class PhoneKeys:
    """Each mall's phone hash key, and the key numbers are encrypted with (if any)."""

    hash_keys: Mapping[str, bytes] = field(default_factory=dict)
    seal_key: bytes | None = None

    def __post_init__(self) -> None:
        if self.seal_key is not None:
            Fernet(self.seal_key)  # a malformed key fails here, at start, not on a write

    @classmethod
    def load(cls, hash_key_file: Path | None, seal_key_file: Path | None) -> PhoneKeys:
        """Keys from `mall=key` lines (the key as in the mall's `[kiosk] phone_hash_key`)
        and a Fernet key file; `SecretFileError` names what is wrong, never a key."""
        keys = parse_hash_keys(read_secret(hash_key_file)) if hash_key_file else {}
        seal = read_secret(seal_key_file).strip().encode() if seal_key_file else None
        try:
            return cls(keys, seal)
        except ValueError:
            raise SecretFileError(f"{seal_key_file}: not a Fernet key (32 url-safe base64 "
                                  "bytes, as Fernet.generate_key() makes)") from None

    def has_key(self, mall_id: str) -> bool:
        return mall_id in self.hash_keys

    def hash_for(self, mall_id: str, number: str) -> str | None:
        """The number's keyed hash in this mall; None without a key for the mall.
        `InvalidPhone` if it is no phone number."""
        key = self.hash_keys.get(mall_id)
        return phone_hash(key, number) if key is not None else None

    def protect(self, mall_id: str, number: str) -> StoredPhone:
        """What is stored of a number; `InvalidPhone` if it is no phone number."""
        digits = normalise_phone(number)
        sealed = (Fernet(self.seal_key).encrypt(digits.encode()).decode()
                  if self.seal_key is not None else None)
        return StoredPhone(self.hash_for(mall_id, digits), mask_phone(digits), sealed)

    def reveal(self, encrypted: str | None) -> str | None:
        """The number kept encrypted, if central holds the key it was encrypted with."""
        if encrypted is None or self.seal_key is None:
            return None
        try:
            return Fernet(self.seal_key).decrypt(encrypted.encode()).decode()
        except InvalidToken:
            return None  # encrypted under a key central no longer has


def read_secret(path: Path) -> str:
    """The text of a key file that only its owner can read."""
    try:
        mode = path.stat().st_mode
        if not stat.S_ISREG(mode):
            raise SecretFileError(f"{path}: not a regular file")
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise SecretFileError(f"{path}: readable by group or others; chmod 600 it "
                                  "(and check who has seen it)")
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SecretFileError(f"{path}: {exc.strerror}") from None


def parse_hash_keys(text: str) -> dict[str, bytes]:
    """`mall=key` per line; blank lines and `#` comments are skipped. A key is taken as
    written after the first `=`, surrounding spaces dropped, as UTF-8 bytes."""
    keys: dict[str, bytes] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        mall, sep, key = (part.strip() for part in line.partition("="))
        if not sep or not mall or not key:
            raise SecretFileError(f"phone key file, line {number}: expected mall=key")
        if mall in keys:
            raise SecretFileError(f"phone key file, line {number}: mall {mall} again")
        keys[mall] = key.encode("utf-8")
    return keys


def take_phone(keys: PhoneKeys, mall_id: str, profile: Mapping[str, Any],
               changed: Mapping[str, Any],
               current: StoredPhone) -> tuple[dict[str, Any], StoredPhone]:
    """The profile to store and the member's phone after a write of the `changed` fields
    (`profile`: the stored profile with them merged in; `current`: the phone stored so
    far). A number given is stored protected, an empty one removes it. A number an older
    central kept in the profile is converted once the mall has its key; until then, or
    if it is no phone number, it stays as it was (for an operator to correct): nothing
    is dropped unseen."""
    rest = {k: v for k, v in profile.items() if k != "phone"}
    if "phone" in changed:
        number = changed["phone"]
        return rest, keys.protect(mall_id, number) if number else StoredPhone.none()
    legacy = profile.get("phone")
    if isinstance(legacy, str) and keys.has_key(mall_id):
        try:
            return rest, keys.protect(mall_id, legacy)
        except InvalidPhone:
            pass
    return dict(profile), current
