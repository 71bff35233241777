"""`[central]` held safely: secret files private, no password in the URL, TLS by default."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from click.testing import CliRunner

from gateway.cli import main
from gateway.settings import SettingsError, load_settings
from gateway.settings.advice import advice, log_advice

PASSWORD = "pw-3c1d5e7f"  # noqa: S105 - made up; must never be shown
BASE = """
[site]
mall_id = "demo-mall"
gateway_id = "gw-1"

[central]
"""


def config(tmp_path: Path, central: str) -> Path:
    path = tmp_path / "mallgate.toml"
    path.write_text(BASE + central, encoding="utf-8")
    return path


def check(path: Path) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["config", "check", "--no-env", str(path)])
    return result.exit_code, result.output


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604])
def test_a_token_file_others_can_read_is_refused(tmp_path: Path, mode: int) -> None:
    secret = tmp_path / "central.token"
    secret.write_text("tok-1\n")
    secret.chmod(mode)
    path = config(tmp_path, f'url = "https://c.example.com"\ntoken_file = "{secret}"\n')
    with pytest.raises(SettingsError) as refused:
        load_settings(path, environ={})
    assert "central.token_file" in str(refused.value)
    assert f"chmod 600 {secret}" in str(refused.value)
    secret.chmod(0o600)
    assert load_settings(path, environ={}).central.token is not None


def test_a_password_in_the_url_is_refused_and_never_shown(tmp_path: Path) -> None:
    path = config(tmp_path, f'url = "https://gw-1:{PASSWORD}@c.example.com"\n')
    with pytest.raises(SettingsError) as refused:
        load_settings(path, environ={})
    assert "central.url" in str(refused.value) and "token_file" in str(refused.value)
    assert PASSWORD not in str(refused.value)
    code, output = check(path)
    assert code == 2 and PASSWORD not in output and "token_file" in output
    env = {"MALLGATE__CENTRAL__URL": f"https://u:{PASSWORD}@c.example.com"}
    with pytest.raises(SettingsError) as refused:
        load_settings(config(tmp_path, ""), environ=env)
    assert PASSWORD not in str(refused.value)


def test_plaintext_to_a_remote_central_is_warned_about(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = config(tmp_path, 'url = "http://central.example.com"\n')
    code, output = check(path)
    assert code == 0 and "warning" in output and "https://" in output
    settings = load_settings(path, environ={})
    assert any("plaintext" in line for line in advice(settings))
    with caplog.at_level(logging.WARNING):
        log_advice(settings)
    assert "https://" in caplog.text
    for quiet in ("http://127.0.0.1:8090", "http://localhost:8090", "https://c.example.com"):
        assert advice(load_settings(config(tmp_path, f'url = "{quiet}"\n'), environ={})) == []


def test_a_private_ca_is_a_setting(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    path = config(tmp_path, f'url = "https://c.example.com"\nca_file = "{ca}"\n')
    assert load_settings(path, environ={}).central.ca_file == ca
    missing = config(tmp_path, f'url = "https://c.example.com"\nca_file = "{ca}.gone"\n')
    with pytest.raises(SettingsError) as refused:
        load_settings(missing, environ={})
    assert "central.ca_file" in str(refused.value)
