"""paho's socket, read in large chunks and written once per event-loop turn.

paho reads a packet as a one-byte command, then its remaining length byte by byte, then its
body: three or more `recv` calls per packet, plus one that finds nothing at the end. It
writes each packet with its own `send`. A kiosk request and its reply are four packets each
way (PUBLISH and PUBACK both ways), so under load those system calls were most of the link's
CPU. Here `recv` takes what the kernel has (up to `READ_CHUNK`) and serves paho's small reads
from it, and `send` only appends to a buffer that `flush` writes in one call, once per turn
of the event loop.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
from typing import Any

# Larger than a burst of requests; a read never blocks, it takes what is there.
READ_CHUNK = 256 * 1024

_WOULD_BLOCK = (BlockingIOError, InterruptedError, ssl.SSLWantReadError, ssl.SSLWantWriteError)


class BufferedSocket:
    """A non-blocking socket (plain or TLS) with an input and an output buffer."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._in = bytearray()
        self._out = bytearray()

    # -- what paho calls ---------------------------------------------------------------

    def recv(self, bufsize: int) -> bytes:
        if not self._in:
            data = self.sock.recv(READ_CHUNK)  # BlockingIOError when there is nothing
            if not data:
                return b""  # the peer closed: paho sees the end of the connection
            self._in += data
        chunk = bytes(self._in[:bufsize])
        del self._in[:bufsize]
        return chunk

    def send(self, data: bytes | bytearray) -> int:
        self._out += data
        return len(data)

    def close(self) -> None:
        # paho closes right after "sending" DISCONNECT: it must still reach the broker, or
        # the broker takes the close for a lost connection and publishes the Will.
        self.flush()
        self.sock.close()

    def __getattr__(self, name: str) -> Any:
        # fileno, close, setblocking, pending, ...: the socket's own.
        return getattr(self.sock, name)

    # -- what the event loop calls ---------------------------------------------------

    def buffered(self) -> bool:
        """Whether input is waiting that the kernel will not signal again: bytes read
        ahead here, or decrypted bytes inside the TLS layer."""
        if self._in:
            return True
        return isinstance(self.sock, ssl.SSLSocket) and self.sock.pending() > 0

    def flush(self) -> bool:
        """Write what paho has sent; False if the kernel took only part (call again when
        the socket is writable). A broken connection drops the output and shuts the
        socket, so that the next read tells paho the connection is gone."""
        while self._out:
            try:
                written = self.sock.send(self._out)
            except _WOULD_BLOCK:
                return False
            except OSError:
                self._out.clear()
                with contextlib.suppress(OSError):  # already gone
                    self.sock.shutdown(socket.SHUT_RDWR)
                return True
            del self._out[:written]
        return True

    def pending_output(self) -> int:
        return len(self._out)
