"""The Socket.IO message queue between workers: python-socketio's Redis manager, with one
publisher connection that can never take the listener's subscription down.

Why. python-socketio 5.18's `RedisManager` publishes from the greenlet of each emit, and
each publish holds its own connection of one redis-py pool (100 connections at most), the
pool the listener's pub/sub connection also comes from. A burst of about 100 handlers
publishing at once ran the pool out ("Too many connections"); the publish retry then
called `_redis_connect()`, which replaces the client, and the old client, collected,
closed its pool: every connection in it, the listener's subscription included. The
listener logged "Cannot receive from redis", slept a second and subscribed again; what
the other workers published meanwhile never reached this worker's clients
(tests/cluster/test_queue_burst.py).

`RedisQueue` keeps the manager's protocol (the channel, JSON payloads through the server's
codec, `host_id`, every `method`), so workers running it and the stock manager understand
each other, and changes only how it talks to Redis:

- **Publishing.** `_publish` encodes the message in the caller and appends it to this
  process's outbox; one publisher task sends whatever is waiting as one pipeline of
  PUBLISH commands (at most `MAX_BATCH`) on its own connection (a `BlockingConnectionPool`
  of one). Messages leave in the order `_publish` was called in this process, so every
  worker receives one worker's broadcasts in that order. A burst costs one connection and
  a few pipelines instead of a connection and a round trip per message; publishing never
  creates, replaces or closes the listener's client.
- **Listening.** The listener owns its client and its pub/sub connection; only it
  replaces them. After a failure it subscribes again at once, then every
  `LISTEN_BACKOFF_MAX` seconds at most while Redis stays away.

How it fails. Redis pub/sub stays at-most-once (the database is the truth: clients catch
up with `since`). A pipeline that fails (Redis down, the connection cut, no answer within
`REDIS_TIMEOUT`) is dropped, not retried: part of it may have been delivered, and a
retry would deliver that part twice. A connection Redis closed while idle (a restart) is
replaced before anything is sent, so nothing is lost for it. While the outbox holds
`MAX_QUEUED` messages (Redis hung), new ones are dropped. A worker that dies loses what
was still in its outbox, for the other workers' clients. Each outage is logged once when it
starts and once, with the count dropped, when publishing works again; every such line
starts with "Redis message queue".
"""

from __future__ import annotations

import logging
import threading
import time

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from socketio import RedisManager

from app.realtime.fanout import PreframingManager

log = logging.getLogger(__name__)

CHANNEL = "flask-socketio"  # Flask-SocketIO's default: every worker must use the same one
MAX_BATCH = 500  # PUBLISH commands per pipeline
MAX_QUEUED = 10_000  # messages waiting in the outbox before new ones are dropped
REDIS_TIMEOUT = 5.0  # seconds to connect, or for an answer (waiting for messages has no limit)
LISTEN_BACKOFF_MAX = 2.0  # seconds between the listener's attempts while Redis is away
# a subscription that held this long and then failed starts a new outage (retried at once)
STABLE_SECONDS = 10.0


