"""Connection limits in one process (the Flask-SocketIO test client), and RATE_LIMITS=off.

Across workers and over the real server: tests/e2e/test_sessions_and_limits.py, tests/cluster.
"""

import pytest

from app.extensions import socketio


@pytest.fixture(params=[True, False], ids=["limits-on", "limits-off"])
def settings(settings, request):
    settings.sockets_per_user = 2
    settings.rate_limits = request.param
    return settings


def test_sockets_per_user_follow_the_limit_unless_rate_limits_are_off(
    app, accounts, socket_for, settings
):
    alice = accounts.logged_in_client()
    first, second = socket_for(alice), socket_for(alice)
    assert first.is_connected() and second.is_connected()
    third = socketio.test_client(app, flask_test_client=alice)
    assert third.is_connected() is (not settings.rate_limits)
    if third.is_connected():
        third.disconnect()
    # a closed socket frees its slot
    second.disconnect()
    assert socket_for(alice).is_connected()
