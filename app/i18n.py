"""Languages: English and Brazilian Portuguese through Flask-Babel.

The locale comes from the `lang` cookie the switcher sets, else from Accept-Language,
else English. Socket.IO handlers run in a request context built from the handshake,
so their acks follow the same rule.

Catalogs live in app/translations as .po files; the .mo files gettext reads are built
from them (`python -m app.i18n`, `make translations`) and, when missing or stale, at
app start, so a fresh clone and a `pip install .` both work.
"""

from __future__ import annotations

import os
import sys
import tempfile
from datetime import datetime
from pathlib import Path

from flask import (
    Blueprint,
    Flask,
    has_request_context,
    redirect,
    request,
    url_for,
)
from flask_babel import format_timedelta, get_locale
from flask_babel import gettext as _

from app.extensions import babel
from app.models import utcnow
from app.security import safe_redirect_target

TRANSLATIONS_DIR = Path(__file__).parent / "translations"
DEFAULT_LOCALE = "en"
# code -> the language's own name, shown in the switcher
LANGUAGES = {"en": "English", "pt_BR": "Português (Brasil)"}
_ACCEPTED = {code.replace("_", "-"): code for code in LANGUAGES} | {
    code.split("_")[0]: code for code in LANGUAGES
}
LOCALE_COOKIE = "lang"
LOCALE_COOKIE_MAX_AGE = 365 * 24 * 3600
# pages reached by POST re-render a GET page: switching language goes back to that page
_PAGE_OF_POST = {
    "accounts.signup": "accounts.signup_page",
    "accounts.login": "accounts.index",
    "rooms.create_chat": "rooms.dashboard",
}

bp = Blueprint("i18n", __name__)


@bp.post("/lang")
def switch_language():
    """The language switcher: remember the choice in a cookie, then go back to the page."""
    locale = request.form.get("locale", "")
    target = safe_redirect_target(request.form.get("next"), url_for("accounts.index"))
    response = redirect(target, code=303)
    if locale in LANGUAGES:
        response.set_cookie(
            LOCALE_COOKIE,
            locale,
            max_age=LOCALE_COOKIE_MAX_AGE,
            samesite="Lax",
            secure=request.is_secure,
            httponly=True,
        )
    return response


def return_path() -> str:
    """Where the switcher sends the user back to: this page, or the GET page of a POST."""
    if request.method == "GET":
        return safe_redirect_target(request.full_path.rstrip("?"), url_for("accounts.index"))
    endpoint = _PAGE_OF_POST.get(request.endpoint or "", "accounts.index")
    return url_for(endpoint)


def select_locale() -> str:
    if not has_request_context():
        return DEFAULT_LOCALE
    chosen = request.cookies.get(LOCALE_COOKIE)
    if chosen in LANGUAGES:
        return chosen
    # each language also answers to its bare primary tag: "pt-PT" gets pt_BR, "en-GB" gets en
    best = request.accept_languages.best_match(list(_ACCEPTED))
    return _ACCEPTED[best] if best else DEFAULT_LOCALE


def current_locale() -> str:
    locale = get_locale()
    return str(locale) if locale is not None else DEFAULT_LOCALE


def html_lang() -> str:
    """The locale as a BCP 47 tag for <html lang> and Intl in the browser."""
    return current_locale().replace("_", "-")


def time_since(moment: datetime) -> str:
    """How long ago a stored (naive UTC) time was, in words: "5 minutes ago", "há 5 minutos"."""
    delta = moment - utcnow()
    if abs(delta.total_seconds()) < 60:
        return _("just now")
    return format_timedelta(delta, granularity="minute", add_direction=True)


def init_app(app: Flask) -> None:
    directory = ensure_compiled(TRANSLATIONS_DIR, Path(app.instance_path) / "translations")
    app.config.setdefault("BABEL_DEFAULT_LOCALE", DEFAULT_LOCALE)
    app.config["BABEL_TRANSLATION_DIRECTORIES"] = str(directory)
    babel.init_app(app, locale_selector=select_locale)

    @app.context_processor
    def language_context():
        return {
            "languages": LANGUAGES,
            "current_locale": current_locale(),
            "html_lang": html_lang(),
            "since": time_since,
            "language_return_path": return_path() if has_request_context() else "/",
        }


def ensure_compiled(source: Path, fallback: Path) -> Path:
    """Build each stale .mo next to its .po; an installed, read-only package builds into `fallback`.

    Returns the directory Flask-Babel should read.
    """
    catalogs = sorted(source.glob("*/LC_MESSAGES/*.po"))
    if all(_fresh(po, po.with_suffix(".mo")) for po in catalogs):
        return source
    try:
        compile_catalogs(source, source)
        return source
    except OSError:
        compile_catalogs(source, fallback)
        return fallback


def compile_catalogs(source: Path, target: Path) -> list[Path]:
    """Compile every source/<locale>/LC_MESSAGES/*.po into target/...; returns the .mo paths."""
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    written = []
    for po in sorted(source.glob("*/LC_MESSAGES/*.po")):
        mo = target / po.relative_to(source).with_suffix(".mo")
        if _fresh(po, mo):
            continue
        with po.open("rb") as fh:
            catalog = read_po(fh, locale=po.parent.parent.name)
        mo.parent.mkdir(parents=True, exist_ok=True)
        # several workers may start at once: each writes its own file, then renames it into place
        fd, tmp = tempfile.mkstemp(dir=mo.parent, suffix=".mo.tmp")
        try:
            with os.fdopen(fd, "wb") as out:
                write_mo(out, catalog)
            os.replace(tmp, mo)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        written.append(mo)
    return written


def _fresh(po: Path, mo: Path) -> bool:
    return mo.exists() and mo.stat().st_mtime >= po.stat().st_mtime


if __name__ == "__main__":
    # `python -m app.i18n`: compile the catalogs in place (the Makefile and image builds run it)
    for path in compile_catalogs(TRANSLATIONS_DIR, TRANSLATIONS_DIR):
        print(f"compiled {path}")
    sys.exit(0)
