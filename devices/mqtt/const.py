"""Named thresholds of the gateway's MQTT link, each with the reason for its value."""

from __future__ import annotations

# Retained statuses (birth and Will) are QoS 1: a lost one would leave a stale state.
QOS_STATUS = 1

# The gateway's persistent session outlives a day of broker-side queueing, so a gateway
# restart or a long upgrade loses no queued request.
GATEWAY_SESSION_EXPIRY_S = 86_400
# Keepalive 30 s: the broker fires the Will about 1.5 x keepalive after a power cut.
GATEWAY_KEEPALIVE_S = 30
# How many unacknowledged QoS 1 messages the broker may hand the gateway at once; with
# manual acks this bounds the gateway's in-memory backlog.
RECEIVE_MAXIMUM = 256

# Reconnect backoff: start fast (a broker restart takes about a second), cap low enough
# that kiosks are served soon after the broker returns; full jitter spreads reconnects.
RECONNECT_MIN_S = 0.5
RECONNECT_MAX_S = 30.0

# How often paho's housekeeping (keepalive pings, retries) runs when driven from asyncio.
MISC_INTERVAL_S = 1.0

# DISCONNECT reason "Session taken over": another client connected with our client id.
# Reconnecting would take it back and the two would evict each other for ever.
SESSION_TAKEN_OVER = 0x8E
# Brokers that close the old connection without that DISCONNECT (mosquitto 2.0.11 does):
# the broker closing accepted connections this many times in a row, each within this
# many seconds of its CONNACK, is two clients with one id evicting each other. A broker
# restart or a flaky network fails connects instead, or keeps connections longer.
TAKEOVER_DROPS = 3
TAKEOVER_SHORT_S = 5.0
