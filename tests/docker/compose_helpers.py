"""Drive the real docker-compose stack from tests: one compose project per stack, torn down."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from pathlib import Path

from livechat import ROOT, free_port, wait_until

ENV_FILE = ROOT / ".cache" / "docker-images.env"
CI_PREPARE = ROOT / "deploy" / "docker" / "ci-prepare.sh"


def read_env_file(path: Path) -> dict[str, str]:
    pairs = {}
    for line in path.read_text().splitlines():
        name, sep, value = line.strip().partition("=")
        if sep and not name.startswith("#"):
            pairs[name] = value
    return pairs


def compose_command(env: dict[str, str], *args: str, timeout: float = 300, check: bool = True):
    done = subprocess.run(
        ["docker-compose", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and done.returncode != 0:
        raise AssertionError(
            f"docker-compose {' '.join(args)} exited {done.returncode}:\n"
            f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        )
    return done


def docker(*args: str, timeout: float = 60) -> str:
    done = subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    assert done.returncode == 0, f"docker {' '.join(args)}: {done.stderr[-2000:]}"
    return done.stdout


class ComposeStack:
    """`docker-compose up` of the repository's compose file under a unique project name."""

    def __init__(self, base_env: dict[str, str], replicas: int = 2, extra_env=None):
        self.project = f"fctest{uuid.uuid4().hex[:8]}"
        self.port = free_port()
        self.replicas = replicas
        self.env = {
            **base_env,
            "COMPOSE_PROJECT_NAME": self.project,
            "HTTP_PORT": str(self.port),
            "SECRET_KEY": uuid.uuid4().hex * 2,
            "REDIS_PASSWORD": uuid.uuid4().hex,
            # requests never sends a Secure cookie over http (browsers do, on localhost)
            "SESSION_COOKIE_SECURE": "false",
            **(extra_env or {}),
        }
        self.url = f"http://127.0.0.1:{self.port}"

    def compose(self, *args: str, timeout: float = 300, check: bool = True):
        return compose_command(self.env, *args, timeout=timeout, check=check)

    def up(self) -> None:
        # --no-build: the session fixture built the images once
        self.compose("up", "-d", "--no-build", "--scale", f"app={self.replicas}", timeout=240)

    def down(self) -> None:
        self.compose("down", "-v", "--remove-orphans", "--timeout", "20", timeout=120)

    def logs(self) -> str:
        return self.compose("logs", "--no-color", "--tail", "60", check=False).stdout[-8000:]

    def container_ids(self, service: str | None = None) -> list[str]:
        label = [f"label=com.docker.compose.project={self.project}"]
        if service:
            label.append(f"label=com.docker.compose.service={service}")
        filters = [arg for f in label for arg in ("--filter", f)]
        return docker("ps", "-a", "-q", "--no-trunc", *filters).split()

    def inspect(self, container: str) -> dict:
        return json.loads(docker("inspect", container))[0]

    def health(self, container: str) -> str:
        return self.inspect(container)["State"].get("Health", {}).get("Status", "none")

    def container_of_worker(self, worker: str) -> str:
        """The app container whose process reported `worker` (WORKER_ID = hostname:pid)."""
        hostname = worker.split(":", 1)[0]
        for container in self.container_ids("app"):
            if self.inspect(container)["Config"]["Hostname"] == hostname:
                return container
        raise AssertionError(f"no app container has hostname {hostname}")

    def wait_healthy(self, container: str, timeout: float = 90) -> None:
        wait_until(lambda: self.health(container) == "healthy", timeout, f"{container} healthy")

    def leftovers(self) -> dict[str, list[str]]:
        """Containers, networks and volumes docker still has for this project."""
        label = f"label=com.docker.compose.project={self.project}"
        return {
            "containers": docker("ps", "-a", "-q", "--filter", label).split(),
            "networks": docker("network", "ls", "-q", "--filter", label).split(),
            "volumes": docker("volume", "ls", "-q", "--filter", label).split(),
        }


def base_environment() -> dict[str, str]:
    """The process environment plus the image variables (stand-ins here, if prepared)."""
    env = {k: v for k, v in os.environ.items() if k != "COMPOSE_PROFILES"}
    if ENV_FILE.exists():
        env.update(read_env_file(ENV_FILE))
    # test tags, so a run never replaces an operator's flask-chat:latest
    env.update({"APP_IMAGE": "flask-chat:test", "WEB_IMAGE": "flask-chat-web:test"})
    env.update({"DOCKER_BUILDKIT": "0", "COMPOSE_DOCKER_CLI_BUILD": "0"})
    return env
