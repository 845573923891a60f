"""Sign-up, login and logout pages: the seed's paths and form field names."""

from flask import flash, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_user, logout_user

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


@bp.route("/logout", methods=["GET", "POST"])
def logout():
    """End the login session on the server too, so the old cookie no longer works."""
    if current_user.is_authenticated:
        service.end_session(current_user.get_id())
    logout_user()
    session.clear()
    return redirect(url_for("accounts.index"), code=303)


def _log_in(user) -> None:
    # a fresh session at login: nothing from before it (fixation) survives
    session.clear()
    service.start_session(user)
    login_user(user)
