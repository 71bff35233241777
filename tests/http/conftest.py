"""An app with one token of each role, on a temporary store."""

from __future__ import annotations

import pytest

from gateway.http.tokens import token_hash
from gateway.settings import Settings
from gateway.settings.model import HttpToken

TOKENS = {"ops": "ops-token-for-tests", "staff": "staff-token-for-tests",
          "pos": "pos-token-for-tests"}


def bearer(role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[role]}"}


def with_tokens(settings: Settings) -> Settings:
    tokens = tuple(HttpToken(name=f"{role}-1", role=role,  # type: ignore[arg-type]
                             sha256=token_hash(token)) for role, token in TOKENS.items())
    return settings.model_copy(update={"http": settings.http.model_copy(
        update={"tokens": tokens})})


@pytest.fixture
def api_settings(gateway_settings: Settings) -> Settings:
    return with_tokens(gateway_settings)
