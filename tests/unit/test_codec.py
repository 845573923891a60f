"""app/codec.py: compact UTF-8 JSON out, the standard library's answers in every case orjson
would answer differently, the >100-digit integer guard, and the keyword arguments of
`json.dumps` that Flask, Flask-SocketIO and python-socketio pass."""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import json
import math

import pytest
from flask import Flask
from werkzeug.http import http_date

from app import codec

VALUES = [
    {"a": "é🙂 שלום", "b": [1, 2.5, None, True, False], "c": {"d": []}},
    ["message", {"id": 1, "seq": 2, "room": 3, "message": "olá", "client_id": "x"}],
    {"big": 2**70, "neg": -(2**65)},  # beyond 64 bits: orjson refuses, json encodes
    {1: "int key", None: "null key"},  # keys that are not strings
    ("tuple", 1),
    {"float": 0.1, "exp": 1e16, "third": 1 / 3},
    "plain text",
    "",
    0,
]


@pytest.mark.parametrize("value", VALUES)
def test_dumps_is_the_standard_librarys_compact_utf8_text(value):
    expected = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    assert codec.dumps(value) == expected
    assert codec.dumps(value, separators=(",", ":")) == expected


def test_floats_keep_their_value():
    # orjson writes an exponent without a leading zero (1e-7, json: 1e-07): the same number
    value = [1e-7, 2.5e-300, 1.7976931348623157e308, -0.0, 123456.789]
    assert json.loads(codec.dumps(value)) == value


def test_lone_surrogates_stay_escapes_so_the_text_encodes():
    text = codec.dumps({"t": "a\ud800b\udfff🙂"})
    assert text == '{"t":"a\\ud800b\\udfff🙂"}'
    assert text.encode("utf-8")
    assert codec.loads(text) == {"t": "a\ud800b\udfff🙂"}


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"sort_keys": True}, '{"a":2,"b":1,"é":3}'),
        ({"ensure_ascii": True}, '{"b":1,"a":2,"\\u00e9":3}'),
        ({"separators": (", ", ": ")}, '{"b": 1, "a": 2, "é": 3}'),
        ({"indent": 1}, '{\n "b": 1,\n "a": 2,\n "é": 3\n}'),
        ({"sort_keys": True, "ensure_ascii": False}, '{"a":2,"b":1,"é":3}'),
    ],
)
def test_dumps_honours_the_standard_keyword_arguments(kwargs, expected):
    assert codec.dumps({"b": 1, "a": 2, "é": 3}, **kwargs) == expected


@dataclasses.dataclass
class Point:
    x: int


def test_default_converts_what_json_cannot_and_dates_go_through_it():
    seen = []

    def default(value):
        seen.append(value)
        return str(value)

    when = datetime.datetime(2026, 11, 25, 13, 0, tzinfo=datetime.UTC)
    assert codec.dumps([when, decimal.Decimal("1.5"), Point(1)], default=default) == (
        '["2026-11-25 13:00:00+00:00","1.5","Point(x=1)"]'
    )
    assert len(seen) == 3


def test_without_default_what_json_cannot_encode_is_a_type_error():
    with pytest.raises(TypeError):
        codec.dumps({"when": datetime.date(2026, 1, 1)})
    with pytest.raises(TypeError):
        codec.dumps(object())


def test_a_circular_reference_is_refused_as_json_refuses_it():
    loop: list = []
    loop.append(loop)
    with pytest.raises(ValueError):
        codec.dumps(loop)


def test_flask_answers_go_through_the_codec_with_flasks_own_default():
    app = Flask(__name__)
    app.json = codec.JSONProvider(app)
    when = datetime.datetime(2026, 11, 25, 13, 0, tzinfo=datetime.UTC)
    assert app.json.dumps({"b": "é", "a": when}) == f'{{"a":"{http_date(when)}","b":"é"}}'
    with app.app_context():
        assert app.json.response({"z": 1, "a": "🙂"}).get_data(as_text=True) == (
            '{"a":"🙂","z":1}\n'
        )


@pytest.mark.parametrize(
    "text",
    [
        '{"a":"é🙂","b":[1,2.5,null,true,false],"c":{}}',
        '["message",{"room":1,"message":"x"}]',
        "12345678901234567890",  # beyond 64 bits: an int, never a float
        '{"n": 184467440737095516160000}',
        "-9223372036854775809",
        "1.00000000000000000001",
        '{"phone":"+55 11 0000000000000000000"}',  # long digits in a string: same answer
        '"\\ud800"',  # a lone surrogate escape
        '{"a":1,"a":2}',
        "1e400",
        " [ 1 , 2 ] ",
    ],
)
def test_loads_answers_as_the_standard_library(text):
    expected = json.loads(text)
    assert codec.loads(text) == expected
    assert type(codec.loads(text)) is type(expected)
    assert codec.loads(text.encode()) == expected


def test_nan_is_parsed_as_the_standard_library_parses_it():
    assert math.isnan(codec.loads("NaN"))


@pytest.mark.parametrize("digits", [100, 101, 5000])
def test_integers_of_more_than_100_digits_are_refused(digits):
    text = f'{{"n": {"7" * digits}}}'
    if digits <= 100:
        assert codec.loads(text) == {"n": int("7" * digits)}
    else:
        with pytest.raises(ValueError):
            codec.loads(text)


@pytest.mark.parametrize("text", ["", "{", "[1,]", "nul", '{"a" 1}', b"\xff\xfe"])
def test_bad_json_is_a_value_error(text):
    with pytest.raises(ValueError):
        codec.loads(text)


def test_loads_keyword_arguments_are_the_standard_librarys():
    assert codec.loads('{"a": 1.5}', parse_float=decimal.Decimal) == {"a": decimal.Decimal("1.5")}


def test_encoded_size_counts_utf8_bytes():
    assert codec.encoded_size({"t": "é🙂"}) == len('{"t":"é🙂"}'.encode())
