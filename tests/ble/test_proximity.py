"""Proximity: replayed RSSI traces give exactly the expected arrivals and exits."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devices.ble.proximity import (
    Arrival,
    Event,
    Exit,
    ProximityConfig,
    ProximityTracker,
    robust_rssi,
)
from tests.ble.traces import linear, noisy, steady
from tests.scale import examples

SEEDS = range(12)


def replay(tracker: ProximityTracker, trace: list[tuple[float, float]], *, member: str = "m1",
           zone: str = "entrance-a", tick: float = 1.0) -> list[Event]:
    """Feed a trace in time order, calling expire() every `tick` seconds as a service would."""
    events: list[Event] = []
    next_tick = trace[0][0] if trace else 0.0
    for at, rssi in sorted(trace):
        while next_tick <= at:
            events += tracker.expire(next_tick)
            next_tick += tick
        events += tracker.observe(member, zone, rssi, at)
    return events


def kinds(events: list[Event]) -> list[str]:
    return [e.reason if isinstance(e, Exit) else "arrival" for e in events]


def test_robust_rssi_ignores_outliers() -> None:
    assert robust_rssi([-60, -61, -59, -60, -95, -62, -58, -60]) == -60
    assert robust_rssi([-70]) == -70
    assert robust_rssi([-70, -80]) == -75
    with pytest.raises(ValueError, match="at least one"):
        robust_rssi([])


@given(st.lists(st.integers(-100, -30), min_size=1, max_size=60))
@settings(max_examples=examples(200), deadline=None)
def test_robust_rssi_stays_within_the_readings(values: list[int]) -> None:
    assert min(values) <= robust_rssi(values) <= max(values)


@pytest.mark.parametrize("seed", SEEDS)
def test_approach_and_linger_arrives_once_and_never_flaps(seed: int) -> None:
    # walks up from far away over 20 s, then stands at the kiosk for 30 minutes
    trace = list(noisy(linear(-95, -66, 20), start=1000, duration=1800, interval=1.0, seed=seed))
    tracker = ProximityTracker()
    events = replay(tracker, trace)
    assert kinds(events) == ["arrival"]
    arrival = events[0]
    assert isinstance(arrival, Arrival)
    assert 1010 <= arrival.at <= 1035
    assert tracker.present() == {("m1", "entrance-a")}


@pytest.mark.parametrize("seed", SEEDS)
def test_member_at_the_threshold_edge_does_not_flap(seed: int) -> None:
    # standing right at the enter threshold: noise crosses it both ways all the time
    trace = list(noisy(steady(-75), start=0, duration=1200, interval=0.5, seed=seed))
    events = replay(ProximityTracker(), trace)
    assert kinds(events) == ["arrival"]


@pytest.mark.parametrize("seed", SEEDS)
def test_walking_away_exits_once_for_weak_signal(seed: int) -> None:
    stay = noisy(steady(-65), start=0, duration=120, interval=1.0, seed=seed)
    leave = noisy(linear(-65, -100, 15), start=120, duration=60, interval=1.0, seed=seed + 100,
                  fade_rate=0.0)
    events = replay(ProximityTracker(), [*stay, *leave])
    assert kinds(events) == ["arrival", "weak_signal"]
    assert 125 <= events[1].at <= 180


@pytest.mark.parametrize("passes", [1, 2])
def test_a_passer_by_with_one_or_two_strong_sightings_never_arrives(passes: int) -> None:
    tracker = ProximityTracker()
    events = [e for i in range(passes) for e in tracker.observe("p", "entrance-a", -55, 100 + i)]
    events += tracker.expire(1000)
    assert events == []
    assert len(tracker) == 0  # forgotten


@pytest.mark.parametrize("seed", SEEDS)
def test_someone_walking_past_on_the_far_side_never_arrives(seed: int) -> None:
    # peak -80 dBm for a few seconds, then gone
    def profile(t: float) -> float:
        return -80 - abs(t - 4) * 4

    trace = list(noisy(profile, start=0, duration=8, interval=1.0, seed=seed, sigma=2.0,
                       fade_rate=0.0))
    assert replay(ProximityTracker(), trace) == []


def test_silence_exits_after_the_interval_scaled_timeout_and_not_before() -> None:
    tracker = ProximityTracker()
    # a card advertising every 5 s: 8 intervals = 40 s of silence before "gone"
    for i in range(6):
        tracker.observe("m1", "z", -60, 5.0 * i)
    assert tracker.present() == {("m1", "z")}
    assert tracker.absence_timeout("m1", "z") == 40
    assert tracker.expire(25 + 40) == []
    exits = tracker.expire(25 + 40.5)
    assert exits == [Exit("m1", "z", at=65.5, reason="absent", last_seen=25)]
    assert tracker.present() == set()


def test_absence_timeout_is_bounded_both_ways() -> None:
    tracker = ProximityTracker()
    for i in range(5):
        tracker.observe("fast", "z", -60, 0.1 * i)
        tracker.observe("slow", "z", -60, 60.0 * i)
    assert tracker.absence_timeout("fast", "z") == 30
    assert tracker.absence_timeout("slow", "z") == 180
    assert tracker.absence_timeout("nobody", "z") == 30


def test_a_late_sighting_after_the_timeout_exits_then_arrives_again() -> None:
    tracker = ProximityTracker()
    for i in range(5):
        tracker.observe("m1", "z", -60, float(i))
    events: list[Event] = []
    for i in range(3):  # no expire() in between: observe() notices the gap itself
        events += tracker.observe("m1", "z", -60, 500.0 + i)
    assert kinds(events) == ["absent", "arrival"]
    assert events[0].at == 500.0


def test_zones_are_independent_and_can_have_their_own_thresholds() -> None:
    tracker = ProximityTracker(zones={"store-7": ProximityConfig(enter_rssi_dbm=-60)})
    events: list[Event] = []
    for i in range(5):
        events += tracker.observe("m1", "entrance-a", -70, float(i))
        events += tracker.observe("m1", "store-7", -70, float(i))
    assert events == [Arrival("m1", "entrance-a", at=2.0, rssi=-70)]


def test_late_reports_from_a_remote_receiver_are_put_in_order() -> None:
    tracker = ProximityTracker()
    tracker.observe("m1", "z", -60, 10.0)
    tracker.observe("m1", "z", -60, 12.0)
    events = tracker.observe("m1", "z", -60, 11.0)
    assert events == [Arrival("m1", "z", at=12.0, rssi=-60)]


def test_bad_configs_are_refused() -> None:
    with pytest.raises(ValueError, match="sighting"):
        ProximityConfig(enter_min_sightings=0)
    with pytest.raises(ValueError, match="hysteresis"):
        ProximityConfig(exit_hysteresis_db=-1)
    with pytest.raises(ValueError, match="dwell"):
        ProximityConfig(enter_dwell_s=30, window_s=15)
    with pytest.raises(ValueError, match="absence"):
        ProximityConfig(absence_min_s=200)
    assert ProximityConfig().exit_rssi_dbm == -85


def test_memory_stays_bounded_for_a_phone_next_to_the_receiver() -> None:
    tracker = ProximityTracker()
    for i in range(5000):
        tracker.observe("m1", "z", -40, i * 0.01)
    track = tracker._tracks[("m1", "z")]
    assert len(track.samples) <= ProximityConfig().max_samples


sightings = st.lists(st.tuples(st.sampled_from(["m1", "m2"]), st.sampled_from(["a", "b"]),
                               st.integers(-100, -40), st.floats(0, 60)), max_size=120)


@given(sightings, st.booleans())
@settings(max_examples=examples(200), deadline=None)
def test_events_alternate_arrival_then_exit_per_pair(
        steps: list[tuple[str, str, int, float]], expire: bool) -> None:
    tracker = ProximityTracker()
    now = 0.0
    events: list[Event] = []
    for member, zone, rssi, gap in steps:
        now += gap
        if expire:
            events += tracker.expire(now)
        events += tracker.observe(member, zone, rssi, now)
    inside: set[tuple[str, str]] = set()
    for event in events:
        pair = (event.member_id, event.zone)
        if isinstance(event, Arrival):
            assert pair not in inside
            inside.add(pair)
        else:
            assert pair in inside
            inside.remove(pair)
    assert inside == tracker.present()


@given(st.lists(st.tuples(st.integers(-100, -30), st.floats(0, 30)), max_size=2))
@settings(max_examples=examples(100), deadline=None)
def test_two_sightings_never_arrive(steps: list[tuple[int, float]]) -> None:
    tracker = ProximityTracker()
    now = 0.0
    for rssi, gap in steps:
        now += gap
        assert tracker.observe("p", "z", rssi, now) == []
