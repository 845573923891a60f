"""The rate limiter (app/limits.py): GCRA in memory and in Redis, and how it fails."""

from __future__ import annotations

import logging
import os
import subprocess
import sys

import pytest

from app.config import ConfigError, Settings
from app.extensions import socketio
from app.limits import DEFAULT_LIMITS, Limiter, MemoryStore, Rate, RedisStore, parse_rates
from app.realtime import events as _registers_handlers  # noqa: F401
from cluster_helpers import RedisServer, redis_binary
from livechat import ROOT
from servers import need


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    "text, rates",
    [
        ("40/20s", (Rate(40, 20),)),
        ("10/minute", (Rate(10, 60),)),
        ("30/hour", (Rate(30, 3600),)),
        ("10/10min", (Rate(10, 600),)),
        ("5/second; 100/hour", (Rate(5, 1), Rate(100, 3600))),
        ("off", ()),
        ("", ()),
    ],
)
def test_rates_are_read_from_text(text, rates):
    assert parse_rates(text) == rates


@pytest.mark.parametrize("text", ["40", "40/", "forty/s", "0/s", "5/fortnight", "5/0s"])
def test_a_bad_rate_is_refused(text):
    with pytest.raises(ValueError):
        parse_rates(text)


def test_each_limit_is_set_by_its_environment_variable(monkeypatch):
    monkeypatch.setenv("RATE_LIMIT_MESSAGE_USER", "5/second")
    monkeypatch.setenv("RATE_LIMIT_SIGNUP_ADDRESS", "off")
    limits = Settings.from_env().limits
    assert limits["message.user"] == "5/second"
    assert limits["signup.address"] == "off"
    assert limits["join.connection"] == DEFAULT_LIMITS["join.connection"]


def test_a_bad_limit_in_the_environment_stops_the_start(monkeypatch):
    monkeypatch.setenv("RATE_LIMIT_JOIN_USER", "lots")
    with pytest.raises(ConfigError, match="RATE_LIMIT_JOIN_USER"):
        Settings.from_env()


def test_a_burst_of_count_then_one_per_interval_and_the_wait_is_exact():
    clock = FakeClock()
    store = MemoryStore(clock)
    slot = [("k", Rate(4, 2.0))]  # a burst of 4, then one every 0.5 s
    assert [store.check(slot).allowed for _ in range(5)] == [True] * 4 + [False]
    refused = store.check(slot)
    assert refused.retry_after == pytest.approx(0.5)
    clock.now += refused.retry_after - 0.01
    assert not store.check(slot).allowed  # refusals consumed nothing: still the same wait
    clock.now += 0.01
    assert store.check(slot).allowed
    assert not store.check(slot).allowed


def test_a_check_over_several_keys_counts_in_all_of_them_or_none():
    clock = FakeClock()
    store = MemoryStore(clock)
    user, tab = ("user", Rate(3, 30.0)), ("tab", Rate(100, 1.0))
    for _ in range(3):
        assert store.check([user, tab]).allowed
    refused = store.check([user, tab])
    assert not refused.allowed and refused.retry_after == pytest.approx(10.0)
    # the refusal did not count against the tab: 97 more fit in it
    assert all(store.check([tab]).allowed for _ in range(97))
    assert not store.check([tab]).allowed


def test_connection_limits_stay_in_process_and_the_others_are_shared_through_redis(tmp_path):
    need(redis_binary() is not None, "redis-server is not installed")
    server = RedisServer(tmp_path)
    server.start()
    try:
        rules = {"message.user": parse_rates("3/minute"), "message.connection": parse_rates("2/s")}
        worker1 = Limiter(rules, redis_url=server.url)
        worker2 = Limiter(rules, redis_url=server.url)
        decisions = [
            worker1.check(("message.user", 7), ("message.connection", "a")).allowed,
            worker2.check(("message.user", 7), ("message.connection", "b")).allowed,
            worker1.check(("message.user", 7), ("message.connection", "c")).allowed,
        ]
        refused = worker2.check(("message.user", 7), ("message.connection", "d"))
        assert decisions == [True, True, True]
        assert not refused.allowed and refused.retry_after == pytest.approx(20.0, abs=0.5)
        keys = {k.decode() for k in server.client().keys("flask-chat:rl:*")}
        assert keys == {"flask-chat:rl:message.user:3/60s:7"}
        # the key ends with its window: nothing is left behind in Redis
        assert 0 < server.client().pttl("flask-chat:rl:message.user:3/60s:7") <= 60_000
    finally:
        server.kill()


def test_redis_gives_the_same_answers_as_memory(tmp_path):
    need(redis_binary() is not None, "redis-server is not installed")
    server = RedisServer(tmp_path)
    server.start()
    try:
        store = RedisStore(server.url)
        slot = [("same", Rate(5, 3600.0))]
        assert [store.check(slot).allowed for _ in range(6)] == [True] * 5 + [False]
        assert store.check(slot).retry_after == pytest.approx(720.0, abs=1)
    finally:
        server.kill()


def test_while_redis_is_down_each_worker_limits_on_its_own_and_warns_once(caplog):
    # nothing listens on port 9: connection refused at once
    limiter = Limiter({"signup.address": parse_rates("2/hour")}, redis_url="redis://127.0.0.1:9/0")
    with caplog.at_level(logging.WARNING, logger="app.limits"):
        answers = [limiter.check(("signup.address", "10.0.0.1")).allowed for _ in range(3)]
    assert answers == [True, True, False]
    warnings = [r for r in caplog.records if "Redis unreachable" in r.getMessage()]
    assert len(warnings) == 1


def test_rate_limits_off_allows_everything():
    limiter = Limiter({"message.user": parse_rates("1/hour")}, enabled=False)
    assert all(limiter.check(("message.user", 1)).allowed for _ in range(10))


def test_every_client_event_declares_its_rate_limit():
    # client events are declared with client_event(name, limit=...) (app/realtime/dispatch.py);
    # Flask-SocketIO handles only the connection's lifecycle, so nothing bypasses the limits
    from app.realtime.dispatch import CLIENT_EVENTS

    assert {event for event, _handler, _ns in socketio.handlers} == {"connect", "disconnect"}
    assert set(CLIENT_EVENTS) >= {"join", "leave", "message"}
    for event, (_handler, name) in CLIENT_EVENTS.items():
        assert f"{name}.user" in DEFAULT_LIMITS and f"{name}.connection" in DEFAULT_LIMITS, event


@pytest.mark.parametrize("setting, limited", [("", True), ("on", True), ("off", False)])
def test_the_docker_nginx_conf_follows_rate_limits(setting, limited):
    script = ROOT / "deploy" / "docker" / "render-nginx-conf.py"
    env = {**os.environ, "RATE_LIMITS": setting}
    conf = subprocess.run(
        [sys.executable, str(script)], env=env, capture_output=True, text=True, check=True
    ).stdout
    for directive in ("limit_req zone=chat_auth", "limit_req zone=chat_requests", "limit_conn "):
        assert (directive in conf) is limited
