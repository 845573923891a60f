"""app/realtime/fanout.py's frames are byte for byte what wsproto builds, for every payload
length encoding, and a pre-framed packet still encodes as a normal Engine.IO packet."""

from __future__ import annotations

import pytest
from engineio import packet as eio_packet
from engineio import payload as eio_payload
from wsproto.connection import Connection, ConnectionType
from wsproto.events import TextMessage

from app.realtime.fanout import FramedText, PreframedPacket, text_frame


def wsproto_frame(text: str) -> bytes:
    return Connection(ConnectionType.SERVER).send(TextMessage(data=text))


@pytest.mark.parametrize("size", [0, 1, 125, 126, 127, 65535, 65536, 200_000])
def test_text_frame_is_wsprotos_frame(size):
    text = "x" * size
    assert text_frame(text.encode()) == wsproto_frame(text)


def test_non_ascii_text_is_framed_as_utf8():
    text = "açaí 👍🏽 שלום " * 5000  # above 64 KiB once encoded
    assert FramedText(text).frame == wsproto_frame(text)


def test_preframed_packet_encodes_as_engineio_does_for_both_transports():
    data = '2["message",{"text":"olá"}]'
    preframed = PreframedPacket(eio_packet.MESSAGE, data)
    plain = eio_packet.Packet(eio_packet.MESSAGE, data)
    encoded = preframed.encode()
    assert type(encoded) is FramedText and encoded == plain.encode()
    assert encoded.frame == wsproto_frame(plain.encode())
    assert preframed.encode() is encoded  # built once, shared by every recipient
    # long-polling: the same payload as without pre-framing
    assert (
        eio_payload.Payload(packets=[preframed, preframed]).encode()
        == eio_payload.Payload(packets=[plain, plain]).encode()
    )


def test_binary_packets_are_left_to_the_library():
    packet = PreframedPacket(eio_packet.MESSAGE, b"\x00\x01")
    assert packet.encode() == b"\x00\x01" and not isinstance(packet.encode(), FramedText)
