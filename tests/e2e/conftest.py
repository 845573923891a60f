import pytest

from livechat import start_serve


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """The real `flask-chat serve` on a free port: the embedded default (SQLite, one process)."""
    server, base = start_serve(tmp_path_factory.mktemp("serve"))
    try:
        yield base
    finally:
        server.stop()
