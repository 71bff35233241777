"""The one base of every settings model, so each section is parsed under the same rules."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class SettingsModel(BaseModel):
    """Frozen, strict, closed: an unknown key or a wrong type is an error, not a guess.

    Values never appear in validation errors: a misplaced secret must not reach a log.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True, hide_input_in_errors=True)
