"""The sync mode on its own: the table of changes, and online read from fresh evidence."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from gateway.settings.sync import SyncSettings
from sync.mode import TRANSITIONS, Direction, IllegalTransition, Mode, SyncMode

T0 = datetime(2026, 5, 1, 4, tzinfo=UTC)
FRESH_S = 45.0


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def in_mode(mode: Mode) -> SyncMode:
    """A state that reached `mode` through allowed changes."""
    state = SyncMode(FRESH_S)
    if mode is not Mode.STOPPED:
        state.move(Mode.STARTING, T0)
    if mode is Mode.AUTH_FAILED:
        state.move(Mode.AUTH_FAILED, T0)
    elif mode not in {Mode.STOPPED, Mode.STARTING}:
        state.move(mode, T0)
    assert state.mode is mode
    return state


def answered_both(state: SyncMode, now: datetime) -> None:
    state.answered(Direction.PUSH, now)
    state.answered(Direction.PULL, now)


def test_every_mode_has_its_row_in_the_table() -> None:
    assert set(TRANSITIONS) == set(Mode)


@pytest.mark.parametrize(("old", "new"), [
    (old, new) for old, new in itertools.product(Mode, Mode)
    if old is not new and new not in TRANSITIONS[old]])
def test_a_change_not_in_the_table_raises(old: Mode, new: Mode) -> None:
    state = in_mode(old)
    with pytest.raises(IllegalTransition) as caught:
        state.move(new, at(1))
    assert (caught.value.old, caught.value.new) == (old, new)
    assert state.mode is old  # unchanged


@pytest.mark.parametrize(("old", "new"), [
    (old, new) for old in Mode for new in TRANSITIONS[old]])
def test_a_change_in_the_table_is_recorded_with_its_time(old: Mode, new: Mode) -> None:
    state = in_mode(old)
    change = state.move(new, at(7), "why")
    assert change is not None and (change.old, change.new, change.at) == (old, new, at(7))
    assert (state.mode, state.since, state.last_error) == (new, at(7), "why")


def test_staying_in_a_mode_is_no_change_but_keeps_the_error() -> None:
    state = in_mode(Mode.OFFLINE)
    assert state.move(Mode.OFFLINE, at(5), "still down") is None
    assert (state.since, state.last_error) == (T0, "still down")


def test_online_needs_fresh_answers_both_ways() -> None:
    state = in_mode(Mode.STARTING)
    state.answered(Direction.PULL, at(0))
    assert state.due(at(1)) is None and not state.online(at(1))
    state.answered(Direction.PUSH, at(1))
    assert state.due(at(1)) == (Mode.ONLINE, None)
    state.move(Mode.ONLINE, at(1))
    assert state.online(at(1)) and state.online(at(FRESH_S))
    assert not state.online(at(FRESH_S + 0.001))  # older than the bound: no one has to say
    due = state.due(at(FRESH_S + 1))
    assert due is not None and due[0] is Mode.OFFLINE and "pull" in str(due[1])


def test_a_failure_one_way_outweighs_an_answer_the_other_way() -> None:
    state = in_mode(Mode.STARTING)
    answered_both(state, at(0))
    state.move(Mode.ONLINE, at(0))
    state.failed(Direction.PULL)
    assert state.after_failure(refused=False) is Mode.OFFLINE
    state.move(Mode.OFFLINE, at(1))
    state.answered(Direction.PUSH, at(2))  # a heartbeat goes through; pulls still fail
    assert state.due(at(2)) is None and not state.online(at(2))
    state.answered(Direction.PULL, at(3))
    assert state.due(at(3)) == (Mode.ONLINE, None)
    change = state.move(Mode.ONLINE, at(3))
    assert change is not None and change.outage_s == 2.0


def test_a_clock_stepped_back_does_not_keep_old_answers_fresh() -> None:
    state = in_mode(Mode.STARTING)
    answered_both(state, at(100))
    state.move(Mode.ONLINE, at(100))
    assert not state.online(at(40))


def test_starting_turns_offline_when_central_stays_silent_past_the_bound() -> None:
    state = in_mode(Mode.STARTING)
    assert state.due(at(FRESH_S)) is None
    due = state.due(at(FRESH_S + 1))
    assert due is not None and due[0] is Mode.OFFLINE


def test_a_refused_token_stays_until_central_answers_both_ways() -> None:
    state = in_mode(Mode.STARTING)
    assert state.after_failure(refused=True) is Mode.AUTH_FAILED
    state.move(Mode.AUTH_FAILED, at(1))
    assert state.after_failure(refused=False) is None  # a network error says nothing of it
    assert state.due(at(FRESH_S * 2)) is None
    answered_both(state, at(60))
    assert state.due(at(60)) == (Mode.ONLINE, None)


def test_a_resync_keeps_its_mode_until_it_ends() -> None:
    state = in_mode(Mode.STARTING)
    state.answered(Direction.PULL, at(0))
    state.move(Mode.RESYNCING, at(0))
    assert state.due(at(FRESH_S * 3)) is None  # a long snapshot is not silence
    state.answered(Direction.PULL, at(200))
    due = state.due(at(200), resynced=True)
    assert due is not None and due[0] is Mode.OFFLINE and "push" in str(due[1])
    state.answered(Direction.PUSH, at(200))
    assert state.due(at(200), resynced=True) == (Mode.ONLINE, None)


def test_stopped_vouches_for_nothing() -> None:
    state = in_mode(Mode.STARTING)
    answered_both(state, at(0))
    state.move(Mode.ONLINE, at(0))
    state.move(Mode.STOPPED, at(1))
    assert not state.online(at(1))
    assert state.due(at(1)) is None and state.after_failure(refused=False) is None
    state.move(Mode.STARTING, at(2))
    assert state.due(at(2)) is None  # answers from before the stop do not count


def test_the_bound_must_outlast_the_heartbeat_and_the_long_poll() -> None:
    with pytest.raises(ValidationError, match="online_fresh_s"):
        SyncSettings(heartbeat_s=60)
    with pytest.raises(ValidationError, match="online_fresh_s"):
        SyncSettings(long_poll_s=30, online_fresh_s=30)
    assert SyncSettings(heartbeat_s=60, online_fresh_s=90).online_fresh_s == 90
