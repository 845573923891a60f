"""A lean Socket.IO v5 / Engine.IO v4 client over WebSocket, for load generation.

python-socketio's asyncio client (over aiohttp) spends about 85 µs of CPU on every packet it
receives; a load generator built on it saturates before the server does. This client does
only what a chat load test needs, by hand:

- the WebSocket handshake (HTTP/1.1 upgrade with the session cookie and an Origin, as a
  browser sends them), then Engine.IO's open packet and the Socket.IO `CONNECT` of the
  default namespace; a `connect_error` is raised as `Refused`;
- frames read from a non-blocking socket in an epoll loop (`Loop`), one per process: the
  server's frames are unmasked, so a received event is a slice of the read buffer. Frames
  split over reads and fragmented messages are reassembled; permessage-deflate is used
  when asked for and the server accepts it (nginx strips it by default);
- Engine.IO pings answered; events (`42[...]`) handed to one callback as raw bytes (the
  caller parses only what it needs: no JSON for the hot path); acks (`43<n>[...]`) decoded
  with json and passed to the callback given with `emit`;
- frames the client sends are masked with a random key, as RFC 6455 requires.

Setup (`connect`, `call`) is blocking; once every socket is connected and joined, `Loop`
serves them all without threads. Nothing here knows about flask-chat beyond the protocol.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import select
import socket
import struct
import time
import zlib
from collections.abc import Callable
from urllib.parse import urlsplit

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0, 1, 2, 8, 9, 10
# small: with a 256 KiB buffer per read, bench/recv_floor.py measured ~20 µs more CPU per read
# (likely the allocator: a fresh 256 KiB bytes object per read, shrunk to the frame after)
READ_SIZE = 16384
# Linux: the kernel's receive time of what a read returns, as a (sec, nsec) timespec
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
ANCILLARY_SIZE = socket.CMSG_SPACE(16)
_TIMESPEC = struct.Struct("@qq")
# a wait that returns this many ready sockets means the loop is behind: no nap
SATURATED = 64
DEFLATE_TAIL = b"\x00\x00\xff\xff"


class Refused(ConnectionError):
    """The server refused the connection (HTTP status or Socket.IO connect_error)."""


class Closed(ConnectionError):
    """The connection closed."""


def _mask(payload: bytes, key: bytes) -> bytes:
    # XOR the whole payload as one big integer: no per-byte Python loop
    n = len(payload)
    if n == 0:
        return payload
    repeated = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(repeated, "big")).to_bytes(n, "big")


def frame(opcode: int, payload: bytes) -> bytes:
    """One final, masked client frame."""
    n = len(payload)
    if n < 126:
        head = bytes((0x80 | opcode, 0x80 | n))
    elif n < 65536:
        head = bytes((0x80 | opcode, 0x80 | 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((0x80 | opcode, 0x80 | 127)) + n.to_bytes(8, "big")
    key = os.urandom(4)
    return head + key + _mask(payload, key)


class LeanSocket:
    """One Socket.IO connection (default namespace) over a raw WebSocket.

    `on_event(payload)` gets every event packet as the bytes after `42` (a JSON array
    `["name", data]`). Call `connect()` first; `call()` for a blocking request/ack during
    setup; `emit()` with a callback once the socket is served by a `Loop`.
    """

    def __init__(self, on_event: Callable[[bytes], None] | None = None):
        self.on_event = on_event or (lambda payload: None)
        self.sock: socket.socket | None = None
        self.sid: str | None = None
        self.closed = False
        self._buf = b""
        self._fragments: list[bytes] = []
        self._fragment_compressed = False
        self._inflate = None  # zlib decompressor when permessage-deflate was negotiated
        self._inflate_reset = False  # server_no_context_takeover
        self._acks: dict[int, Callable[[object], None]] = {}
        self._next_ack = 0
        self._out = b""  # bytes the kernel did not take yet (non-blocking mode)
        self._loop: Loop | None = None
        self._connected_ns = False
        self._connect_error: object = None
        # when the bytes being handled arrived: the kernel's timestamp under a Loop
        self.received_ns = 0

    # -- setup (blocking) --------------------------------------------------------------------

    def connect(
        self,
        url: str,
        cookie: str = "",
        origin: str | None = None,
        query: str = "",
        offer_deflate: bool = False,
        timeout: float = 10,
    ) -> LeanSocket:
        """Open the WebSocket at `url`'s host, then Engine.IO and Socket.IO's CONNECT.

        `origin`: the Origin header (default: the URL's own scheme://host, as a page of the
        site sends it). `query`: extra query parameters, e.g. `affinity=...`.
        """
        parts = urlsplit(url)
        host, port = parts.hostname or "127.0.0.1", parts.port or 80
        origin = f"{parts.scheme}://{parts.netloc}" if origin is None else origin
        path = f"/socket.io/?EIO=4&transport=websocket{'&' + query if query else ''}"
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [
            f"GET {path} HTTP/1.1",
            f"Host: {parts.netloc}",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {key}",
            "Sec-WebSocket-Version: 13",
            "User-Agent: flask-chat-bench",
        ]
        if origin:
            lines.append(f"Origin: {origin}")
        if cookie:
            lines.append(f"Cookie: {cookie}")
        if offer_deflate:
            lines.append("Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits")
        request = ("\r\n".join(lines) + "\r\n\r\n").encode()

        sock = socket.create_connection((host, port), timeout=timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = sock
        deadline = time.monotonic() + timeout
        try:
            sock.sendall(request)
            head = b""
            while b"\r\n\r\n" not in head:
                if len(head) > 65536 or time.monotonic() > deadline:
                    raise Refused("no HTTP answer to the WebSocket handshake")
                chunk = sock.recv(4096)
                if not chunk:
                    raise Refused("closed during the WebSocket handshake")
                head += chunk
            head, self._buf = head.split(b"\r\n\r\n", 1)
            status_line, *header_lines = head.decode("latin-1").split("\r\n")
            if " 101 " not in status_line + " ":
                raise Refused(f"handshake refused: {status_line}")
            headers = {}
            for line in header_lines:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            extensions = headers.get("sec-websocket-extensions", "")
            if "permessage-deflate" in extensions:
                self._inflate = zlib.decompressobj(-15)
                self._inflate_reset = "server_no_context_takeover" in extensions
            # Engine.IO open packet, then our Socket.IO CONNECT, then its answer
            self._pump_until(lambda: self.sid is not None, deadline, "the Engine.IO open packet")
            self.send_text("40")
            self._pump_until(
                lambda: self._connected_ns or self._connect_error is not None,
                deadline,
                "the Socket.IO connect answer",
            )
            if self._connect_error is not None:
                raise Refused(f"connect_error: {self._connect_error}")
        except BaseException:
            self.close()
            raise
        return self

    def call(self, event: str, data: object, timeout: float = 10) -> object:
        """Send an event and wait (blocking, before the socket joins a Loop) for its ack."""
        box: list = []
        self.emit(event, data, box.append)
        self._pump_until(lambda: bool(box), time.monotonic() + timeout, f"the ack of {event}")
        return box[0]

    def _pump_until(self, done: Callable[[], bool], deadline: float, what: str) -> None:
        if self._buf:
            data, self._buf = self._buf, b""
            self.feed(data)
        while not done():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"timed out waiting for {what}")
            self.sock.settimeout(remaining)
            chunk = self.sock.recv(READ_SIZE)
            if not chunk:
                raise Closed(f"closed while waiting for {what}")
            self.received_ns = time.time_ns()
            self.feed(chunk)

    # -- sending ------------------------------------------------------------------------------

    def emit(
        self, event: str, data: object, on_ack: Callable[[object], None] | None = None
    ) -> None:
        """Send `42[event, data]` (with an ack id when `on_ack` is given)."""
        body = json.dumps([event, data], separators=(",", ":"))
        if on_ack is None:
            self.send_text("42" + body)
            return
        ack_id = self._next_ack
        self._next_ack += 1
        self._acks[ack_id] = on_ack
        self.send_text(f"42{ack_id}{body}")

    def send_text(self, text: str) -> None:
        self._write(frame(OP_TEXT, text.encode()))

    def _write(self, data: bytes) -> None:
        if self.closed:
            return
        if self._loop is None:
            self.sock.sendall(data)
            return
        if self._out:
            self._out += data
            return
        try:
            sent = self.sock.send(data)
        except BlockingIOError:
            sent = 0
        except OSError:
            self._lost()
            return
        if sent < len(data):
            self._out = data[sent:]
            self._loop.want_write(self)

    def flush(self) -> None:
        """Write what was left over (the Loop calls this when the socket is writable)."""
        try:
            sent = self.sock.send(self._out)
        except BlockingIOError:
            return
        except OSError:
            self._lost()
            return
        self._out = self._out[sent:]
        if not self._out:
            self._loop.done_writing(self)

    # -- receiving ----------------------------------------------------------------------------

    def feed(self, data: bytes) -> None:
        """Parse received bytes: whole frames are handled, a partial one is kept."""
        buf = self._buf + data if self._buf else data
        pos, end = 0, len(buf)
        while end - pos >= 2:
            b0, b1 = buf[pos], buf[pos + 1]
            length, head = b1 & 0x7F, 2
            if length == 126:
                if end - pos < 4:
                    break
                length, head = int.from_bytes(buf[pos + 2 : pos + 4], "big"), 4
            elif length == 127:
                if end - pos < 10:
                    break
                length, head = int.from_bytes(buf[pos + 2 : pos + 10], "big"), 10
            if b1 & 0x80:
                raise Closed("the server sent a masked frame")
            stop = pos + head + length
            if stop > end:
                break
            payload = buf[pos + head : stop]
            pos = stop
            opcode = b0 & 0x0F
            if opcode == OP_TEXT and b0 & 0xC0 == 0x80:  # final, not compressed: the hot path
                self._packet(payload)
            else:
                self._frame(b0, opcode, payload)
        self._buf = buf[pos:] if pos < end else b""

    def _frame(self, b0: int, opcode: int, payload: bytes) -> None:
        if opcode in (OP_TEXT, OP_BINARY):
            self._fragments = [payload]
            self._fragment_compressed = bool(b0 & 0x40)
        elif opcode == OP_CONT:
            self._fragments.append(payload)
        elif opcode == OP_PING:
            self._write(frame(OP_PONG, payload))
            return
        elif opcode == OP_CLOSE:
            self._write(frame(OP_CLOSE, payload[:2]))
            self._lost()
            return
        else:
            return
        if not b0 & 0x80:
            return  # more fragments follow
        message = b"".join(self._fragments)
        self._fragments = []
        if self._fragment_compressed:
            if self._inflate is None:
                raise Closed("a compressed frame without permessage-deflate")
            message = self._inflate.decompress(message + DEFLATE_TAIL)
            if self._inflate_reset:
                self._inflate = zlib.decompressobj(-15)
        if opcode != OP_BINARY:
            self._packet(message)

    def _packet(self, packet: bytes) -> None:
        kind = packet[:2]
        if kind == b"42":
            self.on_event(packet[2:])
        elif kind == b"43":
            # an ack: digits of the id, then the JSON array of arguments
            i = 2
            while packet[i] in b"0123456789":
                i += 1
            callback = self._acks.pop(int(packet[2:i]), None)
            if callback is not None:
                args = json.loads(packet[i:])
                callback(args[0] if len(args) == 1 else args)
        elif packet == b"2":
            self._write(frame(OP_TEXT, b"3"))  # Engine.IO pong
        elif packet[:1] == b"0":
            self.sid = json.loads(packet[1:])["sid"]
        elif kind == b"40":
            self._connected_ns = True
        elif kind == b"44":
            self._connect_error = json.loads(packet[2:]) if len(packet) > 2 else "refused"
        elif kind == b"41" or packet == b"1":
            self._lost()

    def _lost(self) -> None:
        if not self.closed:
            self.closed = True
            if self._loop is not None:
                self._loop.forget(self)

    # -- closing ------------------------------------------------------------------------------

    def close(self) -> None:
        """Send Socket.IO's DISCONNECT and a WebSocket close frame, then close the socket."""
        if self.sock is None:
            return
        if not self.closed:
            try:
                self.sock.setblocking(True)
                self.sock.settimeout(1)
                self.sock.sendall(frame(OP_TEXT, b"41") + frame(OP_CLOSE, b"\x03\xe8"))
            except OSError:
                pass
        self._lost()
        self.sock.close()


