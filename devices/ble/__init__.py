"""BLE proximity: beacon frames, rotating member ids, and arrival/exit per member and zone."""
