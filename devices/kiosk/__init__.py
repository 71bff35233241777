"""Kiosks over MQTT: the contract, the sans-io protocol, the paho adapter and the operations."""
