"""Kiosks over MQTT: the contract, the sans-io protocol, the service and the operations."""
