"""Every section of the configuration is parsed under the same rules (`SettingsModel`)."""

from __future__ import annotations

import importlib
import inspect

import pytest
from pydantic import BaseModel, ValidationError

from gateway.settings.base import SettingsModel
from gateway.settings.pos import PosPort

SECTIONS = ("ble", "kiosk", "model", "pos", "sync")


@pytest.mark.parametrize("section", SECTIONS)
def test_every_settings_model_derives_from_the_one_base(section: str) -> None:
    module = importlib.import_module(f"gateway.settings.{section}")
    models = [cls for _, cls in inspect.getmembers(module, inspect.isclass)
              if issubclass(cls, BaseModel) and cls.__module__ == module.__name__]
    assert models
    assert [m.__name__ for m in models if not issubclass(m, SettingsModel)] == []


def test_the_base_is_frozen_closed_strict_and_keeps_values_out_of_errors() -> None:
    with pytest.raises(ValidationError) as wrong:
        PosPort.model_validate({"path": "/dev/ttyS0", "store_id": "S01", "pos_id": 1,
                                "unknown": "secret-value"})
    kinds = {error["type"] for error in wrong.value.errors()}
    assert {"string_type", "extra_forbidden"} <= kinds
    assert "secret-value" not in str(wrong.value)
    port = PosPort.model_validate({"path": "/dev/ttyS0", "store_id": "S01", "pos_id": "P1"})
    with pytest.raises(ValidationError):
        port.path = "/dev/ttyS1"  # type: ignore[misc]
