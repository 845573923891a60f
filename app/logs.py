"""Logging to stdout: JSON lines with the worker id in production, plain text otherwise."""

from __future__ import annotations

import json
import logging
import sys
import time

from app.config import Settings


class JsonFormatter(logging.Formatter):
    def __init__(self, worker_id: str):
        super().__init__()
        self.worker_id = worker_id

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "worker": self.worker_id,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(settings: Settings) -> None:
    if settings.testing:
        return  # pytest captures logging itself
    handler = logging.StreamHandler(sys.stdout)
    if settings.log_json:
        handler.setFormatter(JsonFormatter(settings.worker_id))
    else:
        handler.setFormatter(
            logging.Formatter(
                f"%(asctime)s {settings.worker_id} %(levelname)s %(name)s: %(message)s"
            )
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
