"""Refusals as RFC 9457 problem details (``application/problem+json``).

Every error the API answers carries ``type``, ``title``, ``status``, ``detail`` and ``reason``:
the name of the ``ParsecError`` class that refused, the same code the node writes on the rejected
topic (``WrongSigner``, ``UnknownChannel``, ...). The refusals that only the HTTP edge makes (a
missing token, a body too large, a rate limit) are ``ParsecError`` subclasses here, so that
``reason`` is always a class name a client can match.
"""

from __future__ import annotations

import json
from typing import Any

from domain.errors import ParsecError

PROBLEM_JSON = "application/problem+json"
TYPE_PREFIX = "urn:parsec:problem:"


class ApiRefusal(ParsecError):
    """A refusal of the HTTP edge; each subclass has its status code."""

    status = 400
    title = "Bad request"

    def __init__(self, detail: str = "", *, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.headers = dict(headers or {})


class MissingToken(ApiRefusal):
    """A write endpoint called without ``Authorization: Bearer <token>``."""

    status = 401
    title = "Authentication required"


class InvalidToken(ApiRefusal):
    """A bearer token that is not one of the configured tokens."""

    status = 401
    title = "Authentication required"


class BodyTooLarge(ApiRefusal):
    status = 413
    title = "Request body too large"


class UnsupportedMediaType(ApiRefusal):
    status = 415
    title = "Unsupported media type"


class RateLimited(ApiRefusal):
    status = 429
    title = "Too many requests"


class InvalidParameter(ApiRefusal):
    """A path or query parameter that does not parse (a limit out of range, a bad cursor)."""

    status = 422
    title = "Invalid parameter"


class InvalidEventId(ApiRefusal):
    """A ``Last-Event-ID`` that is not one this API handed out."""

    status = 400
    title = "Invalid Last-Event-ID"


class RouteNotFound(ApiRefusal):
    status = 404
    title = "Not found"


class MethodNotAllowed(ApiRefusal):
    status = 405
    title = "Method not allowed"


class ServiceUnavailable(ApiRefusal):
    """A service the request needs (the broker, the read-model database, the event store) did not answer."""

    status = 503
    title = "Service unavailable"


class InternalError(ApiRefusal):
    status = 500
    title = "Internal error"


# the domain's refusals: which status each answers with (the first base class found wins)
STATUS_OF: dict[str, int] = {
    "MalformedMessage": 422,
    "UnknownChannel": 404,
    "ParsecError": 422,
}

TITLES = {400: "Bad request", 401: "Authentication required", 404: "Not found", 413: "Request body too large",
          415: "Unsupported media type", 422: "Refused", 429: "Too many requests", 503: "Service unavailable"}


def status_of(err: ParsecError) -> int:
    if isinstance(err, ApiRefusal):
        return err.status
    for klass in type(err).__mro__:
        if klass.__name__ in STATUS_OF:
            return STATUS_OF[klass.__name__]
    return 422


def problem(err: ParsecError, *, status: int | None = None, instance: str | None = None) -> dict[str, Any]:
    """The problem document of ``err``."""
    code = status or status_of(err)
    title = err.title if isinstance(err, ApiRefusal) else TITLES.get(code, "Refused")
    doc: dict[str, Any] = {"type": TYPE_PREFIX + err.reason, "title": title, "status": code,
                           "detail": str(err) or title, "reason": err.reason}
    if instance:
        doc["instance"] = instance
    return doc


def problem_bytes(err: ParsecError, *, status: int | None = None, instance: str | None = None) -> bytes:
    return json.dumps(problem(err, status=status, instance=instance)).encode()


def problem_headers(err: ParsecError) -> dict[str, str]:
    extra = dict(getattr(err, "headers", {}) or {})
    if isinstance(err, MissingToken | InvalidToken):
        extra.setdefault("WWW-Authenticate", 'Bearer realm="parsec"')
    return extra


async def send_problem(send: Any, err: ParsecError, *, status: int | None = None) -> None:
    """Answer with ``err``'s problem document from pure ASGI middleware (before any route runs)."""
    body = problem_bytes(err, status=status)
    headers = [(b"content-type", PROBLEM_JSON.encode()), (b"content-length", str(len(body)).encode())]
    headers += [(k.lower().encode(), v.encode()) for k, v in problem_headers(err).items()]
    await send({"type": "http.response.start", "status": status or status_of(err), "headers": headers})
    await send({"type": "http.response.body", "body": body})
