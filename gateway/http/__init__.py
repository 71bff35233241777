"""The gateway's local HTTP API."""
