"""Central's phone keys come from files only their owner can read."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography.fernet import Fernet

from cloud_api.server.cli import central_group
from cloud_api.server.phones import PhoneKeys, SecretFileError


def secret(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text, encoding="utf-8")
    path.chmod(mode)
    return path


def test_a_key_file_holds_one_key_per_mall(tmp_path: Path) -> None:
    keys = PhoneKeys.load(secret(tmp_path / "keys", "# mall=key\nmall-a = k-a\n\nmall-b=k=b\n"),
                          None)
    assert keys.hash_keys == {"mall-a": b"k-a", "mall-b": b"k=b"}
    assert keys.hash_for("mall-a", "13800138000") != keys.hash_for("mall-b", "13800138000")
    assert keys.hash_for("mall-c", "13800138000") is None


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604])
def test_a_key_file_others_can_read_is_refused(tmp_path: Path, mode: int) -> None:
    keys = secret(tmp_path / "keys", "mall-a=k-a\n", mode)
    with pytest.raises(SecretFileError, match="chmod 600"):
        PhoneKeys.load(keys, None)
    seal = secret(tmp_path / "seal", Fernet.generate_key().decode(), mode)
    with pytest.raises(SecretFileError, match="chmod 600"):
        PhoneKeys.load(None, seal)


@pytest.mark.parametrize("text", ["mall-a\n", "=k\n", "mall-a=\n", "m=k1\nm=k2\n"])
def test_a_malformed_key_file_names_its_line_not_its_key(tmp_path: Path, text: str) -> None:
    with pytest.raises(SecretFileError, match=r"line \d") as refused:
        PhoneKeys.load(secret(tmp_path / "keys", text), None)
    assert "k1" not in str(refused.value) and "k2" not in str(refused.value)


def test_an_encryption_key_must_be_a_fernet_key(tmp_path: Path) -> None:
    with pytest.raises(SecretFileError, match="Fernet"):
        PhoneKeys.load(None, secret(tmp_path / "seal", "not a key"))


def test_central_will_not_start_with_a_world_readable_key_file(tmp_path: Path) -> None:
    keys = secret(tmp_path / "keys", "mall-a=k-a\n", 0o644)
    result = CliRunner().invoke(central_group, [
        "serve", "--db", str(tmp_path / "central.db"), "--phone-key-file", str(keys)])
    assert result.exit_code != 0
    assert "chmod 600" in result.output
    assert not (tmp_path / "central.db").exists()
