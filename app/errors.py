"""Errors the service layer raises; each transport turns them into a reply users can read."""

from __future__ import annotations


class ServiceError(Exception):
    """A refused request: `code` is stable for programs, `detail` is for people."""

    status = 400

    def __init__(self, code: str, detail: str, status: int | None = None):
        super().__init__(detail)
        self.code = code
        self.detail = detail
        if status is not None:
            self.status = status

    def to_ack(self) -> dict:
        return {"ok": False, "error": self.code, "detail": self.detail}


class InvalidInput(ServiceError):
    """One or more form fields are wrong; `fields` maps each to its message."""

    def __init__(self, fields: dict[str, str]):
        super().__init__("invalid", "; ".join(fields.values()), 400)
        self.fields = fields


class NotFound(ServiceError):
    status = 404


class RateLimited(ServiceError):
    """Too many requests for one of the abuse limits (app/limits.py): wait `retry_after` seconds."""

    status = 429

    def __init__(self, detail: str, retry_after: float):
        super().__init__("rate_limited", detail, 429)
        self.retry_after = retry_after

    def to_ack(self) -> dict:
        return {**super().to_ack(), "retry_after": round(self.retry_after, 3)}
