"""Rooms: the dashboard, room creation, the room page, messages and their history."""

from flask import Blueprint

bp = Blueprint("rooms", __name__, template_folder="templates")

from app.rooms import routes  # noqa: E402,F401  registers the views
