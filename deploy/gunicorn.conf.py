"""gunicorn settings for one flask-chat worker process.

    gunicorn -c deploy/gunicorn.conf.py app.wsgi:app


One gevent worker per process: Flask-SocketIO keeps each client's Engine.IO session in the
process that accepted it, so scale by running more processes behind nginx (see nginx/),
never with `workers > 1`. Every knob has an environment variable.
"""

import os
import signal

# where this process listens; nginx's upstream list names these addresses
bind = [os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")]
worker_class = "gevent"  # needs the gunicorn[gevent] extra; WebSocket through simple-websocket
workers = 1
# open sockets (WebSocket or a pending long-poll each) one process serves at once
worker_connections = int(os.environ.get("WORKER_CONNECTIONS", "2000"))
# after SIGTERM: seconds to let open requests finish once every client was told to go
graceful_timeout = int(os.environ.get("GRACEFUL_TIMEOUT", "10"))
timeout = 30
keepalive = 5
# several gunicorn instances on one host would all claim ~/.gunicorn/gunicorn.ctl
control_socket_disable = True
# the app logs JSON lines with its worker id; nginx keeps the access log if one is wanted
accesslog = None
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "warning")
proc_name = "flask-chat-" + os.environ.get("WORKER_ID", "worker")


def post_worker_init(worker):
    """On SIGTERM, stop accepting, then tell every Socket.IO client to go.

    gunicorn's gevent worker alone only stops accepting (within a second: its run loop
    ticks once per second) and waits up to graceful_timeout for open requests, which for a
    WebSocket means until the timeout kills it. Here every new request is answered 503 at
    once (nginx retries it on the next worker of its hash ring), and once the listener is
    closed each Engine.IO session is dropped, so its client reconnects elsewhere at once.
    """
    import gevent

    from app.shutdown import DrainingMiddleware, close_all_connections, start_draining

    worker.wsgi.wsgi_app = DrainingMiddleware(worker.wsgi.wsgi_app)

    def listeners_closed() -> bool:
        # gunicorn's listener wrapper drops its socket when the gevent server closes it
        return all(getattr(listener, "sock", None) is None for listener in worker.sockets)

    def drain():
        for _ in range(40):  # bounded: at most 2 s, the run loop needs about 1
            if listeners_closed():
                break
            gevent.sleep(0.05)
        else:
            worker.log.warning("listener still open after 2 s; closing connections anyway")
        close_all_connections()

    def on_sigterm(signum, frame):
        start_draining()
        worker.alive = False
        gevent.spawn(drain)

    signal.signal(signal.SIGTERM, on_sigterm)
