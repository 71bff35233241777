"""The `[sync]` section: how the gateway pushes its outbox to central and pulls changes."""

from __future__ import annotations

from pydantic import Field, model_validator

from gateway.settings.base import SettingsModel


class SyncSettings(SettingsModel):
    """Two-way sync with central (needs `[central] url`): batches, long-poll, retries."""

    enabled: bool = Field(
        default=True,
        description="Sync with central when `[central] url` is set. Off: the gateway keeps "
        "everything in its outbox until sync is turned on.",
    )
    batch_max_events: int = Field(
        default=500, ge=1, le=1000,
        description="Most outbox events sent in one push request.",
    )
    batch_max_bytes: int = Field(
        default=1_048_576, ge=4096, le=1_900_000,
        description="Most bytes of one push request's body; halved for a while when "
        "central answers 413.",
    )
    page_limit: int = Field(
        default=500, ge=1, le=5000,
        description="Most changes asked for in one pull request.",
    )
    long_poll_s: int = Field(
        default=25, ge=0, le=30,
        description="How long central may hold a pull request while there is nothing new, "
        "in seconds (0 = poll).",
    )
    push_interval_s: float = Field(
        default=0.5, gt=0, le=60, allow_inf_nan=False,
        description="How often the pusher looks at the outbox when it is idle, in seconds.",
    )
    backoff_initial_s: float = Field(
        default=1.0, gt=0, le=60, allow_inf_nan=False,
        description="First retry delay after central failed, in seconds; doubles per "
        "failure (with full jitter) up to `backoff_max_s`.",
    )
    backoff_max_s: float = Field(
        default=60.0, gt=0, le=3600, allow_inf_nan=False,
        description="Longest retry delay, in seconds.",
    )
    heartbeat_s: float = Field(
        default=30.0, gt=0, le=3600, allow_inf_nan=False,
        description="How often the gateway reports its status (outbox depth, lag, clock) "
        "to central, in seconds.",
    )
    online_fresh_s: float = Field(
        default=45.0, gt=0, le=7200, allow_inf_nan=False,
        description="Central counts as online while it answered both a push (or heartbeat) "
        "and a pull within this many seconds; older answers mean offline, and kiosk "
        "redemptions keep to the offline allowance. Must be more than `heartbeat_s` and "
        "`long_poll_s`, which a healthy gateway waits between answers.",
    )

    @model_validator(mode="after")
    def _fresh_outlasts_the_waits(self) -> SyncSettings:
        # An idle gateway hears central once per heartbeat and once per long-poll: a bound
        # shorter than either would call a healthy central offline between two answers.
        if self.online_fresh_s <= max(self.heartbeat_s, self.long_poll_s):
            raise ValueError(
                f"online_fresh_s ({self.online_fresh_s:g}) must be more than heartbeat_s "
                f"({self.heartbeat_s:g}) and long_poll_s ({self.long_poll_s}): a healthy "
                "central would look offline between two answers")
        return self
