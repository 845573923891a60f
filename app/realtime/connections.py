"""The connection registry: every authenticated Socket.IO connection, on every worker.

Each worker knows its own connections (sid → user, login session, client address,
connected at, the session's absolute deadline). With `REDIS_URL` set, the registry also
keeps a shared index in Redis, so any worker can count a user's or an address's sockets
and find the sockets of a login session wherever they are:

    flask-chat:conn:user:<user id>    sorted set of "<sid> <session hash> <worker id>"
    flask-chat:conn:addr:<address>    sorted set of "<sid>"

The score of every entry is the time it stops counting (now + ENTRY_TTL); each worker
refreshes its own entries every HEARTBEAT seconds. Without Redis (one process) the index
is this process's own table.

What it guarantees:
- Ending a login session (logout, password change, log out everywhere, ending a session
  from the account page) disconnects every socket of that session, on every worker, within
  a second while Redis is up: the sids come from the index and `server.disconnect(sid)`
  publishes a `disconnect` through python-socketio's Redis manager to the worker that
  holds each one. After that no broadcast reaches the client, and the old cookie cannot
  connect again (its session row is gone).
- Every worker sweeps its own connections every second (`sweep`): a socket whose session
  passed its absolute lifetime (`SESSION_MAX_AGE`) is disconnected within about a second
  of the deadline; every SESSION_CHECK seconds the worker re-reads its sessions from the
  database, marking them used (an open, live socket counts as activity for the idle
  timeout) and disconnecting those that were ended or expired. That re-check is what
  covers a revocation published while Redis was down, or one that raced a connect.
- An Engine.IO session that has not completed the Socket.IO CONNECT (no valid login, a
  refused connect, or no CONNECT at all) is closed after `SOCKET_CONNECT_TIMEOUT`.
- Connection limits (`SOCKETS_PER_USER`, `SOCKETS_PER_ADDRESS`) are checked and the new
  connection recorded in one Redis script, so two workers cannot both admit the last slot.

How it fails:
- A worker that dies without cleaning up (SIGKILL) keeps counting for at most ENTRY_TTL
  seconds. A Redis restart empties the index; every worker writes its entries back within
  HEARTBEAT seconds, and until then limits undercount.
- While Redis is unreachable, connections are admitted with the limits counted on this
  worker only (logged, at most once a minute), and ending a session disconnects this
  worker's sockets at once and other workers' at their next database re-check
  (SESSION_CHECK seconds at most).
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass

from flask import Flask

from app.redis_client import app_redis

log = logging.getLogger(__name__)

HEARTBEAT = 2.0  # seconds between two refreshes of this worker's index entries
ENTRY_TTL = 10.0  # seconds an index entry counts without a refresh
SESSION_CHECK_MAX = 5.0  # seconds between two database re-checks of this worker's sessions
PRUNE_EVERY = 600.0  # seconds between two prunes of expired login sessions
SWEEP_EVERY = 1.0
KEY_PREFIX = "flask-chat:conn:"

# check both limits and record the connection in one step (atomic on the Redis server)
_REGISTER_SCRIPT = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[1])
local user_limit = tonumber(ARGV[5])
local address_limit = tonumber(ARGV[6])
if user_limit > 0 and redis.call('ZCARD', KEYS[1]) >= user_limit then return 1 end
if address_limit > 0 and redis.call('ZCARD', KEYS[2]) >= address_limit then return 2 end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[3])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[4])
redis.call('EXPIRE', KEYS[1], ARGV[7])
redis.call('EXPIRE', KEYS[2], ARGV[7])
return 0
"""


@dataclass
class Connection:
    """One authenticated Socket.IO connection held by this worker."""

    sid: str
    user_id: int
    username: str
    session_hash: str
    address: str
    connected_at: float
    deadline: float  # epoch seconds: the session's absolute end
    locale: object = None  # babel Locale of the page that connected: refusals speak it

    @property
    def user_member(self) -> str:
        return f"{self.sid} {self.session_hash} {registry.worker_id}"


@dataclass
class Refusal:
    """Why a connection is refused (`too_many_connections`): which limit, and its size."""

    scope: str  # "user" or "address"
    limit: int


