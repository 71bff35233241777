"""Typed, frozen settings of the gateway, read once at start from one TOML file."""

from gateway.settings.load import SettingIssue, SettingsError, load_settings
from gateway.settings.model import Settings

__all__ = ["SettingIssue", "Settings", "SettingsError", "load_settings"]
