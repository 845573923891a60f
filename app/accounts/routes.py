"""Sign-up, login and logout pages: the seed's paths and form field names."""

from flask import flash, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required, login_user, logout_user

from app.accounts import bp, service
from app.errors import InvalidInput, RateLimited, ServiceError
from app.limits import enforce, whole_seconds


@bp.get("/")
def index():
    """The login page; logged-in users go straight to their dashboard."""
    if current_user.is_authenticated:
        return redirect(url_for("rooms.dashboard"))
    return render_template("accounts/login.html", errors={}, values={})


@bp.get("/criar_conta")
def signup_page():
    if current_user.is_authenticated:
        return redirect(url_for("rooms.dashboard"))
    return render_template("accounts/signup.html", errors={}, values={})


@bp.post("/criar_conta_redirect")
def signup_redirect():
    return redirect(url_for("accounts.signup_page"), code=303)


@bp.post("/criar_conta_db")
def signup():
    """Create the account from the form, then log the new user in."""
    form = request.form
    values = {k: form.get(k, "") for k in ("username", "email", "idade")}
    try:
        # before the password is hashed: that is what a flood of sign-ups would cost
        enforce(("signup.address", request.remote_addr or "unknown"))
    except RateLimited as exc:
        page = render_template("accounts/signup.html", errors={"form": exc.detail}, values=values)
        return page, 429, {"Retry-After": str(whole_seconds(exc.retry_after))}
    try:
        user = service.register(
            form.get("username", ""),
            form.get("password", ""),
            form.get("email", ""),
            form.get("idade", ""),
        )
    except InvalidInput as exc:
        return render_template("accounts/signup.html", errors=exc.fields, values=values), 400
    _log_in(user)
    flash(_("Welcome, your account is ready."), "success")
    return redirect(url_for("rooms.dashboard"), code=303)


@bp.get("/login")
def login_page():
    return redirect(url_for("accounts.index"))


@bp.post("/login")
def login():
    values = {"username": request.form.get("username", "")}
    try:
        enforce(("login.address", request.remote_addr or "unknown"))
    except RateLimited as exc:
        page = render_template("accounts/login.html", errors={"form": exc.detail}, values=values)
        return page, 429, {"Retry-After": str(whole_seconds(exc.retry_after))}
    try:
        user = service.authenticate(
            request.form.get("username", ""),
            request.form.get("password", ""),
            request.remote_addr or "",
        )
    except ServiceError as exc:
        errors = {"form": exc.detail}
        return render_template("accounts/login.html", errors=errors, values=values), exc.status
    if user is None:
        errors = {"form": _("Wrong username or password.")}
        return render_template("accounts/login.html", errors=errors, values=values), 401
    _log_in(user)
    return redirect(url_for("rooms.dashboard"), code=303)


@bp.get("/logout")
def logout_page():
    """A GET changes nothing (a link from any site must not log anyone out): it shows the
    logout button, which posts with the CSRF token."""
    if not current_user.is_authenticated:
        return redirect(url_for("accounts.index"))
    return render_template("accounts/logout.html")


@bp.post("/logout")
def logout():
    """End the login session on the server too (and its sockets), so the old cookie no
    longer works."""
    if current_user.is_authenticated:
        service.end_session(current_user.get_id())
    logout_user()
    session.clear()
    return redirect(url_for("accounts.index"), code=303)


@bp.get("/account")
@login_required
def account():
    return _account_page({})


@bp.post("/account/password")
@login_required
def change_password():
    """Change the password (the current one first); every other session and socket ends."""
    form = request.form
    try:
        service.change_password(
            current_user,
            form.get("current_password", ""),
            form.get("new_password", ""),
            form.get("confirm_password", ""),
            request.remote_addr or "",
        )
    except InvalidInput as exc:
        return _account_page(exc.fields, 400)
    except ServiceError as exc:
        return _account_page({"current_password": exc.detail}, exc.status)
    flash(_("Your password was changed. Your other sessions were logged out."), "success")
    return redirect(url_for("accounts.account"), code=303)


@bp.post("/account/sessions/end")
@login_required
def end_other_session():
    """End one of the user's other sessions (its sockets close too)."""
    hashed = request.form.get("session", "")
    if hashed == current_user.login_session.token_hash:
        return _account_page({"sessions": _("To end this session, log out.")}, 400)
    if service.end_other_session(current_user, hashed):
        flash(_("That session was logged out."), "success")
    else:
        flash(_("That session had already ended."), "success")
    return redirect(url_for("accounts.account"), code=303)


@bp.post("/account/logout-everywhere")
@login_required
def logout_everywhere():
    """End every session of the user, this one included, and every socket."""
    service.end_all_sessions(current_user)
    logout_user()
    session.clear()
    flash(_("You were logged out everywhere."), "success")
    return redirect(url_for("accounts.index"), code=303)


def _account_page(errors: dict[str, str], status: int = 200):
    this_session = current_user.login_session.token_hash
    page = render_template(
        "accounts/account.html",
        errors=errors,
        values={},
        # this session first, then the others, newest first
        sessions=sorted(
            service.user_sessions(current_user), key=lambda row: row.token_hash != this_session
        ),
        this_session=this_session,
        describe=service.describe_browser,
    )
    return page, status


def _log_in(user) -> None:
    # a fresh session at login: nothing from before it (fixation) survives, and a login
    # session this browser already had ends, with its sockets, rather than living on unseen
    if current_user.is_authenticated:
        service.end_session(current_user.get_id())
    session.clear()
    service.start_session(user, request.headers.get("User-Agent", ""))
    login_user(user)
