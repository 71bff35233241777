"""Child process of the kiosk crash test: a real gateway that SIGKILLs itself at one point.

Usage: python crash_child.py SETTINGS_JSON MODE

MODE `before-commit`: dies when a redeem request arrives, before anything is written.
MODE `before-puback`: dies when it is about to send a request's PUBACK, after the reply
and the points were committed (and the reply perhaps published).
MODE `serve`: serves normally. Prints `ready` once connected to the broker.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path
from typing import Any

from aiohttp import web

from devices.mqtt.transport import Inbound, MqttLink
from gateway.app import create_app
from gateway.app.keys import KIOSK
from gateway.operations.model import OperationRequest
from gateway.operations.service import Operations
from gateway.settings import Settings


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def arm(mode: str) -> None:
    if mode == "before-commit":
        handle = Operations.handle

        async def handle_then_die(self: Operations, request: OperationRequest) -> Any:
            if request.op == "redeem":
                die()
            return await handle(self, request)
        Operations.handle = handle_then_die  # type: ignore[method-assign]
    elif mode == "before-puback":
        ack = MqttLink.ack

        def ack_then_die(self: MqttLink, message: Inbound) -> None:
            if "/req/redeem" in message.topic:
                die()
            ack(self, message)
        MqttLink.ack = ack_then_die  # type: ignore[method-assign]


async def main(settings: Settings, mode: str) -> None:
    arm(mode)
    app = create_app(settings)
    runner = web.AppRunner(app)
    await runner.setup()
    await asyncio.wait_for(app[KIOSK].link.connected.wait(), 10)
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    await asyncio.sleep(60)  # bounded: the parent kills or stops us long before this
    await runner.cleanup()


if __name__ == "__main__":
    asyncio.run(main(Settings.model_validate_json(Path(sys.argv[1]).read_text()), sys.argv[2]))
