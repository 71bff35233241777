"""POS terminals over serial: ESC/POS receipt capture and the framed and JSON-lines protocols."""
