"""Security rules every transport shares: redirect targets, response headers, allowed origins.

- `safe_redirect_target`: the only way a redirect target taken from the request becomes a
  Location. Only a path on this site passes; anything else gives the fallback.
- `install_security_headers`: CSP, nosniff, Referrer-Policy, framing, HSTS behind TLS and
  `Cache-Control: no-store` on every response Flask makes (static files stay cacheable).
- `origin_checker`: the Origin rule of the Socket.IO handshake, handed to Engine.IO. The
  same origin is the scheme and host the app trusts (ProxyFix, as FORWARDED_HOPS says, has
  already applied X-Forwarded-* to the environ); `ALLOWED_ORIGINS` adds to it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from urllib.parse import quote

from flask import Flask, request

# longer targets are not pages of this site
MAX_REDIRECT_TARGET = 2048
# what may stay unescaped in a Location path and query; the rest is percent-encoded
_URL_SAFE = "/?&=%#:@!$'()*+,;~-._"
# C0 controls, space and DEL: browsers strip some (tab, CR, LF) and split headers on others
_UNSAFE_CHARS = re.compile(r"[\x00-\x20\x7f\\]")

# no inline script or style anywhere: the pages load chat.js and the stylesheet from /static/.
# 'self' in connect-src covers the page's own ws:/wss: origin (CSP level 3; Chromium checked
# by tests/browser)
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
HSTS = "max-age=31536000"


def safe_redirect_target(target: object, fallback: str) -> str:
    """`target` if it is a path on this site, else `fallback`; the result is a safe Location.

    A same-site path starts with one "/" followed by anything but "/" or "\\". Control
    characters, spaces and backslashes are refused outright (browsers drop tab/CR/LF and read
    "\\" as "/", which would turn "/\\t/evil" into "//evil"); other non-ASCII text is
    percent-encoded so the header stays ASCII.
    """
    if not isinstance(target, str) or not target or len(target) > MAX_REDIRECT_TARGET:
        return fallback
    if _UNSAFE_CHARS.search(target):
        return fallback
    if not target.startswith("/") or target.startswith("//"):
        return fallback
    return quote(target, safe=_URL_SAFE)


def install_security_headers(app: Flask) -> None:
    @app.after_request
    def security_headers(response):
        headers = response.headers
        headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("Referrer-Policy", "same-origin")
        headers.setdefault("X-Frame-Options", "DENY")
        if request.is_secure:
            # is_secure follows X-Forwarded-Proto only when FORWARDED_HOPS trusts a proxy
            headers.setdefault("Strict-Transport-Security", HSTS)
        if request.endpoint != "static":
            # pages carry CSRF tokens and user data, API answers user data: never stored
            response.cache_control.no_store = True
            response.cache_control.max_age = None
            response.cache_control.public = False
            headers.pop("Expires", None)
        return response


def normalise_origin(origin: str) -> str:
    """Lower-case scheme and host, without the default port: how browsers send Origin."""
    origin = origin.strip().lower()
    for scheme, port in (("http://", ":80"), ("https://", ":443")):
        if origin.startswith(scheme) and origin.endswith(port):
            return origin[: -len(port)]
    return origin


def same_origin(environ: dict) -> str | None:
    """The origin this request came to, as the app trusts it (after ProxyFix, if any)."""
    scheme = environ.get("wsgi.url_scheme")
    host = environ.get("HTTP_HOST")
    if not scheme or not host:
        return None
    return normalise_origin(f"{scheme}://{host}")


def origin_checker(allowed: Iterable[str] | None) -> Callable[[str | None, dict], bool]:
    """Engine.IO's `cors_allowed_origins` callable: the same origin plus the listed ones.

    Engine.IO's built-in same-origin rule reads X-Forwarded-Host/-Proto whatever
    FORWARDED_HOPS says; this one reads only what ProxyFix left in the environ.
    """
    extra = frozenset(normalise_origin(o) for o in allowed or ())

    def is_allowed(origin: str | None, environ: dict) -> bool:
        if not origin:
            return False
        origin = normalise_origin(origin)
        return origin in extra or origin == same_origin(environ)

    return is_allowed
