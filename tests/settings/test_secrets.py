"""The central token: from a file or the environment, and never shown anywhere."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.settings import SettingsError, load_settings

TOKEN = "tok-9f8e7d6c5b4a"  # noqa: S105 - a made-up token that must never be shown
BASE = """
[site]
mall_id = "demo-mall"
gateway_id = "gw-1"

[central]
url = "https://central.example.com"
"""


def config(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "mallgate.toml"
    path.write_text(BASE + extra, encoding="utf-8")
    return path


def shown(settings: object) -> str:
    dump = getattr(settings, "model_dump_json", lambda: "")()
    return f"{settings!r}\n{settings!s}\n{dump}"


def test_token_from_file_is_read_at_load_and_never_shown(tmp_path: Path) -> None:
    secret = tmp_path / "central.token"
    secret.write_text(f"{TOKEN}\n", encoding="utf-8")
    secret.chmod(0o600)

    settings = load_settings(config(tmp_path, f'token_file = "{secret}"\n'), environ={})

    assert settings.central.token is not None
    assert settings.central.token.get_secret_value() == TOKEN
    assert settings.central.token_file == secret
    assert TOKEN not in shown(settings)
    assert TOKEN not in shown(settings.central)


def test_token_written_in_the_file_is_never_shown(tmp_path: Path) -> None:
    settings = load_settings(config(tmp_path, f'token = "{TOKEN}"\n'), environ={})

    assert settings.central.token is not None
    assert settings.central.token.get_secret_value() == TOKEN
    assert TOKEN not in shown(settings)
    assert '"token":"**********"' in settings.model_dump_json()


def test_token_from_env_is_taken_as_written(tmp_path: Path) -> None:
    for raw in (TOKEN, "123456", "true", '"quoted"'):
        settings = load_settings(config(tmp_path), environ={"MALLGATE__CENTRAL__TOKEN": raw})

        assert settings.central.token is not None
        assert settings.central.token.get_secret_value() == raw
        if raw == TOKEN:
            assert TOKEN not in shown(settings)


def test_unreadable_or_empty_token_file_is_an_error(tmp_path: Path) -> None:
    empty = tmp_path / "empty.token"
    empty.write_text("\n", encoding="utf-8")
    empty.chmod(0o600)
    for token_file, problem in ((tmp_path / "absent.token", "cannot read the token file"),
                                (empty, "the token file is empty")):
        with pytest.raises(SettingsError) as caught:
            load_settings(config(tmp_path, f'token_file = "{token_file}"\n'), environ={})

        (issue,) = caught.value.issues
        assert issue.path == "central.token_file"
        assert issue.problem.startswith(problem)


def test_token_and_token_file_together_is_an_error_that_hides_the_token(
    tmp_path: Path,
) -> None:
    secret = tmp_path / "central.token"
    secret.write_text("from-file", encoding="utf-8")
    path = config(tmp_path, f'token_file = "{secret}"\n')

    with pytest.raises(SettingsError) as caught:
        load_settings(path, environ={"MALLGATE__CENTRAL__TOKEN": TOKEN})

    assert [i.path for i in caught.value.issues] == ["central.token"]
    assert TOKEN not in str(caught.value)
    assert TOKEN not in repr(caught.value)


def test_secrets_never_appear_in_errors(tmp_path: Path) -> None:
    """A bad token, a misspelt token key and a misspelt section all keep their values."""
    path = config(tmp_path, f"""
tokn = "{TOKEN}-a"
port = 1

[centrl]
token = "{TOKEN}-b"
""")
    environ = {"MALLGATE__CENTRAL__TOKEN__X": "1", "MALLGATE__CENTRAL__API_SECRET": TOKEN}

    with pytest.raises(SettingsError) as caught:
        load_settings(path, environ=environ)

    text = f"{caught.value}\n{caught.value!r}\n{caught.value.issues!r}"
    assert TOKEN not in text
    paths = {i.path for i in caught.value.issues}
    assert {"central.tokn", "central.port", "centrl", "central.api_secret"} <= paths
    assert "<redacted>" in text


def test_token_with_a_wrong_type_in_the_file_is_redacted(tmp_path: Path) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(config(tmp_path, "token = 987654321\n"), environ={})

    (issue,) = caught.value.issues
    assert (issue.path, issue.problem) == ("central.token", "wrong type (integer)")
    assert "987654321" not in str(caught.value)
