"""`mallgate demo`: a whole mall on one machine, in one process and its children.

The reference central server with the demo members made through its API, the gateway
(broker, kiosks, BLE receivers, three POS lines, sync) and the POS, kiosk and BLE
simulators driving it, under one working directory. `run_demo` is the whole run; the
modules each own one piece: `layout` (paths and the gateway's settings), `central`,
`ptys`, one driver per simulator (`pos`, `kiosk`, `ble`), `gateway` (serving the app),
`tally` (the live line, the report and the loss check) and `mall` (the order of it all).
"""

from gateway.app.demo_mall.mall import DemoOptions, run_demo

__all__ = ["DemoOptions", "run_demo"]
