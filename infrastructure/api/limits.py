"""The API's limits: bearer tokens for the write endpoints, a rate per client, a body size.

The rate limit is a token bucket per client, in memory: each client (its bearer token when it
sends one, else its address) may make ``burst`` requests at once and ``rate`` a second after
that; a refused request gets 429 with ``Retry-After`` (whole seconds until a request would be
allowed). One process, one set of buckets: behind several API processes each enforces its own.

The body limit is checked twice: a declared ``Content-Length`` over the limit is refused before
anything is read, and a body sent without one (chunked) is refused once it passes the limit.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any

from infrastructure.api.errors import BodyTooLarge, InvalidToken, MissingToken, RateLimited, send_problem
from infrastructure.settings import Settings


# ---------------------------------------------------------------------- tokens
def bearer_tokens(settings: Settings) -> frozenset[str]:
    """The tokens of ``PARSEC_API_TOKENS`` and of the lines of ``PARSEC_API_TOKEN_FILE`` (``#``: a comment)."""
    tokens = set()
    if settings.api_tokens is not None:
        tokens.update(t.strip() for t in settings.api_tokens.get_secret_value().split(","))
    if settings.api_token_file is not None:
        try:
            text = settings.api_token_file.read_text()
        except OSError as err:
            raise ValueError(f"cannot read PARSEC_API_TOKEN_FILE {str(settings.api_token_file)!r}: "
                             f"{err.strerror or err}") from None
        tokens.update(line.split("#", 1)[0].strip() for line in text.splitlines())
    return frozenset(t for t in tokens if t)


class TokenCheck:
    """Whether an ``Authorization`` header carries one of the tokens (compared in constant time).

    ``tokens`` empty and ``insecure`` true: every caller may write (``--insecure-no-token``)."""

    def __init__(self, tokens: Iterable[str], *, insecure: bool = False) -> None:
        # digests of equal length: compare_digest then takes the same time whatever the guess
        self._digests = tuple(hashlib.sha256(t.encode()).digest() for t in tokens)
        self.insecure = insecure and not self._digests
        if not self._digests and not insecure:
            raise ValueError("the API's write endpoints need a bearer token: set PARSEC_API_TOKENS or "
                             "PARSEC_API_TOKEN_FILE (or pass --insecure-no-token, for development only)")

    def check(self, authorization: str | None) -> None:
        if self.insecure:
            return
        if not authorization:
            raise MissingToken("this endpoint needs Authorization: Bearer <token>")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise MissingToken("this endpoint needs Authorization: Bearer <token>")
        digest = hashlib.sha256(token.strip().encode()).digest()
        if not any(hmac.compare_digest(digest, d) for d in self._digests):
            raise InvalidToken("the bearer token is not one this API accepts")


# ---------------------------------------------------------------------- rate
class TokenBucket:
    """``capacity`` requests at once, refilled at ``rate`` a second."""

    __slots__ = ("capacity", "rate", "tokens", "stamp")

    def __init__(self, capacity: float, rate: float, now: float) -> None:
        self.capacity = capacity
        self.rate = rate
        self.tokens = capacity
        self.stamp = now

    def take(self, now: float) -> float:
        """0 if a request may go now (one token taken), else the seconds until one may."""
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate


class RateLimiter:
    """One token bucket per client key; the least recently seen are forgotten past ``max_clients``
    (a forgotten client starts again with a full bucket: memory stays bounded whatever the traffic)."""

    def __init__(self, rate: float, burst: int, *, max_clients: int = 100_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.burst = burst
        self.max_clients = max_clients
        self.clock = clock
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def wait(self, key: str) -> float:
        """0: allowed (and counted); otherwise the seconds to wait."""
        if not self.enabled:
            return 0.0
        now = self.clock()
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = self._buckets[key] = TokenBucket(self.burst, self.rate, now)
                if len(self._buckets) > self.max_clients:
                    self._buckets.popitem(last=False)
            else:
                self._buckets.move_to_end(key)
            return bucket.take(now)


def client_key(scope: dict[str, Any]) -> str:
    """Who a request is, for the rate limit: its bearer token (hashed: the key is kept in memory), else its
    address."""
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return "token:" + hashlib.sha256(token.strip().encode()).hexdigest()[:32]
    client = scope.get("client")
    return "address:" + (client[0] if client else "unknown")


class RateLimitMiddleware:
    """429 with ``Retry-After`` for a client over its rate, on the paths under ``prefix``."""

    def __init__(self, app: Any, limiter: RateLimiter, prefix: str = "/v1/") -> None:
        self.app = app
        self.limiter = limiter
        self.prefix = prefix

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(self.prefix) or not self.limiter.enabled:
            await self.app(scope, receive, send)
            return
        wait = self.limiter.wait(client_key(scope))
        if wait > 0:
            retry = max(1, math.ceil(wait))
            await send_problem(send, RateLimited(
                f"over {self.limiter.rate:g} requests a second (bursts of {self.limiter.burst}); retry in {retry} s",
                headers={"Retry-After": str(retry)}))
            return
        await self.app(scope, receive, send)


# ---------------------------------------------------------------------- body size
class BodyLimitMiddleware:
    """413 for a request body over ``limit`` bytes, declared or streamed."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = 0
                if declared > self.limit:
                    await send_problem(send, BodyTooLarge(
                        f"the body has {declared:,} bytes; this API reads at most {self.limit:,}"))
                    return
        received = 0
        started = False

        async def counted_receive() -> dict[str, Any]:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    # raised inside the route's body read: the app's ParsecError handler answers 413
                    raise BodyTooLarge(f"the body has more than {self.limit:,} bytes; this API reads at most "
                                       f"{self.limit:,}")
            return message

        async def tracked_send(message: dict[str, Any]) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted_receive, tracked_send)
        except BodyTooLarge as err:  # read outside a route (no handler ran): answer here
            if not started:
                await send_problem(send, err)
            else:
                raise
