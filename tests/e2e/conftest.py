import sys

import pytest

from livechat import ServerProcess, free_port


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """The real `flask-chat serve` on a free port: the embedded default (SQLite, one process)."""
    tmp_path = tmp_path_factory.mktemp("serve")
    port = free_port()
    server = ServerProcess(
        [sys.executable, "-m", "app.cli", "serve", "--port", str(port)],
        env={
            "FLASK_CHAT_INSTANCE": str(tmp_path / "instance"),
            "SECRET_KEY": "",
            "DATABASE_URL": "",
            "REDIS_URL": "",
            "FLASK_CHAT_ENV": "development",
        },
        log_path=tmp_path / "serve.log",
    )
    base = f"http://127.0.0.1:{port}"
    try:
        server.wait_healthy(base + "/healthz")
        yield base
    finally:
        server.stop()
