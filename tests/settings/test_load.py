"""Loading a TOML file into settings: defaults, strictness, environment overrides, errors."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from pydantic import ValidationError

from gateway.settings import SettingIssue, Settings, SettingsError, load_settings

MINIMAL = """
[site]
mall_id = "demo-mall"
gateway_id = "gw-1"
"""


Write = Callable[[str], Path]


@pytest.fixture
def write(tmp_path: Path) -> Write:
    def _write(text: str) -> Path:
        path = tmp_path / "mallgate.toml"
        path.write_text(text, encoding="utf-8")
        return path

    return _write


def issues_of(path: Path, environ: dict[str, str] | None = None) -> dict[str, SettingIssue]:
    with pytest.raises(SettingsError) as caught:
        load_settings(path, environ=environ or {})
    return {issue.path: issue for issue in caught.value.issues}


def test_minimal_file_takes_every_default(write: Write) -> None:
    settings = load_settings(write(MINIMAL), environ={})

    assert settings.site.mall_id == "demo-mall"
    assert settings.store.path == Path("var/mallgate.db")
    assert (settings.store.batch_max, settings.store.batch_wait_ms) == (512, 0)
    assert (settings.http.host, settings.http.port) == ("127.0.0.1", 8080)
    assert settings.central.url is None
    assert settings.central.token is None
    assert settings.central.timeout_s == 10.0
    assert settings.central.verify_tls is True
    assert (settings.logging.level, settings.logging.format) == ("INFO", "console")
    assert [t.code for t in settings.loyalty.tiers.tiers] == ["normal", "silver", "gold",
                                                              "diamond"]


def test_settings_are_frozen(write: Write) -> None:
    settings = load_settings(write(MINIMAL), environ={})

    with pytest.raises(ValidationError):
        settings.http.port = 1  # type: ignore[misc]


def test_arrays_fill_tuple_fields_and_integers_fill_floats(write: Write) -> None:
    path = write(MINIMAL + """
[central]
url = "https://central.example.com/"
timeout_s = 3

[loyalty.expiry]
reminder_days = [14, 3, 1]

[[loyalty.earn.spend_bonuses]]
min_fen = 100000
bonus_points = 50
""")
    settings = load_settings(path, environ={})

    assert settings.central.url == "https://central.example.com"
    assert settings.central.timeout_s == 3.0
    assert settings.loyalty.expiry.reminder_days == (14, 3, 1)
    assert settings.loyalty.earn.spend_bonuses[0].bonus_points == 50


def test_env_values_are_toml_values_when_they_parse(write: Write) -> None:
    environ = {
        "MALLGATE__HTTP__PORT": "9000",
        "MALLGATE__CENTRAL__VERIFY_TLS": "false",
        "MALLGATE__CENTRAL__TIMEOUT_S": "2.5",
        "MALLGATE__LOYALTY__EARN__POINTS_PER_YUAN": "2",
        "MALLGATE__LOYALTY__EXPIRY__REMINDER_DAYS": "[1, 2]",
        "MALLGATE__LOYALTY__EARN__STORE_MULTIPLIER_PCT": "{ S0101 = 150 }",
        "MALLGATE__HTTP__HOST": "192.168.1.20",
        "MALLGATE__LOGGING__FORMAT": "json",
        "OTHER__HTTP__PORT": "1",
    }
    settings = load_settings(write(MINIMAL), environ=environ)

    assert settings.http.port == 9000
    assert settings.central.verify_tls is False
    assert settings.central.timeout_s == 2.5
    assert settings.loyalty.earn.points_per_yuan == 2
    assert settings.loyalty.expiry.reminder_days == (1, 2)
    assert settings.loyalty.earn.store_multiplier_pct == {"S0101": 150}
    assert settings.http.host == "192.168.1.20"
    assert settings.logging.format == "json"


def test_env_overrides_the_file_and_creates_missing_tables(write: Write) -> None:
    path = write(MINIMAL + '[http]\nport = 8081\n')
    settings = load_settings(path, environ={"MALLGATE__HTTP__PORT": "8082",
                                            "MALLGATE__STORE__BATCH_MAX": "64"})

    assert settings.http.port == 8082
    assert settings.store.batch_max == 64


def test_env_string_keys_take_the_value_as_written(write: Write) -> None:
    settings = load_settings(write(MINIMAL), environ={"MALLGATE__SITE__NAME": "2024",
                                                      "MALLGATE__SITE__GATEWAY_ID": "7"})

    assert settings.site.name == "2024"
    assert settings.site.gateway_id == "7"


def test_env_wrong_type_is_reported_with_its_variable(write: Write) -> None:
    issues = issues_of(write(MINIMAL), {"MALLGATE__HTTP__PORT": "eighty"})

    assert "wrong type (string)" in issues["http.port"].problem
    assert "MALLGATE__HTTP__PORT" in issues["http.port"].problem
    assert issues["http.port"].value == "eighty"


def test_env_unknown_key_and_key_inside_an_array(write: Write) -> None:
    issues = issues_of(write(MINIMAL), {"MALLGATE__HTTP__PROT": "1",
                                        "MALLGATE__LOYALTY__TIERS__TIERS__CODE": "x",
                                        "MALLGATE____PORT": "1"})

    assert issues["http.prot"].problem.startswith("unknown key")
    # No tiers in the file: the variable makes a table where an array of tables belongs.
    tiers = issues["loyalty.tiers.tiers"]
    assert (tiers.problem, tiers.allowed) == (
        "wrong type (table) (from MALLGATE__LOYALTY__TIERS__TIERS__CODE)", "array of tables")
    assert "malformed" in issues[""].problem


def test_every_error_is_reported_with_path_value_and_allowed(write: Write) -> None:
    path = write("""
