"""Real time: the Socket.IO events (join, leave, message) and room broadcasts."""

from app.realtime import events  # noqa: F401  registers the handlers
