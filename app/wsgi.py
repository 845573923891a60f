"""gunicorn entry point: `gunicorn -c deploy/gunicorn.conf.py app.wsgi:app`."""

from gevent import monkey

monkey.patch_all()

from app import create_app  # noqa: E402  (must come after the patch)

app = create_app()
