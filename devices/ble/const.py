"""Named thresholds of BLE proximity, each with the reason for its value."""

from __future__ import annotations

# --- frames -----------------------------------------------------------------------------

# Apple's Bluetooth SIG company id; iBeacon is only ever sent under it.
APPLE_COMPANY_ID = 0x004C
# bleak keys service data by the full 128-bit UUID; Eddystone's 16-bit UUID is 0xFEAA.
EDDYSTONE_SERVICE_UUID = "0000feaa-0000-1000-8000-00805f9b34fb"
# Eddystone ranging power is measured at 0 m; iBeacon and AltBeacon quote 1 m. Free-space
# loss from 0 m to 1 m is taken as 41 dB, the figure the Eddystone spec and ESPresense use,
# so every frame reports a comparable "power at 1 m".
EDDYSTONE_0M_TO_1M_DB = -41

# --- Eddystone-EID ----------------------------------------------------------------------

# New id every 2**10 s (about 17 minutes): the spec's example and what Eddystone beacons
# ship with; long enough that a visit rarely spans more than two ids, short enough that a
# passer-by cannot follow a member around the mall for hours.
DEFAULT_ROTATION_EXPONENT = 10
# The spec allows exponents 0..15.
MAX_ROTATION_EXPONENT = 15
# The resolver keeps ids for the current window and one on each side: a member's phone
# clock may be a little ahead or behind ours, and a member seen just before a turn must
# still resolve just after it.
RESOLVER_WINDOW_MARGIN = 1
# Computing an EID costs one AES key setup per member, which dominates a window turn for
# 200,000 members; one setup yields the next 8 windows' ids (64 bytes kept per member), so
# only one turn in 8 touches AES at all.
EID_LOOKAHEAD_WINDOWS = 8
# The Eddystone counter is 32 bits of seconds.
EID_COUNTER_MODULUS = 2**32

# --- proximity --------------------------------------------------------------------------

# A phone in a pocket at 2-3 m from a receiver reads about -70 dBm; a passer-by on the far
# side of a mall corridor reads -80 or weaker. Installers tune this per zone.
ENTER_RSSI_DBM = -75.0
# Exit only once the smoothed signal is 10 dB under the enter threshold (ESPresense uses
# the same gap): body shadowing alone swings a standing member by 5-8 dB, and an exit
# threshold inside that swing makes a member who stands still flap in and out.
EXIT_HYSTERESIS_DB = 10.0
# A member must be heard above the enter threshold this many times ...
ENTER_MIN_SIGHTINGS = 3
# ... within this many seconds. Phones advertise every 100 ms to 1 s, but scanners
# de-duplicate and miss adverts; 3 strong sightings in 10 s is a person who stopped or
# walks slowly through the door, 1 or 2 is someone walking past.
ENTER_DWELL_S = 10.0
# The median / interquartile filter looks back this far: long enough to hold 10+ readings
# at typical scan rates (ESPresense's adaptive filter uses 15 s with at least 10 readings),
# short enough that a member walking away shows within seconds.
SMOOTHING_WINDOW_S = 15.0
# Readings outside [Q1 - k*IQR, Q3 + k*IQR] are reflections or body-blocked outliers
# (Tukey's fences with the usual k).
IQR_FENCE_K = 1.5
# An exit for weak signal needs this many readings in the window, so one deep fade
# right after arrival cannot end a visit.
EXIT_MIN_SIGHTINGS = 3
# While a member is inside, the smoothed level is re-checked for an exit at most this
# often: a phone next to a receiver can be heard 10 times a second, and an exit reported
# a second late changes nothing for a visit.
EXIT_CHECK_INTERVAL_S = 1.0
# A member counts as gone after this many observed advertising intervals of silence ...
ABSENCE_INTERVALS = 8.0
# ... but never sooner than this (scanners pause, BlueZ de-duplicates unchanged adverts)
ABSENCE_MIN_S = 30.0
# ... and never later than this (a phone that stops advertising is gone; BlueZ itself
# forgets an idle device after about 180 s).
ABSENCE_MAX_S = 180.0
# The advertising interval is the median of the gaps between this many recent sightings:
# a median ignores the odd missed advert and the odd burst.
INTERVAL_SAMPLES = 16
# The most readings kept per (member, zone): bounds memory for a phone advertising at
# 10 Hz next to a receiver (150 readings in a 15 s window).
MAX_SAMPLES = 256

# --- local scanner --------------------------------------------------------------------

# A scanner that cannot start (adapter gone, bluetoothd restarting) is retried after 1 s,
# doubling up to 30 s: bluetoothd restarts in a second or two, a USB adapter re-plugged by
# hand takes longer, and 30 s lost at a mall entrance is a handful of sightings.
SCANNER_RETRY_FIRST_S = 1.0
SCANNER_RETRY_MAX_S = 30.0
# Each wait has full jitter (`gateway.backoff`) so several adapters do not retry in step.
# A running scanner asks bluetoothd for its adapter this often: signals tell of a removed
# adapter or a restarted daemon at once, this catches what no signal announced (a daemon
# that hung).
SCANNER_PROBE_INTERVAL_S = 10.0
# One D-Bus call to bluetoothd (start, stop, probe) gets this long before it counts as
# failed; a healthy daemon answers in milliseconds.
SCANNER_CALL_TIMEOUT_S = 10.0
# A raising advert callback is logged with its traceback at most this often (each one is
# counted): a bug hit by every advert must not flood the log at the advert rate.
SCANNER_CALLBACK_LOG_INTERVAL_S = 60.0

# --- remote receivers ---------------------------------------------------------------------

# An ESP32 receiver sends a batch every 200-500 ms; 50 a second (a burst of 100) leaves ample
# room and caps what one receiver gone wrong costs the gateway at a few percent of a core.
# Batches past it are dropped and counted: sightings may be sampled, presence survives it.
RECEIVER_BATCHES_PER_S = 50.0
RECEIVER_BATCH_BURST = 100
# Batches of one receiver waiting to be handled; past this (the gateway is behind) new
# batches are dropped and counted rather than queued, so a flood never builds a backlog
# that kiosk requests would wait behind.
RECEIVER_BACKLOG = 32
