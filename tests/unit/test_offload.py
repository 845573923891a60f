"""The password pool: off the calling thread when enabled, in it otherwise; same results."""

import threading

import pytest

from app.accounts import service
from app.offload import CpuPool


def whose_thread() -> int:
    return threading.get_ident()


def test_an_enabled_pool_runs_the_call_in_another_thread_and_returns_its_result():
    pool = CpuPool(2, enabled=True)
    assert pool.run(whose_thread) != threading.get_ident()
    stored = pool.run(service.password_hasher.hash, "correct horse")
    assert pool.run(service._verify, stored, "correct horse") is True
    assert pool.run(service._verify, stored, "wrong horse") is False


def test_an_enabled_pool_raises_what_the_call_raises():
    def boom():
        raise ValueError("from the pool")

    with pytest.raises(ValueError, match="from the pool"):
        CpuPool(1, enabled=True).run(boom)


@pytest.mark.parametrize(("size", "enabled"), [(0, True), (2, False)])
def test_a_disabled_or_empty_pool_runs_in_the_caller(size, enabled):
    assert CpuPool(size, enabled=enabled).run(whose_thread) == threading.get_ident()


def test_the_app_uses_the_pool_only_when_gevent_patched(app):
    # the tests run in threading mode: hashing stays in the request's thread
    assert app.extensions["password_pool"].enabled is False
