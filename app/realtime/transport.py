"""How Socket.IO reaches the wire: whole WebSocket frames, and malformed packets dropped quietly.

`install(server)` (called once per app by app/factory.py) adjusts python-socketio's server
through its own extension points, without forking a library:

- **Whole frames.** simple-websocket 1.1 (the WebSocket of python-engineio's threading and
  gevent drivers, so of `flask-chat serve` and of gunicorn's gevent worker) writes a frame
  with one `socket.send(data)` and ignores how much of it the kernel took. A gevent socket
  is non-blocking underneath: once the peer's window and the send buffer are full, `send`
  returns a partial count and the rest of the frame is lost, so a large answer (a join ack
  of a few MB) stalls part-way and every later frame on that connection is garbage. Here
  the server's socket is wrapped so that every write is a `sendall` under a lock (the
  writer greenlet and the reader's pong or close replies cannot interleave inside a frame).
  Guarantee: a frame is written whole or the connection fails; frames never interleave.
- **Pre-framed broadcasts.** With `fast_fanout` (the default), connections are
  `PreframedWholeFrameServer`s: a broadcast's frame, built once, is written as it is, and
  what one wake-up of the writer finds queued goes as one write (app/realtime/fanout.py).
- **Malformed packets.** python-engineio logs each undecodable Socket.IO packet with a full
  traceback (`message handler error`), at whatever rate a client sends them, and keeps the
  connection. Here each connection may send `MALFORMED_PACKET_LIMIT - 1` packets that do
  not decode (Engine.IO or Socket.IO level); the next one closes its Engine.IO session. A
  connection's first such packet is logged as one warning line without a traceback, and
  those lines are rate-limited per process (`LOG_LINES_PER_MINUTE`).
"""

from __future__ import annotations

import logging
import threading
import time

import simple_websocket
from engineio.async_drivers._websocket_wsgi import SimpleWebSocketWSGI

from app.realtime import fanout

log = logging.getLogger(__name__)

# packets that do not decode before a connection is closed
MALFORMED_PACKET_LIMIT = 3
# warning lines about malformed packets, per process and minute; the rest are counted
LOG_LINES_PER_MINUTE = 10
# what python-socketio raises on a packet that does not decode (JSON errors are ValueErrors;
# an event that is not a list fails on indexing)
DECODING_ERRORS = (ValueError, TypeError, KeyError, IndexError, AttributeError)
# Engine.IO packet types a client may send over WebSocket: close, ping, pong, message, upgrade
_CLIENT_PACKET_TYPES = frozenset("12345")


def install(server, fast_fanout: bool = True) -> None:
    """Whole-frame WebSocket writes and the malformed-packet guard for this socketio.Server;
    with `fast_fanout`, pre-framed broadcasts and batched writes (app/realtime/fanout.py)."""
    eio = server.eio
    guard = MalformedPacketGuard(server)
    websocket = eio._async.get("websocket")
    if isinstance(websocket, type) and issubclass(websocket, SimpleWebSocketWSGI):
        driver = _whole_frame_websocket(websocket, guard, fast_fanout)
        # per server: the driver's table is shared by every server of the process
        eio._async = {**eio._async, "websocket": driver}


def engineio_logger() -> logging.Logger:
    """The logger to give python-engineio (Flask-SocketIO's `engineio_logger`).

    Errors only, as engineio's default, but through the app's log handlers alone (given no
    logger, engineio adds a stderr handler of its own, so each line came out twice), and a
    long-polling payload that does not decode is one line without a traceback.
    """
    logger = logging.getLogger("engineio.server")
    logger.setLevel(logging.ERROR)
    if not any(isinstance(f, _ClientErrorFilter) for f in logger.filters):
        logger.addFilter(_ClientErrorFilter())
    return logger


class _LogBudget:
    """At most `per_minute` lines a minute; says how many were held back when it refills."""

    def __init__(self, per_minute: int):
        self.per_minute = per_minute
        self.window = 0.0
        self.used = 0
        self.suppressed = 0
        self._lock = threading.Lock()

    def allow(self) -> tuple[bool, int]:
        """(may log now, lines held back since the last allowed one)."""
        with self._lock:
            now = time.monotonic()
            if now - self.window >= 60:
                self.window, self.used = now, 0
            if self.used >= self.per_minute:
                self.suppressed += 1
                return False, 0
            self.used += 1
            held, self.suppressed = self.suppressed, 0
            return True, held


_budget = _LogBudget(LOG_LINES_PER_MINUTE)


def warn_malformed(address: str, sid: str, reason: str) -> None:
    """One line for a connection's first malformed packet (rate-limited, no traceback)."""
    allowed, held = _budget.allow()
    if not allowed:
        return
    more = f" ({held} similar lines held back)" if held else ""
    log.warning(
        "malformed packet from %s (session %s): %s; closing after %d%s",
        address or "?",
        sid,
        reason[:120],
        MALFORMED_PACKET_LIMIT,
        more,
    )


def _reason(exc: BaseException) -> str:
    return f"{exc.__class__.__name__}: {exc}"


