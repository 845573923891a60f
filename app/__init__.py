"""flask-chat: a real-time chat service on Flask and Flask-SocketIO.

This module stays import-light on purpose: gevent must monkey-patch the standard
library before Flask, redis or SQLAlchemy are imported (see app/wsgi.py and
app/cli.py), and importing a submodule always imports this file first.
"""


def create_app(settings=None):
    """Build the Flask app; see app.factory.create_app."""
    from app.factory import create_app as _create_app

    return _create_app(settings)
