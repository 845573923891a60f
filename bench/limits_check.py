"""What one rate-limit check costs (app/limits.py): in process, and through Redis.

    python bench/limits_check.py

Starts a private redis-server on a free 127.0.0.1 port, then times the check a Socket.IO
event makes (its `.user` and `.connection` limits) a bounded number of times: wall time
and this process's CPU per check, and Redis's own time per EVALSHA (INFO commandstats).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from app.limits import Limiter, parse_rates  # noqa: E402
from livechat import free_port, wait_until  # noqa: E402

CHECKS = 5000


def time_checks(limiter: Limiter) -> tuple[float, float]:
    """Microseconds per check: wall, and this process's CPU."""
    limiter.check(("message.user", 0), ("message.connection", "warm-up"))
    wall, cpu = time.perf_counter(), time.process_time()
    for i in range(CHECKS):
        limiter.check(("message.user", i % 100), ("message.connection", f"sid{i % 100}"))
    n = CHECKS / 1e6
    return (time.perf_counter() - wall) / n, (time.process_time() - cpu) / n


def main() -> int:
    # never refuses: every check goes the whole way
    rules = {name: parse_rates("1000000/1s") for name in ("message.user", "message.connection")}
    wall, cpu = time_checks(Limiter(rules))
    print(f"in process: {wall:.0f} us wall, {cpu:.0f} us CPU per check")

    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        args = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
        server = subprocess.Popen(
            [*args, "--appendonly", "no", "--dir", tmp], stdout=subprocess.DEVNULL
        )
        try:
            client = redis.Redis(port=port)
            wait_until(lambda: _answers(client), 10, "redis-server")
            wall, cpu = time_checks(Limiter(rules, redis_url=f"redis://127.0.0.1:{port}/0"))
            stats = client.info("commandstats").get("cmdstat_evalsha", {})
            print(
                f"redis: {wall:.0f} us wall, {cpu:.0f} us worker CPU per check (one EVALSHA), "
                f"{stats.get('usec_per_call', 0):.0f} us in Redis per call"
            )
        finally:
            server.terminate()
            server.wait()
    return 0


def _answers(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False


if __name__ == "__main__":
    sys.exit(main())
