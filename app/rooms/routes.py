"""Dashboard, room creation, the room page and the history API."""

import re

from flask import current_app, flash, jsonify, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required

from app.errors import InvalidInput, RateLimited, ServiceError
from app.limits import enforce, whole_seconds
from app.rooms import bp, service


@bp.get("/dashboard")
@login_required
def dashboard():
    return render_template("rooms/dashboard.html", rooms=service.list_rooms(), errors={}, values={})


@bp.post("/create_chat")
@login_required
def create_chat():
    values = {"chat_name": request.form.get("chat_name", "")}
    try:
        enforce(("create_room.user", current_user.id))
        chat = service.create_room(current_user, values["chat_name"])
    except RateLimited as exc:
        page = render_template(
            "rooms/dashboard.html",
            rooms=service.list_rooms(),
            errors={"chat_name": exc.detail},
            values=values,
        )
        return page, 429, {"Retry-After": str(whole_seconds(exc.retry_after))}
    except InvalidInput as exc:
        page = render_template(
            "rooms/dashboard.html", rooms=service.list_rooms(), errors=exc.fields, values=values
        )
        return page, 400
    flash(_("Room “%(name)s” created.", name=chat.name), "success")
    return redirect(url_for("rooms.chat_page", chat_id=chat.id), code=303)


@bp.get("/chat/<int(max=2147483647):chat_id>")
@login_required
def chat_page(chat_id: int):
    """The room with its recent history; the page script joins with `since` the last seq shown."""
    chat = service.get_room(chat_id)
    settings = current_app.config["CHAT"]
    page = service.recent_messages(
        chat.id, settings.history_on_join, max_bytes=settings.reply_max_bytes
    )
    return render_template(
        "rooms/chat.html",
        chat=chat,
        messages=[m.to_wire() for m in page.messages],
        more=page.more,
        max_length=settings.message_max_length,
    )


@bp.get("/api/chats/<int(max=2147483647):chat_id>/messages")
@login_required
def history(chat_id: int):
    """One page of scrollback: `before` a seq (newest when absent), `limit` up to 100, and at
    most REPLY_MAX_BYTES of messages; `next_before` continues it."""
    settings = current_app.config["CHAT"]
    before = _int_arg("before", low=1)
    limit = _int_arg("limit", low=1, high=settings.history_page_max)
    chat = service.get_room(chat_id)
    page = service.history_before(
        chat.id, before, limit or settings.history_on_join, max_bytes=settings.reply_max_bytes
    )
    oldest = page.messages[0].seq if page.messages else None
    return jsonify(
        room=chat.id,
        messages=[m.to_wire() for m in page.messages],
        more=page.more,
        next_before=oldest if page.more else None,
    )


def _int_arg(name: str, low: int, high: int | None = None) -> int | None:
    raw = request.args.get(name)
    if raw is None:
        return None
    high = high or service.MAX_ID
    if not re.fullmatch(r"[0-9]{1,10}", raw) or not low <= int(raw) <= high:
        detail = _(
            "%(name)s must be a whole number from %(low)d to %(high)d.",
            name=name,
            low=low,
            high=high,
        )
        raise ServiceError("bad_request", detail)
    return int(raw)