class RedisQueue(RedisManager, PreframingManager):
    """python-socketio's Redis manager with an ordered, pipelined publisher on a connection
    of its own, and a listener that nothing else can disconnect (see the module docstring).

    Its deliveries to this worker's connections (local emits and those other workers
    published) go through `PreframingManager.emit`, which comes after the pub/sub manager
    in the method order: one frame per broadcast (app/realtime/fanout.py)."""

    name = "flask-chat-redis"

    def __init__(self, url: str, channel: str = CHANNEL, **kwargs):
        super().__init__(url, channel=channel, **kwargs)
        self._start_lock = threading.Lock()
        self._outbox = None
        self._queue_empty: type[Exception] = Exception
        self._publisher_client: redis.Redis | None = None
        self._failing_since_drop = 0  # messages dropped in the current outage (0: none)

    # -- publishing -------------------------------------------------------------------

    def _publish(self, data) -> None:
        payload = self.json.dumps(data)
        # not `or`: an empty gevent queue is falsy
        outbox = self._outbox if self._outbox is not None else self._start_publisher()
        if outbox.qsize() >= MAX_QUEUED:
            self._dropped(1, "the outbox is full (Redis does not keep up)")
            return
        outbox.put_nowait(payload)

    def _start_publisher(self):
        with self._start_lock:
            if self._outbox is None:
                eio = self.server.eio
                self._queue_empty = eio.get_queue_empty_exception()
                self._publisher_client = redis.Redis(
                    connection_pool=redis.BlockingConnectionPool.from_url(
                        self.redis_url,
                        max_connections=1,
                        timeout=REDIS_TIMEOUT,
                        socket_timeout=REDIS_TIMEOUT,
                        socket_connect_timeout=REDIS_TIMEOUT,
                        retry=Retry(NoBackoff(), 0),
                        **self.redis_options,
                    )
                )
                self._outbox = eio.create_queue()
                self.server.start_background_task(self._publish_queued)
            return self._outbox

    def _publish_queued(self) -> None:
        """The publisher task: forever, everything waiting in the outbox, in order."""
        while True:
            batch = [self._outbox.get()]
            while len(batch) < MAX_BATCH:
                try:
                    batch.append(self._outbox.get_nowait())
                except self._queue_empty:
                    break
            try:
                self._send(batch)
            except Exception:  # noqa: BLE001 - the publisher must outlive any failure
                log.exception("Redis message queue: publisher error")

    def _send(self, batch: list[str]) -> None:
        pipe = self._publisher_client.pipeline(transaction=False)
        for payload in batch:
            pipe.publish(self.channel, payload)
        try:
            results = pipe.execute(raise_on_error=False)
        except redis.RedisError as exc:
            self._dropped(len(batch), f"{exc.__class__.__name__}: {exc}")
            return
        failed = [r for r in results if isinstance(r, Exception)]
        if failed:
            self._dropped(len(failed), f"{failed[0].__class__.__name__}: {failed[0]}")
        elif self._failing_since_drop:
            log.warning(
                "Redis message queue: publishing again; %d messages were dropped",
                self._failing_since_drop,
            )
            self._failing_since_drop = 0

    def _dropped(self, count: int, reason: str) -> None:
        if not self._failing_since_drop:
            log.error(
                "Redis message queue: cannot publish (%s); dropping messages until it works",
                reason,
            )
        self._failing_since_drop += count

    # -- listening --------------------------------------------------------------------

    def _listen(self):
        """Yield every payload published on the channel, subscribing again after a failure."""
        channel = self.channel.encode("utf-8")
        failures = 0
        while True:
            client = redis.Redis.from_url(
                self.redis_url,
                socket_timeout=REDIS_TIMEOUT,
                socket_connect_timeout=REDIS_TIMEOUT,
                **self.redis_options,
            )
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            subscribed_at = None
            try:
                pubsub.subscribe(self.channel)
                subscribed_at = time.monotonic()
                if failures:
                    log.warning("Redis message queue: listening again after %d tries", failures)
                for message in pubsub.listen():
                    if message["channel"] == channel and message["type"] == "message":
                        yield message["data"]
                reason = "the subscription ended"
            except Exception as exc:  # noqa: BLE001 - any failure: subscribe again
                reason = f"{exc.__class__.__name__}: {exc}"
            finally:
                pubsub.close()
                client.close()
            if subscribed_at is not None and time.monotonic() - subscribed_at > STABLE_SECONDS:
                failures = 0  # a new outage: not one subscription that keeps failing at once
            if not failures:
                log.error("Redis message queue: listener lost its subscription (%s)", reason)
            failures += 1
            self.server.sleep(listen_backoff(failures))


def listen_backoff(failures: int) -> float:
    """Seconds before the listener's next attempt: none after a first failure (a cut
    connection is back at once), then 0.1 s doubling to `LISTEN_BACKOFF_MAX`."""
    if failures <= 1:
        return 0.0
    return min(LISTEN_BACKOFF_MAX, 0.1 * 2 ** (failures - 2))
