"""What the compose stack refuses to start with: no default passwords, no short keys."""

from __future__ import annotations

import pytest

from compose_helpers import ComposeStack, compose_command

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


@pytest.fixture
def unstarted(compose_env):
    stack = ComposeStack(compose_env, replicas=1)
    yield stack
    stack.down()


def test_compose_needs_a_redis_password(unstarted):
    without = {k: v for k, v in unstarted.env.items() if k != "REDIS_PASSWORD"}
    done = compose_command(without, "config", check=False)
    assert done.returncode != 0
    assert "REDIS_PASSWORD is not set" in done.stderr


def test_the_postgres_profile_has_no_default_password(unstarted):
    unstarted.env.update(COMPOSE_PROFILES="postgres", POSTGRES_PASSWORD="")
    done = unstarted.compose("run", "--rm", "-T", "--no-deps", "postgres", check=False, timeout=120)
    assert done.returncode != 0
    said = done.stdout + done.stderr
    # the stand-in's words, then the official image's
    assert "POSTGRES_PASSWORD is not set" in said or "password is not specified" in said, said


def test_the_app_refuses_a_short_secret_key(unstarted):
    unstarted.env["SECRET_KEY"] = "too-short"
    # the image's own command: the entrypoint stops at once instead of retrying for
    # DB_WAIT_SECONDS as it does while a database starts
    done = unstarted.compose("run", "--rm", "-T", "--no-deps", "app", check=False, timeout=120)
    said = done.stdout + done.stderr
    assert done.returncode == 2, said
    assert "SECRET_KEY is too short" in said and "retrying" not in said