def _received_ns(ancillary: list) -> int:
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(data) >= 16:
            sec, nsec = _TIMESPEC.unpack_from(data)
            return sec * 1_000_000_000 + nsec
    return time.time_ns()


class Loop:
    """An epoll loop serving many LeanSockets in one thread, with timers.

    `run(until, next_timer)`: read every ready socket, and call `next_timer()` whenever its
    previous answer (a deadline in `time.monotonic()` seconds) has passed; it returns the
    next deadline, or None when it has nothing more to do. Returns at `until`.
    """

    def __init__(self):
        self.epoll = select.epoll()
        self.by_fd: dict[int, LeanSocket] = {}
        self.polls = 0  # epoll waits, and the reads they led to: how well reads batch
        self.reads = 0

    def add(self, lean: LeanSocket) -> None:
        lean.sock.setblocking(False)
        lean.sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        lean._loop = self
        fd = lean.sock.fileno()
        self.by_fd[fd] = lean
        self.epoll.register(fd, select.EPOLLIN)
        if lean._buf:  # bytes read during setup that were not a whole frame yet
            data, lean._buf = lean._buf, b""
            lean.feed(data)

    def want_write(self, lean: LeanSocket) -> None:
        self.epoll.modify(lean.sock.fileno(), select.EPOLLIN | select.EPOLLOUT)

    def done_writing(self, lean: LeanSocket) -> None:
        self.epoll.modify(lean.sock.fileno(), select.EPOLLIN)

    def forget(self, lean: LeanSocket) -> None:
        fd = lean.sock.fileno()
        if self.by_fd.pop(fd, None) is not None:
            with contextlib.suppress(OSError, ValueError):
                self.epoll.unregister(fd)

    def run(
        self,
        until: float,
        next_timer: Callable[[], float | None] | None = None,
        batch: float = 0.0,
    ) -> None:
        """Serve the sockets until `until` (monotonic seconds).

        `batch` (seconds): after serving what was ready, sleep this long before the next
        wait unless a timer is due or the last wait found the loop saturated: fewer, fuller
        wake-ups (each read then carries several sockets' frames). Receipt times stay
        exact: every read takes the kernel's receive timestamp (`LeanSocket.received_ns`).
        """
        due = next_timer() if next_timer else None
        by_fd, poll, now, sleep = self.by_fd, self.epoll.poll, time.monotonic, time.sleep
        pollout = select.EPOLLOUT
        unpack_timespec = _TIMESPEC.unpack_from
        while True:  # bounded by `until`
            t = now()
            while due is not None and t >= due:
                due = next_timer()
                t = now()
            if t >= until:
                return
            wait = min(until, due) - t if due is not None else until - t
            ready = poll(max(wait, 0.0), 1024)
            self.polls += 1
            self.reads += len(ready)
            for fd, events in ready:
                lean = by_fd.get(fd)
                if lean is None:
                    continue
                if events & pollout:
                    lean.flush()
                try:
                    data, ancillary, _, _ = lean.sock.recvmsg(READ_SIZE, ANCILLARY_SIZE)
                except BlockingIOError:
                    continue
                except OSError:
                    lean._lost()
                    continue
                if not data:
                    lean._lost()
                    continue
                if ancillary and ancillary[0][1] == SO_TIMESTAMPNS:
                    sec, nsec = unpack_timespec(ancillary[0][2])
                    lean.received_ns = sec * 1_000_000_000 + nsec
                else:
                    lean.received_ns = _received_ns(ancillary)
                # the common case, one whole text frame of < 64 KiB: no parsing loop
                if (
                    not lean._buf
                    and data[0] == 0x81
                    and data[1] == 126
                    and len(data) == 4 + ((data[2] << 8) | data[3])
                    and data[4:6] == b"42"
                ):
                    lean.on_event(data[6:])
                else:
                    lean.feed(data)
            if batch and len(ready) < SATURATED:
                nap = min(t + batch, until, due if due is not None else until) - now()
                if nap > 0:
                    sleep(nap)

    def close(self) -> None:
        self.epoll.close()