[site]
mall_id = "Demo Mall"
gateway_id = "gw-1"

[http]
port = "8080"
prot = 9000

[store]
batch_wait_ms = 51

[logging]
level = "debug"

[[loyalty.tiers.tiers]]
code = "normal"
name = "N"
qualifying_fen = 0
discount_pct = 0
earn_multiplier_pct = 100
parking_hours = 0

[[loyalty.tiers.tiers]]
code = "silver"
name = "S"
qualifying_fen = -1
discount_pct = 5
earn_multiplier_pct = 110
parking_hours = 2
""")
    issues = issues_of(path)

    assert set(issues) == {"site.mall_id", "http.port", "http.prot", "store.batch_wait_ms",
                           "logging.level", "loyalty.tiers.tiers.1.qualifying_fen"}
    port = issues["http.port"]
    assert (port.value, port.problem) == ("8080", "wrong type (string)")
    assert port.allowed == "integer, 1..65535"
    assert issues["http.prot"].allowed == (
        "keys of [http]: host, port, ops_token, max_connections, header_timeout_s, tokens")
    assert issues["store.batch_wait_ms"].value == 51
    assert "0..50" in issues["store.batch_wait_ms"].allowed
    assert '"DEBUG"' in issues["logging.level"].allowed
    assert issues["loyalty.tiers.tiers.1.qualifying_fen"].allowed == "integer, >= 0"
    assert str(port) == 'http.port = "8080": wrong type (string); allowed: integer, 1..65535'


def test_env_cannot_set_a_key_inside_an_array_of_tables(write: Write) -> None:
    path = write(MINIMAL + "[[loyalty.earn.spend_bonuses]]\nmin_fen = 1\n")
    issues = issues_of(path, {"MALLGATE__LOYALTY__EARN__SPEND_BONUSES__MIN_FEN": "2"})

    assert issues["loyalty.earn.spend_bonuses"].allowed == (
        "override loyalty.earn.spend_bonuses as a whole")


def test_missing_required_keys_and_unknown_sections(write: Write) -> None:
    issues = issues_of(write('[site]\nname = "x"\n[htp]\nport = 1\n'))

    assert issues["site.mall_id"].problem == "required key is missing"
    assert "matching" in issues["site.mall_id"].allowed
    assert "site.mall_id:" in str(issues["site.mall_id"])
    assert "http" in issues["htp"].allowed
    assert "site.gateway_id" in issues


def test_cross_field_rule_of_the_loyalty_rules_is_reported(write: Write) -> None:
    path = write(MINIMAL + "[loyalty.tiers]\ntiers = []\n")
    issues = issues_of(path)

    assert issues["loyalty.tiers.tiers"].problem == "at least one tier is required"


def test_bad_url_float_and_date(write: Write) -> None:
    path = write(MINIMAL + '[central]\nurl = "ftp://x"\ntimeout_s = inf\n'
                           "[loyalty]\nversion = 2024-05-01\n")
    issues = issues_of(path)

    assert "https?" in issues["central.url"].allowed
    assert "finite" in issues["central.timeout_s"].problem
    assert issues["loyalty.version"].problem == "wrong type (date/time)"
    assert len(issues) == 3


def test_toml_syntax_error_names_line_and_column(write: Write) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(write('[site]\nmall_id = "x"\ngateway_id = \n'), environ={})

    (issue,) = caught.value.issues
    assert "line 3, column 14" in issue.problem


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="file not found"):
        load_settings(tmp_path / "nope.toml", environ={})


def test_os_environ_is_the_default(write: Write, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MALLGATE__HTTP__PORT", "9100")

    assert load_settings(write(MINIMAL)).http.port == 9100


def test_settings_class_is_reexported() -> None:
    assert Settings.model_config["frozen"] is True
