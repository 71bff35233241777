"""A demo broker as a child process: write its configuration, start it, wait until it
listens on 127.0.0.1, stop it. Each broker (mosquitto, rumqttd) says only how it is run."""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging
import signal
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import IO, ClassVar, Self

log = logging.getLogger(__name__)

# How long a freshly started broker may take to accept connections.
START_TIMEOUT_S = 10.0


class BrokerUnavailable(RuntimeError):
    """No broker could be started (none installed, or it failed to start)."""


class BrokerProcess(abc.ABC):
    """A broker child process on 127.0.0.1:`port`, stopped when the context closes."""

    name: ClassVar[str]
    config_name: ClassVar[str]
    log_name: ClassVar[str]
    # Keep a pipe on the child's stdin: a broker that exits when it closes dies with the
    # gateway instead of holding the port against the gateway's restart.
    stdin_pipe: ClassVar[bool] = False
    # Send the child's stderr to `log_name` (a broker without a log file of its own).
    stderr_to_log: ClassVar[bool] = False

    def __init__(self, port: int, data_dir: Path, config_text: str) -> None:
        self.port = port
        self.data_dir = data_dir
        self.config_text = config_text
        self._process: asyncio.subprocess.Process | None = None

    @abc.abstractmethod
    def argv(self, config: Path) -> list[str]:
        """The command line that starts this broker on `config`."""

    @property
    def log_path(self) -> Path:
        return self.data_dir / self.log_name

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    async def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        conf = self.data_dir / self.config_name
        conf.write_text(self.config_text, encoding="utf-8")
        with _stderr(self.log_path if self.stderr_to_log else None) as stderr:
            self._process = await asyncio.create_subprocess_exec(
                *self.argv(conf),
                stdin=asyncio.subprocess.PIPE if self.stdin_pipe else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL, stderr=stderr,
                # Its own session: a Ctrl-C in the terminal reaches the gateway alone, which
                # stops the broker after the parts that use it.
                start_new_session=True)
        await self._wait_listening()
        log.info("demo MQTT broker (%s, pid %s) on 127.0.0.1:%s", self.name, self.pid, self.port)

    async def _wait_listening(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + START_TIMEOUT_S
        while self._process is not None:
            if self._process.returncode is not None:
                code, self._process = self._process.returncode, None
                raise BrokerUnavailable(f"{self.name} exited with {code}; see {self.log_path}")
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", self.port)
            except OSError:
                if loop.time() > deadline:
                    await self.stop()
                    raise BrokerUnavailable(f"{self.name} did not start listening") from None
                await asyncio.sleep(0.05)
                continue
            writer.close()
            await writer.wait_closed()
            return

    async def stop(self, *, kill: bool = False) -> None:
        """SIGTERM (the broker may save its state) or SIGKILL (a crash)."""
        process, self._process = self._process, None
        if process is None or process.returncode is not None:
            return
        process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), 10)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
        finally:
            if process.stdin is not None:
                process.stdin.close()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.stop()


@contextlib.contextmanager
def _stderr(path: Path | None) -> Iterator[IO[bytes] | int]:
    """The child's stderr: its log file, or nowhere for a broker that keeps its own log."""
    if path is None:
        yield asyncio.subprocess.DEVNULL
        return
    with path.open("ab") as file:
        yield file
