"""The fan-out fast path: a broadcast's WebSocket frame is built once, whatever the room's size.

Without it, each recipient of a room broadcast costs its connection's writer greenlet the
Engine.IO encoding of the packet, wsproto's framing of the text (a UTF-8 encode, a header,
a copy) and a locked `sendall`. Here:

- **One frame per broadcast.** `PreframingManager` (the Socket.IO manager of every app:
  python-socketio's in-process one without Redis, `app/realtime/queue.py:RedisQueue`'s base
  with it, for local emits and for those from other workers alike) queues one
  `PreframedPacket` to every recipient. Its encoding is a `FramedText`: the same `str` as
  before (a long-polling client gets it in its payload as usual), plus the bytes of the final,
  unmasked WebSocket text frame carrying it, built the first time a WebSocket needs them and
  shared by every other recipient.
- **Written as they are.** `PreframedWebSocket.send` (the server side of every WebSocket,
  see `app/realtime/transport.py`) writes those bytes with the connection's locked
  `sendall`. A connection that negotiated permessage-deflate, a binary packet, and every
  packet that is not a broadcast (acks, pings, the close handshake) take simple-websocket's
  usual path through wsproto.
- **One write per wake-up.** When the writer finds several packets queued for its
  connection, their frames are written with one `sendall` after it has framed the last one
  (`batch_writes`).

Guarantee: every recipient gets byte for byte the frame wsproto would have built for it
(one final frame, 7-, 16- or 64-bit payload length), in the order its packets were queued;
a frame is written whole or the connection fails, and frames never interleave (the socket's
lock, see transport.py). Only the writer greenlet writes data frames, so holding a batch
until its last frame reorders nothing. How it fails: as before; a write that fails ends the
writer and the connection, and what it held for that connection is dropped with it.

`FAST_FANOUT=off` (settings.fast_fanout) turns all of it off, for A/B measurements
(bench/fanout_cost.py).
"""

from __future__ import annotations

import struct
from functools import cached_property

import simple_websocket
from engineio import packet as eio_packet
from socketio import Manager
from socketio import packet as sio_packet
from wsproto.events import Message, TextMessage

_FIN_TEXT = 0x81  # FIN bit + opcode 1 (text)
_LENGTH_16 = struct.Struct("!BBH")
_LENGTH_64 = struct.Struct("!BBQ")


def text_frame(payload: bytes) -> bytes:
    """A final, unmasked (server to client) WebSocket text frame carrying `payload`."""
    size = len(payload)
    if size < 126:
        return bytes((_FIN_TEXT, size)) + payload
    if size < 65536:
        return _LENGTH_16.pack(_FIN_TEXT, 126, size) + payload
    return _LENGTH_64.pack(_FIN_TEXT, 127, size) + payload


class FramedText(str):
    """An encoded Engine.IO packet that also knows its WebSocket frame (built once)."""

    @cached_property
    def frame(self) -> bytes:
        return text_frame(self.encode())


class PreframedPacket(eio_packet.Packet):
    """An Engine.IO packet whose text encoding is a `FramedText`, shared by every recipient
    (engineio caches a packet's encoding; one broadcast queues the same packet to all)."""

    def encode(self, b64=False):
        if self.encode_cache is None:
            encoded = super().encode(b64)
            if isinstance(encoded, str):
                self.encode_cache = FramedText(encoded)
        return self.encode_cache


class PreframingManager(Manager):
    """python-socketio's manager, broadcasting `PreframedPacket`s (see the module docstring).

    `preframe = False` gives the library's own behaviour (the A/B switch)."""

    preframe = True

    def emit(
        self, event, data, namespace, room=None, skip_sid=None, callback=None, to=None, **kwargs
    ):
        """As `Manager.emit`; without a callback every recipient is queued the same
        pre-framed packet. With one, each needs its own ack id: the library's path."""
        room = to or room
        if callback or not self.preframe:
            return super().emit(
                event, data, namespace, room=room, skip_sid=skip_sid, callback=callback, **kwargs
            )
        if namespace not in self.rooms:
            return None
        if isinstance(data, tuple):
            data = list(data)
        elif data is not None:
            data = [data]
        else:
            data = []
        if not isinstance(skip_sid, list):
            skip_sid = [skip_sid]
        encoded = self.server.packet_class(
            sio_packet.EVENT, namespace=namespace, data=[event, *data]
        ).encode()
        if not isinstance(encoded, list):
            encoded = [encoded]
        packets = [PreframedPacket(eio_packet.MESSAGE, part) for part in encoded]
        send = self.server._send_eio_packet
        for sid, eio_sid in self.get_participants(namespace, room):
            if sid not in skip_sid:
                for pkt in packets:
                    send(eio_sid, pkt)
        return None


class PreframedWebSocket(simple_websocket.Server):
    """simple-websocket's server that writes a `FramedText`'s frame as it is, and can hold
    the frames of a batch to write them at once (see the module docstring)."""

    _held: list[bytes] | None = None

    @cached_property
    def _frames_as_built(self) -> bool:
        # asked at the first send, after the handshake: wsproto keeps the extensions it
        # accepted on its (private) frame protocol; with permessage-deflate the frames are
        # compressed. Anything but a known empty list means wsproto's path.
        connection = self.ws.connection or self.ws.handshake.connection
        extensions = getattr(getattr(connection, "_proto", None), "extensions", None)
        return extensions == []

    def send(self, data):
        if not self.connected:
            raise simple_websocket.ConnectionClosed(self.close_reason, self.close_message)
        if type(data) is FramedText and self._frames_as_built:
            frame = data.frame
        elif isinstance(data, bytes):
            frame = self.ws.send(Message(data=data))
        else:
            frame = self.ws.send(TextMessage(data=str(data)))
        if self._held is None:
            self.sock.send(frame)
        else:
            self._held.append(frame)

    def hold(self) -> None:
        """Keep the frames of the next sends until `release`."""
        self._held = []

    def release(self) -> None:
        """Write the frames held since `hold` with one `sendall`."""
        held, self._held = self._held, None
        if held:
            self.sock.send(b"".join(held) if len(held) > 1 else held[0])


class _WrittenAsOne(list):
    """The packets of one `poll`: iterating them (the writer greenlet sends each as it goes)
    holds the WebSocket's frames, and reaching the end writes them with one `sendall`.

    A long-polling request iterates them too (to build its payload) without writing to the
    WebSocket: nothing is held, and releasing nothing writes nothing."""

    def __init__(self, packets: list, websocket: PreframedWebSocket):
        super().__init__(packets)
        self._websocket = websocket

    def __iter__(self):
        self._websocket.hold()
        yield from list.__iter__(self)
        self._websocket.release()


def batch_writes(session, websocket: PreframedWebSocket) -> None:
    """Make an Engine.IO session's writer send what one wake-up finds queued as one write.

    engineio's writer greenlet calls `session.poll()` for what is queued, then sends each
    packet; the session's `poll` is wrapped (for this session only) to mark a batch of
    several packets."""
    poll = session.poll

    def poll_as_one():
        packets = poll()
        if len(packets) > 1:
            return _WrittenAsOne(packets, websocket)
        return packets

    session.poll = poll_as_one
