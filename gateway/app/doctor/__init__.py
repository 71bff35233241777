"""`mallgate doctor`: is this machine ready to run the gateway its configuration describes?

It lives in the composition root because it checks devices (serial ports, BLE adapters,
the broker) and central, which the core may not import.
"""
