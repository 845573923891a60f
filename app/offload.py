"""CPU-heavy calls (password hashing) off the gevent hub, in a small pool of OS threads.

Guarantee: `run(fn, *args)` returns what `fn(*args)` returns, or raises what it raises; the
calling greenlet waits while the worker's other greenlets (every socket of that worker) keep
running. It helps only when `fn` releases the GIL, as argon2-cffi's hashing does.

When it applies: only in a gevent-patched process (`flask-chat serve`, gunicorn's gevent
worker) with `PASSWORD_HASH_THREADS` > 0. Elsewhere (tests in threading mode, the CLI, or
`PASSWORD_HASH_THREADS=0`) `fn` runs directly in the caller. At most that many hashes run at
once per process; later callers queue. The threads are made on first use in the process
that uses them (so a pool never crosses a fork) and are daemons (nothing to join at exit).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class CpuPool:
    def __init__(self, size: int, *, enabled: bool):
        self.size = size
        self.enabled = enabled and size > 0
        self._pool = None
        self._pid = 0
        self._lock = threading.Lock()

    def run(self, fn: Callable[..., T], *args) -> T:
        if not self.enabled:
            return fn(*args)
        return self._threadpool().apply(fn, args)

    def _threadpool(self):
        if self._pool is None or self._pid != os.getpid():
            with self._lock:
                if self._pool is None or self._pid != os.getpid():
                    from gevent.threadpool import ThreadPool

                    self._pool = ThreadPool(self.size)
                    self._pid = os.getpid()
        return self._pool
