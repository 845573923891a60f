"""The JSON codec of every answer: Socket.IO packets, Redis message-queue payloads, HTTP JSON.

Text goes out as UTF-8, never as `\\u` escapes: with the standard library's default
`ensure_ascii=True` a character outside the Basic Multilingual Plane (an emoji) becomes a
12-byte surrogate pair escape, three times its UTF-8 size, in every frame of every member
of a room. Decoding keeps python-engineio's guard against huge integer literals (a number
of thousands of digits costs quadratic time to parse).

`dumps` and `loads` have the standard library's signatures, which is what Flask-SocketIO,
python-socketio's managers and Flask's JSON provider expect. This module is the one place
to swap the codec for a faster one (orjson, msgspec) later: keep the two functions, their
output (compact UTF-8 JSON text) and the integer guard.
"""

from __future__ import annotations

import json
import re
from typing import Any

from engineio import json as _engineio_json
from flask.json.provider import DefaultJSONProvider

# a lone surrogate has no UTF-8 form: it stays an escape, so encoding the text never fails
_SURROGATE = re.compile("[\ud800-\udfff]")


def dumps(obj: Any, **kwargs: Any) -> str:
    """JSON text with non-ASCII characters as themselves (UTF-8 once encoded)."""
    kwargs.setdefault("ensure_ascii", False)
    text = json.dumps(obj, **kwargs)
    if text.isascii():
        return text
    return _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def loads(s: str | bytes | bytearray, **kwargs: Any) -> Any:
    """Parse JSON text; integer literals of more than 100 digits are refused (ValueError)."""
    return _engineio_json.loads(s, **kwargs)


def encoded_size(obj: Any) -> int:
    """How many bytes `obj` takes on the wire as compact UTF-8 JSON."""
    return len(dumps(obj, separators=(",", ":")).encode())


class JSONProvider(DefaultJSONProvider):
    """Flask's JSON (API answers, `tojson` in pages) through this codec: UTF-8, not escapes."""

    ensure_ascii = False

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        kwargs.setdefault("default", self.default)
        kwargs.setdefault("ensure_ascii", self.ensure_ascii)
        kwargs.setdefault("sort_keys", self.sort_keys)
        return dumps(obj, **kwargs)
