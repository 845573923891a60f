"""psycopg 3 under gevent: a query waiting on PostgreSQL must let other greenlets run.

psycopg picks its wait function when imported: after gevent's monkey-patching it uses the
patched select/poll (green); imported before, it would use its C wait and block the hub.
app/wsgi.py and gunicorn's gevent worker patch first. This runs a patched process, as a
worker is, and checks the order of events, not timings.
"""

from __future__ import annotations

import json
import subprocess
import sys

from servers import POSTGRES_URL, need, postgres_unreachable

PROBE = r"""
from gevent import monkey
monkey.patch_all()

import json, sys
import gevent
import psycopg
import psycopg.waiting

events = []

def slow_query():
    with psycopg.connect(sys.argv[1]) as conn:
        events.append("query started")
        conn.execute("SELECT pg_sleep(0.5)")
        events.append("query done")

def other_work():
    events.append("other greenlet ran")

query = gevent.spawn(slow_query)
gevent.sleep(0)  # let the query start and block on the server
while "query started" not in events and not query.dead:
    gevent.sleep(0.01)
gevent.spawn(other_work).join()
query.join()
print(json.dumps({"wait": psycopg.waiting.wait.__name__, "events": events,
                  "error": repr(query.exception) if query.exception else None}))
"""


def test_a_postgresql_query_does_not_block_other_greenlets():
    reason = postgres_unreachable()
    need(reason is None, reason or "")
    dsn = POSTGRES_URL.replace("postgresql+psycopg://", "postgresql://", 1)
    done = subprocess.run(
        [sys.executable, "-c", PROBE, dsn], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["error"] is None
    assert result["wait"] != "wait_c"  # the C wait blocks the whole hub
    assert result["events"] == ["query started", "other greenlet ran", "query done"]
