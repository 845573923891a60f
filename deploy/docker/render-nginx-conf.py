"""Render nginx/flask-chat.conf.j2 as the nginx.conf of the compose stack's `nginx` image.

    python deploy/docker/render-nginx-conf.py > nginx.conf

The same template `flask-chat cluster` renders, with container values: one upstream name
(`app:8000`, which nginx resolves at start to every replica of the scaled service), port
80, static files baked into the image. Run by the Dockerfile's build stage. Its limits
follow `RATE_LIMITS` as the app reads it (on unless `off`; the build sees it as a build arg).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import jinja2

ROOT = Path(__file__).resolve().parent.parent.parent


def render() -> str:
    template = jinja2.Template(
        (ROOT / "nginx" / "flask-chat.conf.j2").read_text(), trim_blocks=True, lstrip_blocks=True
    )
    return template.render(
        run_as_root=False,
        worker_processes="auto",
        foreground=True,
        # exists in the official image and the stand-in; the master creates the temp dirs
        run_dir="/var/cache/nginx",
        error_log="/dev/stderr",
        access_log="/dev/stdout",
        worker_connections=8192,
        mime_types="/etc/nginx/mime.types",
        upstreams=[os.environ.get("NGINX_UPSTREAM", "app:8000")],
        listen="80",
        static_dir="/usr/share/flask-chat/static",
        strip_ws_compression=True,
        rate_limits=rate_limits_on(),
    )


def rate_limits_on() -> bool:
    """RATE_LIMITS as app/config.py reads it: on unless set to a false value."""
    raw = os.environ.get("RATE_LIMITS", "").strip().lower()
    if raw in {"", "1", "true", "yes", "on"}:
        return True
    if raw in {"0", "false", "no", "off"}:
        return False
    sys.exit(f"RATE_LIMITS must be true or false, got {raw!r}")


if __name__ == "__main__":
    sys.stdout.write(render())
