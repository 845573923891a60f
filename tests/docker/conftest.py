"""Fixtures for the container tests: a real Docker engine, the images built once per session.

Under CI=true (or FLASK_CHAT_DOCKER_STANDINS=1) deploy/docker/ci-prepare.sh runs first: it
starts the engine and builds the stand-in base images, the wheelhouse and the npm cache
(all cached), because this kind of machine has no container registry.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from compose_helpers import CI_PREPARE, ENV_FILE, ComposeStack, base_environment, compose_command
from servers import IN_CI

pytestmark = pytest.mark.slow


def _engine_answers() -> tuple[bool, str]:
    try:
        done = subprocess.run(
            ["docker", "info", "--format", "{{.ServerVersion}}"],
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, f"docker info failed: {exc}"
    return done.returncode == 0, done.stderr.strip()[-300:]


@pytest.fixture(scope="session")
def compose_env(needs) -> dict[str, str]:
    """The environment for docker-compose, with the stack's images built (layer cache kept)."""
    if IN_CI or os.environ.get("FLASK_CHAT_DOCKER_STANDINS") == "1":
        needs(os.geteuid() == 0, "deploy/docker/ci-prepare.sh needs root (apt, dockerd)")
        done = subprocess.run(
            ["bash", str(CI_PREPARE), str(ENV_FILE)],
            capture_output=True,
            text=True,
            timeout=1200,
            check=False,
        )
        assert done.returncode == 0, f"ci-prepare.sh failed:\n{done.stderr[-4000:]}"
    needs(shutil.which("docker") is not None, "no docker CLI on PATH")
    needs(shutil.which("docker-compose") is not None, "no docker-compose on PATH")
    answers, why = _engine_answers()
    needs(answers, f"no Docker engine answers: {why}")
    env = base_environment()
    # build both targets once; later runs reuse every unchanged layer
    compose_command(
        {**env, "SECRET_KEY": "build-only", "REDIS_PASSWORD": "build-only"}, "build", timeout=900
    )
    return env


@pytest.fixture(scope="module")
def stack(compose_env):
    """The compose stack with 2 app replicas on SQLite (the default), down -v at the end."""
    running = ComposeStack(compose_env, replicas=2)
    try:
        running.up()
    except AssertionError:
        print(running.logs())
        running.down()
        raise
    yield running
    if running.leftovers()["containers"]:
        print(running.logs())
    running.down()