class MalformedPacketGuard:
    """Wraps the server's Engine.IO `message` handler: a packet that does not decode is
    counted against its connection instead of being logged with a traceback."""

    def __init__(self, server):
        self.server = server
        self.counts: dict[str, int] = {}
        self._handle_message = server._handle_eio_message
        self._handle_disconnect = server._handle_eio_disconnect
        server.eio.on("message", self.on_message)
        server.eio.on("disconnect", self.on_disconnect)

    def on_message(self, eio_sid: str, data) -> None:
        try:
            self._handle_message(eio_sid, data)
        except DECODING_ERRORS as exc:
            # the event handlers run in their own tasks (async_handlers): what fails here is
            # the decoding and dispatch of what the client sent
            self.server._binary_packet.pop(eio_sid, None)
            if self.count(eio_sid, self.server.environ.get(eio_sid), _reason(exc)):
                # not from here: close() waits for the queue to drain, which a long-polling
                # client only does with its next request, after this one is answered
                self.server.start_background_task(self.server.eio.disconnect, eio_sid)

    def on_disconnect(self, eio_sid: str, reason=None) -> None:
        self.counts.pop(eio_sid, None)
        self._handle_disconnect(eio_sid, reason)

    def count(self, eio_sid: str, environ: dict | None, reason: str) -> bool:
        """Count a malformed packet of a connection; True when it must now be closed."""
        if environ is None:
            return False  # already disconnected: what was still queued does not count
        count = self.counts.get(eio_sid, 0) + 1
        self.counts[eio_sid] = count
        if count == 1:
            warn_malformed(environ.get("REMOTE_ADDR", ""), eio_sid, reason)
        if count >= MALFORMED_PACKET_LIMIT:
            log.debug("closing %s after %d malformed packets", eio_sid, count)
            return True
        return False


class _WholeWrites:
    """A connection's socket whose `send` writes all of the data (one writer at a time)."""

    def __init__(self, sock):
        self._sock = sock
        # created per connection at run time: gevent's lock once the process is patched
        self._lock = threading.Lock()

    def send(self, data) -> int:
        with self._lock:
            # one `send` first: gevent's `sendall` asks the kernel for SO_SNDBUF every time
            # (a syscall per frame); the rest, if the kernel took part of it, as before
            sent = self._sock.send(data)
            if sent < len(data):
                self._sock.sendall(memoryview(data)[sent:])
        return len(data)

    def __getattr__(self, name):
        return getattr(self._sock, name)


class WholeFrameServer(simple_websocket.Server):
    """simple-websocket's server whose frames always leave whole (see the module docstring)."""

    def handshake(self):
        # Base.__init__ sets self.sock, then calls handshake() before any write or read
        self.sock = _WholeWrites(self.sock)
        super().handshake()


class PreframedWholeFrameServer(fanout.PreframedWebSocket, WholeFrameServer):
    """Whole frames, written as built once per broadcast (app/realtime/fanout.py)."""


def _whole_frame_websocket(
    driver_class: type, guard: MalformedPacketGuard, fast_fanout: bool
) -> type:
    """The async driver's WebSocket adapter, creating WholeFrameServer connections (pre-framed
    ones with `fast_fanout`) and refusing Engine.IO packets that do not decode."""
    server_class = PreframedWholeFrameServer if fast_fanout else WholeFrameServer

    class WholeFrameWebSocket(driver_class):
        def __call__(self, environ, start_response):
            # as SimpleWebSocketWSGI.__call__, with the whole-frame server
            self.environ = environ
            self.ws = server_class(environ, **self.server_args)
            # self.app is the bound handler of the connection's engineio Socket
            session = getattr(self.app, "__self__", None)
            if fast_fanout and session is not None:
                fanout.batch_writes(session, self.ws)
            ret = self.app(self)
            if self.ws.mode == "gunicorn":
                raise StopIteration()
            if self.ws.mode == "werkzeug":
                raise ConnectionError()
            return ret

        def wait(self):
            """The next well-formed Engine.IO packet; None (closed) after too many bad ones."""
            while True:
                data = super().wait()
                if data is None or isinstance(data, bytes) or _well_formed(data):
                    return data
                # self.app is the bound handler of the connection's engineio Socket
                session = getattr(self.app, "__self__", None)
                if session is None or session.closing or session.closed:
                    return None  # closed already (by the guard, say): stop reading
                if guard.count(
                    session.sid, self.environ, f"not an Engine.IO packet: {data[:20]!r}"
                ):
                    return None  # engineio closes the session as if the client had gone

    WholeFrameWebSocket.__name__ = f"WholeFrame{driver_class.__name__}"
    return WholeFrameWebSocket


def _well_formed(data: str) -> bool:
    # engineio's Packet.decode raises on an empty packet or a non-digit type, and drops
    # unknown types; base64 ('b') is for polling only
    return bool(data) and data[0] in _CLIENT_PACKET_TYPES


class _ClientErrorFilter(logging.Filter):
    """engineio's own log of a long-polling POST it could not decode: one line, no traceback,
    rate-limited (the WebSocket path never gets there: see MalformedPacketGuard)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.getMessage() != "post request handler error":
            return True
        exc = record.exc_info[1] if record.exc_info else None
        record.exc_info = None
        record.exc_text = None
        allowed, held = _budget.allow()
        if not allowed:
            return False
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        record.msg = "undecodable long-polling packet: %s%s"
        record.args = (
            _reason(exc) if exc else "?",
            f" ({held} similar lines held back)" if held else "",
        )
        return True
