"""The composition root: the only place that imports devices, sync and the central server.

`create_app(settings)` builds the aiohttp application with every part the settings enable;
`run(settings)` serves it until a signal stops it.
"""

from gateway.app.factory import GIL_SWITCH_INTERVAL_S, create_app, run

__all__ = ["GIL_SWITCH_INTERVAL_S", "create_app", "run"]
