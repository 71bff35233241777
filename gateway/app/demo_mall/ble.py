"""The demo's BLE receivers: `devices.ble.sim` walking demo members and strangers past the
three demo receivers, until told to stop."""

from __future__ import annotations

import asyncio
import time

from devices.ble.demo import DEMO_MALL_UUID, DEMO_RECEIVERS, demo_keys
from devices.ble.sim import PublishStats, Scenario, ScenarioConfig, SimReceiver, publish_scenario

# Visits are planned lazily, so a horizon far beyond any demo run costs nothing.
HORIZON_S = 7 * 86_400.0


async def walk_members(*, host: str, port: int, site: str, members: int,
                       rate_per_min: float, stats: PublishStats, stop: asyncio.Event,
                       seed: int = 1) -> None:
    config = ScenarioConfig(
        receivers=tuple(SimReceiver(rid, zone) for rid, zone in DEMO_RECEIVERS.items()),
        members=tuple(demo_keys(members)), mall_uuid=DEMO_MALL_UUID,
        rate_per_min=rate_per_min, duration_s=HORIZON_S)
    # Scenario time is wall time: the gateway stamps what it hears with its own clock.
    scenario = Scenario(config, seed=seed, start=time.time())
    publishing = asyncio.create_task(
        publish_scenario(scenario, host=host, port=port, site=site, stats=stats),
        name="demo-ble-receivers")
    stopping = asyncio.create_task(stop.wait(), name="demo-ble-stop")
    try:
        await asyncio.wait({publishing, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if publishing.done():
            publishing.result()  # a receiver that could not connect: raise it
    finally:
        for task in (publishing, stopping):
            task.cancel()
        await asyncio.gather(publishing, stopping, return_exceptions=True)