class ConnectionRegistry:
    """This process's connections and its view of the shared index (see the module docstring).

    Owned by the Socket.IO handlers: `register` on connect, `unregister` on disconnect.
    `disconnect_sessions`, `sids_of` and `count` may be called from any request.
    """

    def __init__(self) -> None:
        self.local: dict[str, Connection] = {}
        self.worker_id = ""
        self.redis = None
        self.app: Flask | None = None
        self.user_limit = 0
        self.address_limit = 0
        self.connect_timeout = 5.0
        self.session_check = SESSION_CHECK_MAX
        self._register_script = None
        self._pending: dict[str, float] = {}  # Engine.IO sid → first seen without CONNECT
        self._sweeper = None
        self._last_redis_warning = 0.0
        self._next_heartbeat = 0.0
        self._next_check = 0.0
        self._next_prune = 0.0

    def init_app(self, app: Flask) -> None:
        settings = app.config["CHAT"]
        self.app = app
        self.local = {}
        self._pending = {}
        self.worker_id = settings.worker_id
        limits_on = settings.rate_limits
        self.user_limit = settings.sockets_per_user if limits_on else 0
        self.address_limit = settings.sockets_per_address if limits_on else 0
        self.connect_timeout = settings.socket_connect_timeout
        # often enough that a live socket's session is touched several times per idle timeout
        self.session_check = max(1.0, min(SESSION_CHECK_MAX, settings.session_idle_timeout / 4))
        self.redis = None
        self._register_script = None
        if settings.redis_url:
            self.redis = app_redis(settings.redis_url)
            self._register_script = self.redis.register_script(_REGISTER_SCRIPT)
        app.extensions["connection_registry"] = self
        if settings.async_mode == "gevent" and not settings.testing:
            self.start()

    # -- connections ------------------------------------------------------------------------

    def register(
        self,
        sid: str,
        *,
        user_id: int,
        username: str,
        session_hash: str,
        address: str,
        deadline: float,
        locale=None,
    ) -> Refusal | None:
        """Record a new connection, or say which limit refuses it (nothing recorded then)."""
        conn = Connection(
            sid, user_id, username, session_hash, address, time.time(), deadline, locale
        )
        refusal = None
        if self.redis is not None:
            try:
                now = time.time()
                code = self._register_script(
                    keys=[_user_key(user_id), _address_key(address)],
                    args=[
                        now,
                        now + ENTRY_TTL,
                        conn.user_member,
                        sid,
                        self.user_limit,
                        self.address_limit,
                        int(ENTRY_TTL) + 1,
                    ],
                )
                refusal = self._refusal(int(code))
                if refusal is None:
                    self.local[sid] = conn
                return refusal
            except Exception as exc:  # noqa: BLE001 - Redis down: admit, count locally
                self._redis_failed("registering a connection", exc)
        local = list(self.local.values())
        if self.user_limit and sum(c.user_id == user_id for c in local) >= self.user_limit:
            refusal = self._refusal(1)
        elif self.address_limit and sum(c.address == address for c in local) >= (
            self.address_limit
        ):
            refusal = self._refusal(2)
        if refusal is None:
            self.local[sid] = conn
        return refusal

    def _refusal(self, code: int) -> Refusal | None:
        if code == 1:
            return Refusal("user", self.user_limit)
        if code == 2:
            return Refusal("address", self.address_limit)
        return None

    def unregister(self, sid: str) -> Connection | None:
        """Forget a connection that closed; returns what was known about it."""
        conn = self.local.pop(sid, None)
        if conn is not None and self.redis is not None:
            try:
                pipe = self.redis.pipeline(transaction=False)
                pipe.zrem(_user_key(conn.user_id), conn.user_member)
                pipe.zrem(_address_key(conn.address), sid)
                pipe.execute()
            except Exception as exc:  # noqa: BLE001 - the entry expires by itself
                self._redis_failed("removing a connection", exc)
        return conn

    def sids_of(self, user_id: int, session_hashes: set[str] | None = None) -> set[str]:
        """The sids of the user's connections on every worker (of these sessions only, when
        given). Falls back to this worker's when Redis cannot be asked."""
        wanted = {
            c.sid
            for c in list(self.local.values())
            if c.user_id == user_id and (session_hashes is None or c.session_hash in session_hashes)
        }
        if self.redis is not None:
            try:
                members = self.redis.zrangebyscore(_user_key(user_id), time.time(), "+inf")
            except Exception as exc:  # noqa: BLE001
                self._redis_failed("looking up connections", exc)
                members = []
            for member in members:
                sid, session_hash, _worker = member.decode().split(" ", 2)
                if session_hashes is None or session_hash in session_hashes:
                    wanted.add(sid)
        return wanted

    def count(self, *, user_id: int | None = None, address: str | None = None) -> int:
        """Open connections of a user or an address, on every worker."""
        if self.redis is not None:
            key = _user_key(user_id) if user_id is not None else _address_key(address or "")
            try:
                return int(self.redis.zcount(key, time.time(), "+inf"))
            except Exception as exc:  # noqa: BLE001
                self._redis_failed("counting connections", exc)
        return sum(
            (user_id is not None and c.user_id == user_id)
            or (address is not None and c.address == address)
            for c in list(self.local.values())
        )

    def disconnect_sessions(
        self, user_id: int, session_hashes: set[str], *, everything: bool = False
    ) -> int:
        """Disconnect every socket of these login sessions (all of the user's with
        `everything`), on whichever worker holds it; returns how many were found."""
        if not session_hashes and not everything:
            return 0
        sids = self.sids_of(user_id, None if everything else session_hashes)
        for sid in sids:
            self._disconnect(sid)
        return len(sids)

    def _disconnect(self, sid: str) -> None:
        from app.extensions import socketio

        server = socketio.server
        if server is None:
            return
        try:
            # a local sid is closed here; another worker's through the message queue
            server.disconnect(sid, ignore_queue=sid in self.local)
        except Exception:  # noqa: BLE001 - one broken socket must not keep the others open
            log.exception("disconnecting %s failed", sid)

    # -- the per-worker sweeper -------------------------------------------------------------

    def start(self) -> None:
        """Start this process's sweeper (once)."""
        if self._sweeper is not None:
            return
        from app.extensions import socketio

        self._sweeper = socketio.start_background_task(self._run)

    def _run(self) -> None:
        from app.extensions import socketio

        # the first prune comes after a random part of the interval: workers spread apart
        self._next_prune = time.time() + PRUNE_EVERY * random.uniform(0.1, 1.0)  # noqa: S311
        while True:
            socketio.sleep(SWEEP_EVERY)
            try:
                with self.app.app_context():
                    self.sweep()
            except Exception:  # noqa: BLE001 - the sweeper must outlive any one failure
                log.exception("connection sweep failed")

    def sweep(self, now: float | None = None) -> None:
        """One round of the sweeper (called every second; tests call it directly)."""
        from app.extensions import db

        now = now or time.time()
        for conn in list(self.local.values()):
            if conn.deadline <= now:
                log.info("session of %s expired: closing its socket", conn.username)
                self._disconnect(conn.sid)
        self._close_pending(now)
        if self.redis is not None and now >= self._next_heartbeat:
            self._next_heartbeat = now + HEARTBEAT
            self.heartbeat()
        try:
            if now >= self._next_check and self.local:
                self._next_check = now + self.session_check
                self.check_sessions()
            if now >= self._next_prune:
                self._next_prune = now + PRUNE_EVERY
                from app.accounts.service import prune_expired_sessions

                pruned = prune_expired_sessions()
                if pruned:
                    log.info("pruned %d expired login sessions", pruned)
        finally:
            db.session.remove()

    def check_sessions(self) -> None:
        """Touch the sessions of this worker's sockets; close the sockets of ended ones."""
        from app.accounts.service import live_sessions

        hashes = sorted({c.session_hash for c in list(self.local.values())})
        live: dict = {}
        for start in range(0, len(hashes), 500):
            live.update(live_sessions(hashes[start : start + 500]))
        for conn in list(self.local.values()):
            if conn.session_hash not in live:
                log.info("session of %s ended: closing its socket", conn.username)
                self._disconnect(conn.sid)

    def _close_pending(self, now: float) -> None:
        """Close Engine.IO sessions that never completed the Socket.IO CONNECT in time."""
        from app.extensions import socketio

        server = socketio.server
        if server is None or server.eio is None:
            return
        seen = {}
        for eio_sid in list(server.eio.sockets):
            sid = server.manager.sid_from_eio_sid(eio_sid, "/")
            if sid is not None and server.manager.is_connected(sid, "/"):
                continue
            first = self._pending.get(eio_sid, now)
            seen[eio_sid] = first
            if now - first >= self.connect_timeout:
                try:
                    server.eio.disconnect(eio_sid)
                except Exception:  # noqa: BLE001
                    log.exception("closing an unconnected Engine.IO session failed")
                seen.pop(eio_sid, None)
        self._pending = seen

    def heartbeat(self) -> None:
        """Write this worker's entries back with a fresh expiry (after a Redis restart too)."""
        conns = list(self.local.values())
        if not conns:
            return
        expiry = time.time() + ENTRY_TTL
        ttl = int(ENTRY_TTL) + 1
        try:
            by_key: dict[str, dict[str, float]] = {}
            for conn in conns:
                by_key.setdefault(_user_key(conn.user_id), {})[conn.user_member] = expiry
                by_key.setdefault(_address_key(conn.address), {})[conn.sid] = expiry
            pipe = self.redis.pipeline(transaction=False)
            for key, members in by_key.items():
                pipe.zadd(key, members)
                pipe.expire(key, ttl)
            pipe.execute()
            # a connection that closed while the pipeline ran must not linger until expiry
            gone = [conn for conn in conns if conn.sid not in self.local]
            if gone:
                pipe = self.redis.pipeline(transaction=False)
                for conn in gone:
                    pipe.zrem(_user_key(conn.user_id), conn.user_member)
                    pipe.zrem(_address_key(conn.address), conn.sid)
                pipe.execute()
        except Exception as exc:  # noqa: BLE001
            self._redis_failed("refreshing the connection index", exc)

    def _redis_failed(self, doing: str, exc: Exception) -> None:
        now = time.monotonic()
        if now - self._last_redis_warning >= 60:
            self._last_redis_warning = now
            log.warning(
                "connection registry: Redis failed while %s (%s); counting this worker only",
                doing,
                exc.__class__.__name__,
            )


def _user_key(user_id: int | None) -> str:
    return f"{KEY_PREFIX}user:{user_id}"


def _address_key(address: str) -> str:
    return f"{KEY_PREFIX}addr:{address}"


registry = ConnectionRegistry()


def disconnect_sessions(user_id: int, session_hashes: set[str], *, everything: bool = False):
    """Disconnect every socket of these login sessions on every worker (see the registry)."""
    return registry.disconnect_sessions(user_id, session_hashes, everything=everything)
