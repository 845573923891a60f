"""The JSON codec of every answer: Socket.IO packets, Redis message-queue payloads, HTTP JSON.

Text goes out as compact UTF-8 JSON, never as `\\u` escapes: with the standard library's
default `ensure_ascii=True` a character outside the Basic Multilingual Plane (an emoji)
becomes a 12-byte surrogate pair escape, three times its UTF-8 size, in every frame of every
member of a room. A lone surrogate (it has no UTF-8 form) stays an escape, so encoding the
text never fails. Decoding keeps python-engineio's guard against huge integer literals (a
number of thousands of digits costs quadratic time to parse): more than 100 digits is a
ValueError.

`dumps` and `loads` have the standard library's signatures, which is what Flask-SocketIO,
python-socketio's managers and Flask's JSON provider expect. The work is done by orjson
(several times faster than `json`) whenever it gives the same answer; the standard library
decides everything else:

- `dumps` uses orjson when the keyword arguments are ones it can honour (`separators`
  compact or absent, `ensure_ascii` false, `sort_keys`, `default`) and orjson accepts the
  value; what it refuses (a lone surrogate, an integer beyond 64 bits, a key that is not a
  string, a circular reference, anything `default` cannot convert) goes to `json`, which
  encodes it or raises as before. Dates and dataclasses always go through `default`, as with
  `json`. Differences left: a float's exponent has no leading zero (`1e-7`, the same number
  as `json`'s `1e-07`), NaN and infinities become `null` (`json` writes the non-JSON `NaN`),
  and a UUID or an Enum is encoded even without a `default`.
- `loads` uses orjson when there are no keyword arguments. orjson reads an integer beyond
  64 bits as a float, so an answer holding any float is parsed again by `json` (chat
  packets and queue payloads hold none), and so is whatever orjson refuses: what is
  accepted or refused, and how, stays the standard library's.
"""

from __future__ import annotations

import json
import re
from typing import Any

import orjson
from engineio import json as _engineio_json
from flask.json.provider import DefaultJSONProvider

COMPACT = (",", ":")
# a lone surrogate has no UTF-8 form: it stays an escape, so encoding the text never fails
_SURROGATE = re.compile("[\ud800-\udfff]")
# dates and dataclasses go to `default`, as they do with json
_ORJSON_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS


def dumps(obj: Any, **kwargs: Any) -> str:
    """Compact JSON text with non-ASCII characters as themselves (UTF-8 once encoded)."""
    option = _orjson_option(kwargs)
    if option is not None:
        try:
            return orjson.dumps(obj, default=kwargs.get("default"), option=option).decode()
        except TypeError:
            pass  # what orjson refuses: the standard library encodes it or raises
    return _json_dumps(obj, **kwargs)


def _orjson_option(kwargs: dict[str, Any]) -> int | None:
    """orjson's option for these `json.dumps` keyword arguments; None if it cannot honour them."""
    option = _ORJSON_OPTIONS
    for name, value in kwargs.items():
        if name == "separators":
            if value is not None and tuple(value) != COMPACT:
                return None
        elif name == "ensure_ascii":
            if value:
                return None
        elif name == "sort_keys":
            if value:
                option |= orjson.OPT_SORT_KEYS
        elif name != "default":
            return None  # indent, cls, allow_nan, ...: only json knows them
    return option


def _json_dumps(obj: Any, **kwargs: Any) -> str:
    kwargs.setdefault("ensure_ascii", False)
    if kwargs.get("indent") is None:
        kwargs.setdefault("separators", COMPACT)
    text = json.dumps(obj, **kwargs)
    if text.isascii():
        return text
    return _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def loads(s: str | bytes | bytearray, **kwargs: Any) -> Any:
    """Parse JSON text; integer literals of more than 100 digits are refused (ValueError)."""
    if not kwargs:
        try:
            value = orjson.loads(s)
        except orjson.JSONDecodeError:
            pass  # the standard library decides what is refused, and how
        else:
            if not _holds_float(value):
                return value
    return _engineio_json.loads(s, **kwargs)


def _holds_float(value: Any) -> bool:
    """Whether a parsed JSON value holds a float anywhere (keys are always strings)."""
    stack = [value]
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind is float:
            return True
        if kind is dict:
            stack.extend(item.values())
        elif kind is list:
            stack.extend(item)
    return False


def encoded_size(obj: Any) -> int:
    """How many bytes `obj` takes on the wire as compact UTF-8 JSON."""
    return len(dumps(obj, separators=COMPACT).encode())


class JSONProvider(DefaultJSONProvider):
    """Flask's JSON (API answers, `tojson` in pages) through this codec: UTF-8, not escapes."""

    ensure_ascii = False

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        kwargs.setdefault("default", self.default)
        kwargs.setdefault("ensure_ascii", self.ensure_ascii)
        kwargs.setdefault("sort_keys", self.sort_keys)
        return dumps(obj, **kwargs)
