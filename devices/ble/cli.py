"""`mallgate sim ble`: remote BLE receivers hearing demo members walk through the mall."""

from __future__ import annotations

import asyncio
import time
import uuid

import click

from devices.ble.demo import DEMO_MALL_UUID, DEMO_RECEIVERS, demo_keys
from devices.ble.remote import ReceiverTopics
from devices.ble.scenario import Scenario, ScenarioConfig, SimReceiver
from devices.ble.sim import PublishStats, progress_line, publish_scenario, summary
from gateway.progress import progress_option, reporting


def _receiver(value: str) -> SimReceiver:
    rid, sep, zone = value.partition("=")
    if not sep or not zone:
        raise click.BadParameter(f"{value!r}: want RID=ZONE", param_hint="--receiver")
    try:
        ReceiverTopics("x").receiver(rid)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--receiver") from None
    return SimReceiver(rid, zone)


@click.command("ble")
@click.option("--host", default="127.0.0.1", show_default=True, help="MQTT broker host.")
@click.option("--port", default=11883, show_default=True, type=click.IntRange(1, 65535),
              help="MQTT broker port (the demo gateway's embedded broker by default).")
@click.option("--username", default=None, help="Broker login, when the broker wants one.")
@click.option("--password", default=None, envvar="MALLGATE_SIM_MQTT_PASSWORD",
              help="Broker password (or MALLGATE_SIM_MQTT_PASSWORD).")
@click.option("--site", default="demo-mall", show_default=True,
              help="The mall id in the topic tree ([site] mall_id).")
@click.option("--receiver", "receivers", multiple=True, metavar="RID=ZONE",
              help="A receiver and the zone it covers; repeat it. Default: the demo layout "
                   "(" + ", ".join(f"{r}={z}" for r, z in DEMO_RECEIVERS.items()) + ").")
@click.option("--members", default=20, show_default=True, type=click.IntRange(0, 100_000),
              help="Visitors include demo members 1..N (m-demo-0001...) with their demo keys.")
@click.option("--mall-uuid", default=str(DEMO_MALL_UUID), show_default=True,
              help="The iBeacon UUID iPhones send their member token under.")
@click.option("--rate", default=15.0, show_default=True, type=click.FloatRange(min=0.01),
              help="Visitors arriving per minute.")
@click.option("--duration", default=120.0, show_default=True, type=click.FloatRange(min=1),
              help="Seconds to run; visits are planned to end inside it.")
@click.option("--count", default=None, type=click.IntRange(1),
              help="Instead of --duration: this many visitors, until the last has left.")
@click.option("--seed", default=1, show_default=True, type=int)
@click.option("--connect-timeout", default=10.0, show_default=True,
              type=click.FloatRange(min=0.1), help="Seconds to wait for the broker.")
@progress_option
def sim_ble(*, host: str, port: int, username: str | None, password: str | None, site: str,
            receivers: tuple[str, ...], members: int, mall_uuid: str, rate: float,
            duration: float, count: int | None, seed: int, connect_timeout: float,
            progress_every: float) -> None:
    """Remote BLE receivers publishing what they hear of members walking through the mall.

    Demo members (half Eddystone-EID, half the iBeacon token) and strangers linger in some
    zones and walk past others; each receiver batches its sightings every 200-500 ms on
    lty/v1/SITE/receiver/RID/adv, as an ESP32 node does. Prints, per member, the zones it
    lingered in: the gateway should greet exactly those. While it runs, a progress line
    (batches and adverts published so far) goes to stderr every --progress-every seconds.
    """
    try:
        ReceiverTopics(site)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--site") from None
    try:
        the_uuid = uuid.UUID(mall_uuid)
    except ValueError:
        raise click.BadParameter(f"{mall_uuid!r} is not a UUID",
                                 param_hint="--mall-uuid") from None
    layout = ([_receiver(value) for value in receivers] if receivers
              else [SimReceiver(rid, zone) for rid, zone in DEMO_RECEIVERS.items()])
    try:
        config = ScenarioConfig(
            receivers=tuple(layout), members=tuple(demo_keys(members)), mall_uuid=the_uuid,
            rate_per_min=rate, duration_s=None if count else duration, count=count)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    scenario = Scenario(config, seed=seed, start=time.time())
    stats = PublishStats()

    def show() -> None:
        click.echo(progress_line(scenario, stats), err=True)

    async def publish() -> None:
        async with reporting(progress_every, show):
            await publish_scenario(scenario, host=host, port=port, site=site,
                                   username=username, password=password, stats=stats,
                                   connect_timeout_s=connect_timeout)

    try:
        asyncio.run(publish())
    except ConnectionError as exc:
        raise click.ClickException(str(exc)) from None
    except KeyboardInterrupt:
        click.echo("interrupted")
    for line in summary(scenario, stats):
        click.echo(line)
