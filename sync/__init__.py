"""Two-way sync between the gateway and central: outbox pusher, change-feed puller, resync."""
