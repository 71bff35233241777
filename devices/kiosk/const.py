"""Named thresholds of the kiosk link, each with the reason for its value."""

from __future__ import annotations

# The broker's max_packet_size in config/mosquitto is 16 KiB; the largest request is far
# below that, so anything bigger is refused before it is parsed.
MAX_PAYLOAD_BYTES = 16 * 1024

# QoS 1 for everything that changes or reads state; heartbeats are QoS 0 (a lost one is
# replaced by the next).
QOS_REQUEST = 1
QOS_REPLY = 1

# A reply nobody reads within this many seconds is useless to the kiosk's screen; it
# expires in the broker instead of piling up for an offline kiosk.
REPLY_EXPIRY_S = 30
# Commands such as "show this offer" are stale after this long.
COMMAND_EXPIRY_S = 20

# Stored replies are kept at least this long so a kiosk retry within a day is answered
# from the store rather than applied again.
REPLY_RETENTION_S = 2 * 86_400
# How often stored replies past their retention are deleted.
PRUNE_INTERVAL_S = 3600.0

# Events (heartbeats, command acks) come every 30 s or so per kiosk; more than a burst of
# 10 and one a second is a kiosk gone wrong. Events past this are dropped and counted.
EVENT_RATE_PER_S = 1.0
EVENT_BURST = 10
# Dead letters kept per kiosk: enough to see what a broken kiosk app sends, while a kiosk
# that floods bad messages cannot fill the disk (one wrote 6 MB/s without this). Past it
# the bad message is still answered and counted, and not written.
DEAD_LETTER_RATE_PER_S = 1.0
DEAD_LETTER_BURST = 20
