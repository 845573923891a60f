"""app/realtime/fanout.py on a real simple-websocket server connection (a socket pair, the
server side as transport.py builds it): pre-built frames are written as they are, what one
`poll` returned goes out with one write, and every frame decodes, in order, with wsproto
as the client (compressed frames when permessage-deflate was negotiated)."""

from __future__ import annotations

import socket

import pytest
from engineio import packet as eio_packet
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, Request, TextMessage
from wsproto.extensions import PerMessageDeflate

from app.realtime.fanout import PreframedPacket, batch_writes
from app.realtime.transport import PreframedWholeFrameServer


class CountingSocket:
    """The server's socket, counting the writes (`send` and `sendall` calls) that reach it."""

    def __init__(self, sock: socket.socket):
        self._sock = sock
        self.writes = 0

    def send(self, data) -> int:
        self.writes += 1
        return self._sock.send(data)

    def sendall(self, data) -> None:
        self.writes += 1
        self._sock.sendall(data)

    def __getattr__(self, name):
        return getattr(self._sock, name)


class FakeSession:
    """An engineio Socket as far as its writer is concerned: `poll` returns what is queued."""

    def __init__(self):
        self.queued: list = []

    def poll(self) -> list:
        packets, self.queued = self.queued, []
        return packets


def connected_pair(deflate: bool):
    """(server connection, its counting socket, the client socket, the client's wsproto)."""
    server_sock, client_sock = socket.socketpair()
    client = WSConnection(ConnectionType.CLIENT)
    extensions = [PerMessageDeflate()] if deflate else []
    request = client.send(Request(host="chat", target="/socket.io/", extensions=extensions))
    # the server reads the upgrade request from the WSGI environ, as a WSGI server gives it
    environ = {"werkzeug.socket": server_sock}
    for line in request.decode().split("\r\n")[1:]:
        if line:
            name, _, value = line.partition(":")
            environ["HTTP_" + name.strip().upper().replace("-", "_")] = value.strip()
    ws = PreframedWholeFrameServer(environ)
    counting = CountingSocket(ws.sock._sock)
    ws.sock._sock = counting
    client_sock.settimeout(5)
    return ws, counting, client_sock, client


def received_texts(client_sock: socket.socket, client: WSConnection, count: int):
    """The first `count` text messages the client decodes (after the handshake's answer)."""
    texts: list[str] = []
    accepted = False
    while len(texts) < count:
        client.receive_data(client_sock.recv(1 << 20))
        for event in client.events():
            if isinstance(event, AcceptConnection):
                accepted = True
            elif isinstance(event, TextMessage):
                assert event.message_finished
                texts.append(event.data)
    assert accepted
    return texts


@pytest.mark.parametrize("deflate", [False, True])
def test_one_polls_packets_leave_in_order_with_one_write(deflate):
    ws, counting, client_sock, client = connected_pair(deflate)
    session = FakeSession()
    batch_writes(session, ws)
    sizes = [10, 300, 70_000, 5]  # 7-, 16-, 64-bit and 7-bit payload lengths
    broadcasts = [PreframedPacket(eio_packet.MESSAGE, "2" + "é" * n) for n in sizes]
    ack = eio_packet.Packet(eio_packet.MESSAGE, '30["ok"]')  # not pre-framed: wsproto's path
    try:
        session.queued = [broadcasts[0], ack, *broadcasts[1:]]
        before = counting.writes
        for pkt in session.poll():  # what engineio's writer greenlet does
            ws.send(pkt.encode())
        assert counting.writes == before + 1
        # one packet: written at once, no batch
        session.queued = [eio_packet.Packet(eio_packet.PING)]
        for pkt in session.poll():
            ws.send(pkt.encode())
        assert counting.writes == before + 2
        expected = [broadcasts[0].encode(), ack.encode()]
        expected += [pkt.encode() for pkt in broadcasts[1:]] + ["2"]
        assert received_texts(client_sock, client, len(expected)) == expected
        assert ws._frames_as_built is not deflate
    finally:
        ws.close()
        client_sock.close()


def test_a_long_polling_request_iterating_a_batch_writes_nothing():
    ws, counting, client_sock, _client = connected_pair(False)
    session = FakeSession()
    batch_writes(session, ws)
    try:
        session.queued = [PreframedPacket(eio_packet.MESSAGE, "2a"), eio_packet.Packet()]
        before = counting.writes
        payload = [pkt.encode(b64=True) for pkt in session.poll()]  # as Payload.encode
        assert payload == ["42a", "6"] and counting.writes == before
    finally:
        ws.close()
        client_sock.close()
