"""The FastAPI app: ``create_app(settings, services)`` (docs/api.md is the reference).

Writes are verified here as far as a node could verify them without the channel's state, then
produced to the node's topics, keyed and partitioned like the channel's events; the node that owns
the partition decides (and its refusals appear on ``/v1/events`` as ``payment.rejected``). Every
refusal is ``application/problem+json`` with ``reason``, the refusing ParsecError's class name.
"""

# no `from __future__ import annotations`: FastAPI reads the endpoints' annotations, closures' locals included
import asyncio
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Annotated, Any

import anyio
import anyio.to_thread
from eventsourcing.persistence import OperationalError
from fastapi import Depends, FastAPI, Header, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles
from prometheus_client import make_asgi_app
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Route

from domain.addresses import parse_eth_address
from domain.errors import (
    ChannelIsClosed,
    MalformedMessage,
    ParsecError,
    UnknownChannel,
    WrongChannel,
)
from domain.protocol import SignedInvoice, check_json_depth
from infrastructure.api import metrics
from infrastructure.api.errors import (
    PROBLEM_JSON,
    InternalError,
    InvalidParameter,
    MethodNotAllowed,
    RouteNotFound,
    ServiceUnavailable,
    UnsupportedMediaType,
    problem,
    problem_headers,
    status_of,
)
from infrastructure.api.events import STREAM_TYPES, Cursor, StreamFilter, Tail, sse, sse_id_only
from infrastructure.api.limits import (
    BodyLimitMiddleware,
    RateLimiter,
    RateLimitMiddleware,
    TokenCheck,
    bearer_tokens,
)
from infrastructure.api.models import (
    Channel,
    ChannelPage,
    ControlQueued,
    Health,
    ParticipantBalance,
    ParticipantBalances,
    Payment,
    PaymentPage,
    PaymentQueued,
    Problem,
    Readiness,
    RouteOut,
    Routes,
    Settlement,
    SettlementPage,
)
from infrastructure.api.queries import page
from infrastructure.api.readiness import run_checks
from infrastructure.api.services import ApiServices
from infrastructure.dashboard import STATIC_DIR as DASHBOARD_STATIC
from infrastructure.dashboard import dashboard_router
from infrastructure.routing.pathfinder import DEFAULT_K, DEFAULT_MAX_HOPS, Pathfinder
from infrastructure.schemas.validation import explain as explain_refusal
from infrastructure.settings import Settings
from projections.balances import CHANNELS, participant_balances
from projections.channel_graph import graph_channels
from projections.history import PAYMENTS
from projections.settlements import SETTLEMENTS

log = logging.getLogger("parsec.api")

VERSION = "1"
SEND_TIMEOUT = 15.0  # seconds a produce may wait for the broker's acknowledgement
KEEPALIVE = 15.0  # seconds between keep-alive messages of an idle event stream
STREAM_THREADS = 100  # event streams polling the log at once; more wait their turn (a slower poll, no error)
JSON_TYPES = ("application/json",)

# the control endpoints: path segment -> the request's wire type (infrastructure/node/messages.py)
CONTROL_ACTIONS = {"checkpoint": "checkpoint", "settlement": "settle", "dispute": "dispute"}


def _problems(*codes: int) -> dict[int | str, dict[str, Any]]:
    text = {400: "Malformed JSON or Last-Event-ID", 401: "No bearer token, or not one this API accepts",
            404: "Unknown channel", 413: "Body over PARSEC_API_MAX_BODY_BYTES", 415: "Not application/json",
            422: "Refused: the reason names the check that failed", 429: "Over the client's rate (see Retry-After)",
            503: "A service the request needs did not answer"}
    return {c: {"model": Problem, "description": text[c], "content": {PROBLEM_JSON: {}}} for c in codes}


SIGNED_INVOICE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "One signed invoice as `parsec verify` reads it (docs/protocol.md): amounts are strings of "
                   "ASCII digits in the smallest unit; the signature is EIP-712 over the Payment struct.",
    "required": ["invoiceID", "invoiceSignature", "supplierAddress", "buyerPublicKey", "buyerAddress", "currency",
                 "price", "channel", "hashPointerToPrevious", "sequence", "buyerTotal", "domain"],
    "properties": {
        "invoiceID": {"type": "string", "format": "uuid"},
        "invoiceSignature": {"type": "string", "description": "0x-hex, 65 bytes r||s||v, low s"},
        "supplierAddress": {"type": "string"},
        "buyerPublicKey": {"type": "string", "description": "0x-hex secp256k1 public key"},
        "buyerAddress": {"type": "string"},
        "currency": {"type": "string", "enum": ["ETH", "BTC"]},
        "price": {"type": "string", "pattern": "^[0-9]+$"},
        "channel": {"type": "string", "format": "uuid"},
        "hashPointerToPrevious": {"type": "object", "required": ["transactionID", "transactionHash"], "properties": {
            "transactionID": {"type": "string", "format": "uuid"}, "transactionHash": {"type": "string"}}},
        "sequence": {"type": "integer", "minimum": 1},
        "buyerTotal": {"type": "string", "pattern": "^[0-9]+$"},
        "invoiceType": {"type": "string"},
        "domain": {"type": "object", "required": ["chainId", "verifyingContract"], "properties": {
            "chainId": {"type": "integer"}, "verifyingContract": {"type": "string"}}},
    },
}

CONTROL_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "A participant-signed control request (EIP-712 ChannelRequest, docs/protocol.md), as "
                   "`parsec send checkpoint|settle|dispute` produces it. `type` and `channel` may be left out "
                   "(the path gives them); when given they must match it.",
    "required": ["nonce", "expiry", "signature"],
    "properties": {
        "type": {"type": "string", "enum": ["checkpoint", "settle", "dispute"]},
        "channel": {"type": "string", "format": "uuid"},
        "nonce": {"type": "integer", "minimum": 1, "description": "above the signer's last one on this channel"},
        "expiry": {"type": "integer", "description": "unix seconds"},
        "signature": {"type": "string", "description": "0x-hex, 65 bytes r||s||v, by a participant or the "
                                                       "operator it registered"},
    },
}


class InvalidChannelId(InvalidParameter):
    """A channel id in a path or query that is not a UUID."""


def _channel_id(text: str) -> str:
    try:
        return str(uuid.UUID(text))
    except ValueError:
        raise InvalidChannelId(f"{text[:60]!r} is not a channel id (a UUID)") from None


def _address(text: str) -> str:
    return parse_eth_address(text)  # InvalidAddress (422) when it is not one


def _problem_response(err: ParsecError, request: Request | None = None) -> JSONResponse:
    code = status_of(err)
    metrics.REFUSED.labels(err.reason).inc()
    return JSONResponse(problem(err, status=code), status_code=code, media_type=PROBLEM_JSON,
                        headers=problem_headers(err))


def _json_object(raw: bytes) -> dict[str, Any]:
    try:
        check_json_depth(raw)
    except MalformedMessage as err:
        raise _BadJson(str(err)) from None
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as err:
        raise _BadJson(f"not valid JSON: {err}") from None
    except RecursionError:  # nested deeper than the decoder recurses (well within the body limit)
        raise _BadJson("not valid JSON: nested too deeply") from None
    if not isinstance(data, dict):
        raise MalformedMessage(f"expected a JSON object, got {type(data).__name__}")
    return data


class _BadJson(MalformedMessage):
    """A body that is not JSON at all: 400 (a body that is JSON but not a valid message is 422)."""

    @property
    def reason(self) -> str:
        return "MalformedMessage"


def create_app(settings: Settings, services: ApiServices, *, tokens: Iterable[str] | None = None,
               insecure_no_token: bool = False, limiter: RateLimiter | None = None) -> FastAPI:
    """The API over ``services``; write endpoints need one of ``tokens`` (default: the settings') unless
    ``insecure_no_token`` (then only when no token is configured). Raises ValueError with no token and
    no ``insecure_no_token``: write endpoints are never open by accident."""
    check = TokenCheck(bearer_tokens(settings) if tokens is None else tokens, insecure=insecure_no_token)
    limiter = limiter or RateLimiter(settings.api_rate, settings.api_burst)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await run_in_threadpool(services.start)
        yield
        await run_in_threadpool(services.close)

    app = FastAPI(
        title="Parsec API", version=VERSION, lifespan=lifespan,
        description="Signed payments and control requests in, channels, balances, history, settlements and "
                    "the log's events out. Every refusal is application/problem+json with `reason`, the "
                    "refusing check's name. Amounts are decimal strings of the smallest unit. docs/api.md.",
    )
    app.state.settings = settings
    app.state.services = services

    # ------------------------------------------------------------------ errors
    @app.exception_handler(ParsecError)
    async def refused(request: Request, err: ParsecError) -> JSONResponse:
        if isinstance(err, _BadJson):
            body = problem(err, status=400)
            metrics.REFUSED.labels(err.reason).inc()
            return JSONResponse(body, status_code=400, media_type=PROBLEM_JSON)
        return _problem_response(err, request)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, err: RequestValidationError) -> JSONResponse:
        parts = [f"{'.'.join(str(x) for x in e.get('loc', ()) if x not in ('query', 'path', 'header'))}: "
                 f"{e.get('msg')}" for e in err.errors()]
        return _problem_response(InvalidParameter("; ".join(parts)), request)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, err: StarletteHTTPException) -> JSONResponse:
        if err.status_code == 404:
            return _problem_response(RouteNotFound(f"no endpoint {request.url.path}"), request)
        if err.status_code == 405:
            return _problem_response(MethodNotAllowed(f"{request.method} is not allowed on {request.url.path}"),
                                     request)
        body = {"type": "about:blank", "title": str(err.detail), "status": err.status_code,
                "detail": str(err.detail), "reason": "HTTPError"}
        return JSONResponse(body, status_code=err.status_code, media_type=PROBLEM_JSON)

    @app.exception_handler(ConnectionError)  # StoreUnavailable, SourceUnavailable: the read side went away
    @app.exception_handler(OperationalError)  # the event store (BrokerUnavailableError on Kafka)
    async def unavailable(request: Request, err: Exception) -> JSONResponse:
        log.warning("%s %s: %s: %s", request.method, request.url.path, type(err).__name__, err)
        return _problem_response(ServiceUnavailable(f"{type(err).__name__}: {err}"), request)

    @app.exception_handler(Exception)
    async def crashed(request: Request, err: Exception) -> JSONResponse:
        log.exception("%s %s failed", request.method, request.url.path)
        return _problem_response(InternalError(f"{type(err).__name__}; the server's log has the details"), request)

    # ------------------------------------------------------------------ auth and bodies
    bearer = HTTPBearer(auto_error=False, description="one of PARSEC_API_TOKENS / PARSEC_API_TOKEN_FILE")

    def require_token(request: Request,
                      _: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)] = None) -> None:
        check.check(request.headers.get("authorization"))

    async def json_body(request: Request) -> bytes:
        kind = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if kind not in JSON_TYPES and not (kind.startswith("application/") and kind.endswith("+json")):
            raise UnsupportedMediaType(f"send the body as application/json, not {kind or 'no content type'}")
        return await request.body()

    def _sent(future: Any) -> Any:
        try:
            return future.get(timeout=SEND_TIMEOUT)
        except Exception as err:  # the broker did not acknowledge: the client may send the same bytes again
            raise ServiceUnavailable(f"the broker did not acknowledge the message: {type(err).__name__}: {err}") \
                from err

    def _channel_row(channel: str) -> dict[str, Any]:
        row = services.read_store().load(CHANNELS, (channel,))
        if row is None:
            raise UnknownChannel(f"no channel {channel} in the read models")
        return row

    # ------------------------------------------------------------------ writes
    @app.post("/v1/payments", status_code=202, response_model=PaymentQueued, tags=["writes"],
              summary="Send one signed payment to its channel's node",
              responses=_problems(400, 401, 404, 413, 415, 422, 429, 503),
              openapi_extra={"requestBody": {"required": True, "content": {
                  "application/json": {"schema": SIGNED_INVOICE_SCHEMA}}}})
    async def post_payment(request: Request, _: Annotated[None, Depends(require_token)]) -> PaymentQueued:
        """Verify a signed invoice (form, currency, amounts, the buyer's key and address, the signature),
        check that its channel is known and open, and produce its bytes, unchanged, to the inbound topic
        (keyed by channel). 202: where it went; the node decides whether it extends the channel."""
        raw = await json_body(request)
        # decoded once; SignedInvoice.parse is what `parsec verify` and the node check (amounts ASCII
        # digits only included); ParsecError → 422
        try:
            tx = SignedInvoice.parse(_json_object(raw))
        except ParsecError as err:  # a form error's detail names the schema's path too (schemas/payment/)
            raise explain_refusal(err, "payment", raw) from None
        channel = str(tx.channel)
        row = await run_in_threadpool(_channel_row, channel)
        if row["status"] == "closed":
            raise ChannelIsClosed(f"channel {channel} is closed; nothing more is accepted")
        sent = await run_in_threadpool(lambda: _sent(services.sender().payment(raw, tx.channel)))
        metrics.PRODUCED.labels("payment").inc()
        return PaymentQueued(partition=sent.partition, offset=sent.offset, channel=channel, sequence=tx.sequence)

    async def control(request: Request, channel_id: str, action: str) -> ControlQueued:
        from infrastructure.node.messages import parse_control

        channel = _channel_id(channel_id)
        data = _json_object(await json_body(request))
        wire = CONTROL_ACTIONS[action]
        if data.get("type", wire) != wire:
            raise MalformedMessage(f"this endpoint takes a {wire!r} request, the body is {data.get('type')!r}")
        given = data.get("channel", channel)
        if not isinstance(given, str) or _channel_id(given) != channel:
            raise WrongChannel(f"the body is for channel {given}, the path for {channel}")
        req = parse_control(json.dumps({**data, "type": wire, "channel": channel}).encode())
        req.require_signature()  # UnsignedRequest
        reader = await run_in_threadpool(services.channels)
        ch = await run_in_threadpool(reader.get_channel_aggregate, uuid.UUID(channel))  # UnknownChannel → 404
        auth = req.authenticate(ch.domain)  # BadRequestSignature
        ch.authorize(auth, int(time.time()))  # UnauthorizedRequest, RequestExpired, ReplayedRequest
        sent = await run_in_threadpool(lambda: _sent(services.sender().control(req)))
        metrics.PRODUCED.labels(wire).inc()
        return ControlQueued(partition=sent.partition, offset=sent.offset, channel=channel, type=wire,
                             signer=auth.signer, nonce=auth.nonce, expiry=auth.expiry)

    def _control_route(action: str, summary: str) -> None:
        async def endpoint(request: Request, channel_id: str,
                           _: Annotated[None, Depends(require_token)]) -> ControlQueued:
            return await control(request, channel_id, action)

        endpoint.__doc__ = (f"{summary}: the body is the request signed by a participant of the channel or the "
                            "operator it registered; verified (signature, signer, expiry, nonce) against the "
                            "channel as the event store has it, then produced to the control topic.")
        app.post(f"/v1/channels/{{channel_id}}/{action}", status_code=202, response_model=ControlQueued,
                 tags=["writes"], summary=summary, name=f"post_{action}",
                 responses=_problems(400, 401, 404, 413, 415, 422, 429, 503),
                 openapi_extra={"requestBody": {"required": True, "content": {
                     "application/json": {"schema": CONTROL_SCHEMA}}}})(endpoint)

    _control_route("checkpoint", "Ask for a checkpoint of the channel's head on-chain")
    _control_route("settlement", "Ask for the channel's settlement (stops its payments)")
    _control_route("dispute", "Ask for a disputed settlement with the signed payments since the last checkpoint")

    # ------------------------------------------------------------------ reads
    Limit = Annotated[int, Query(ge=1, le=1000, description="rows per page (at most 1000)")]
    CursorQ = Annotated[str | None, Query(description="the `cursor` of the previous page")]

    def _next(request: Request, cursor: str | None) -> str | None:
        return str(request.url.include_query_params(cursor=cursor)) if cursor else None

    @app.get("/v1/channels", response_model=ChannelPage, tags=["reads"], summary="Channels, by id",
             responses=_problems(422, 429, 503))
    def list_channels(request: Request, limit: Limit = 100, cursor: CursorQ = None,
                      status: Annotated[str | None, Query(description="open, settling or closed")] = None,
                      participant: Annotated[str | None, Query(description="an address: its channels")] = None,
                      ) -> ChannelPage:
        """Every channel of the balances read model: deposits, sent, balances, head, checkpoints, status."""
        where = {"status": status} if status else None
        kwargs: dict[str, Any] = {}
        if participant:
            kwargs = {"any_of": ("participant_a", "participant_b"), "any_value": _address(participant)}
        p = page(services.read_store(), CHANNELS, order=("channel_id",), limit=limit, cursor=cursor, where=where,
                 **kwargs)
        return ChannelPage(items=[Channel.of(r) for r in p.rows], cursor=p.next_cursor,
                           next=_next(request, p.next_cursor))

    @app.get("/v1/channels/{channel_id}", response_model=Channel, tags=["reads"], summary="One channel",
             responses=_problems(404, 422, 429, 503))
    def get_channel(channel_id: str) -> Channel:
        """One channel's balances, head, checkpoints and status."""
        return Channel.of(_channel_row(_channel_id(channel_id)))

    @app.get("/v1/channels/{channel_id}/history", response_model=PaymentPage, tags=["reads"],
             summary="A channel's payments in sequence order", responses=_problems(404, 422, 429, 503))
    def get_history(request: Request, channel_id: str, limit: Limit = 100, cursor: CursorQ = None) -> PaymentPage:
        """Every accepted payment of the channel, in sequence order, with its hash links."""
        channel = _channel_id(channel_id)
        _channel_row(channel)
        p = page(services.read_store(), PAYMENTS, order=("sequence",), limit=limit, cursor=cursor,
                 where={"channel_id": channel})
        return PaymentPage(items=[Payment.of(r) for r in p.rows], cursor=p.next_cursor,
                           next=_next(request, p.next_cursor))

    @app.get("/v1/channels/{channel_id}/settlements", response_model=SettlementPage, tags=["reads"],
             summary="A channel's checkpoints, settlements and disputes", responses=_problems(404, 422, 429, 503))
    def get_settlements(request: Request, channel_id: str, limit: Limit = 100, cursor: CursorQ = None,
                        state: Annotated[str | None, Query(description="requested, submitted, confirmed or "
                                                                        "failed")] = None) -> SettlementPage:
        """Each checkpoint, settlement and dispute of the channel with its on-chain state."""
        channel = _channel_id(channel_id)
        _channel_row(channel)
        where = {"channel_id": channel, **({"state": state} if state else {})}
        p = page(services.read_store(), SETTLEMENTS, order=("sequence", "kind"), limit=limit, cursor=cursor,
                 where=where)
        return SettlementPage(items=[Settlement.of(r) for r in p.rows], cursor=p.next_cursor,
                              next=_next(request, p.next_cursor))

    @app.get("/v1/participants/{address}/balances", response_model=ParticipantBalances, tags=["reads"],
             summary="A participant's totals per currency", responses=_problems(422, 429, 503))
    def get_participant(address: str) -> ParticipantBalances:
        """A participant's deposits, sent, received and balance summed over its channels, one row per
        currency (an address with no channel has none)."""
        who = _address(address)
        rows = participant_balances(services.read_store(), who)
        return ParticipantBalances(address=who, items=[
            ParticipantBalance(currency=r.currency, channels=r.channels, deposited=str(r.deposited), sent=str(r.sent),
                               received=str(r.received), locked=str(r.locked), balance=str(r.balance))
            for r in rows])

    @app.get("/v1/routes", response_model=Routes, response_model_by_alias=True, tags=["reads"],
             summary="Candidate routes for a multi-hop payment", responses=_problems(422, 429, 503))
    def get_routes(
        source: Annotated[str, Query(alias="from", description="the payer's address")],
        target: Annotated[str, Query(alias="to", description="the payee's address")],
        amount: Annotated[str, Query(pattern=r"^[0-9]+$", description="what the payee receives, smallest unit")],
        currency: Annotated[str | None, Query(description="the channels' currency (default: the payer's)")] = None,
        k: Annotated[int, Query(ge=1, le=10, description="at most this many routes")] = DEFAULT_K,
        max_hops: Annotated[int, Query(ge=1, le=20, description="at most this many channels per route")]
        = DEFAULT_MAX_HOPS,
    ) -> Routes:
        """Up to ``k`` routes from the payer to the payee over the graph read model, cheapest first: each
        hop carries the amount plus the fees of the forwarders after it, every channel has the capacity
        for it (``parsec route``). No route: 422 with the reason (UnknownParty, NoPath,
        InsufficientCapacity, AmbiguousCurrency)."""
        payer, payee = _address(source), _address(target)
        finder = Pathfinder(graph_channels(services.read_store()))
        cur = finder.currency_for(payer, currency)
        value = int(amount)
        routes = finder.routes(payer, payee, value, now=int(time.time()), k=k, max_hops=max_hops, currency=cur)
        return Routes(currency=cur, amount=str(value), items=[RouteOut.of(r) for r in routes])

    # ------------------------------------------------------------------ the log
    limiters: list[anyio.CapacityLimiter] = []

    def stream_threads() -> anyio.CapacityLimiter:
        """The event streams' polls wait on threads of their own: open streams never take the threads
        that the other endpoints run on (made on first use, inside the server's event loop)."""
        if not limiters:
            limiters.append(anyio.CapacityLimiter(STREAM_THREADS))
        return limiters[0]

    @app.get("/v1/events", tags=["events"], summary="Server-sent events from the log, resumable",
             response_class=StreamingResponse,
             responses={200: {"description": "text/event-stream: `event:` one of " + ", ".join(STREAM_TYPES)
                              + "; `id:` the cursor to resume from (Last-Event-ID)",
                              "content": {"text/event-stream": {"schema": {"type": "string"}}}},
                        **_problems(400, 422, 429, 503)})
    async def events(
        request: Request,
        last_event_id: Annotated[str | None, Header(alias="Last-Event-ID", description="resume after this id")] = None,
        start: Annotated[str, Query(alias="from", pattern="^(now|start)$",
                                    description="without Last-Event-ID: `now` (the heads) or `start`")] = "now",
        channel: Annotated[str | None, Query(description="only this channel's events")] = None,
        types: Annotated[str | None, Query(description="comma-separated event types")] = None,
        limit: Annotated[int | None, Query(ge=1, description="close the stream after this many events")] = None,
        cursor: Annotated[str | None, Query(description="Last-Event-ID as a query parameter (for clients "
                                                        "that cannot set headers)")] = None,
    ) -> StreamingResponse:
        """Accepted payments, refused messages (with their reasons), deposits, checkpoints, settlement and
        dispute requests, closes, and the settler's transactions, as they reach the log. Each event's id
        is a cursor (`<log>:<partition>:<position>`, comma-separated): reconnecting with it as
        Last-Event-ID resumes with no gap and no repeat."""
        keep = StreamFilter.of(channel, types)
        resume = Cursor.parse(last_event_id or cursor)
        readers = await run_in_threadpool(services.readers)
        try:
            tail = await run_in_threadpool(lambda: Tail(readers, resume, from_now=start == "now", keep=keep))
        except BaseException:
            for reader in readers:
                reader.close()
            raise

        async def stream() -> AsyncIterator[str]:
            sent = 0
            try:
                yield "retry: 2000\n" + sse_id_only(tail.id)
                quiet_since = time.monotonic()
                last_id = tail.id
                while not await request.is_disconnected():
                    batch = await anyio.to_thread.run_sync(tail.poll, 1.0, limiter=stream_threads())
                    for event_id, ev in batch:
                        yield sse(event_id, ev)
                        sent += 1
                        if limit is not None and sent >= limit:
                            return
                    if batch:
                        quiet_since, last_id = time.monotonic(), tail.id
                    elif time.monotonic() - quiet_since >= KEEPALIVE or (tail.id != last_id and not batch):
                        # keep the connection alive, and hand the client the cursor past what a filter skipped
                        yield sse_id_only(tail.id, "keep-alive")
                        quiet_since, last_id = time.monotonic(), tail.id
            finally:
                await asyncio.shield(run_in_threadpool(tail.close))

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    # ------------------------------------------------------------------ health
    @app.get("/healthz", response_model=Health, tags=["health"], summary="The process is alive")
    async def healthz() -> Health:
        return Health(status="ok")

    @app.get("/readyz", response_model=Readiness, tags=["health"],
             summary="The broker, the read-model database and the chain are reachable",
             responses={503: {"model": Readiness, "description": "at least one check failed (see `failed`)"}})
    async def readyz() -> JSONResponse:
        """Each check with a timeout of PARSEC_API_READY_TIMEOUT seconds; 503 when any fails."""
        checks = await run_in_threadpool(run_checks, services.checks, settings.api_ready_timeout)
        failed = [name for name, c in checks.items() if not c["ok"]]
        body = Readiness(status="unready" if failed else "ready", checks=checks, failed=failed)
        return JSONResponse(body.model_dump(), status_code=503 if failed else 200)

    app.router.routes.append(Route("/metrics", endpoint=_AsgiApp(make_asgi_app()), include_in_schema=False))

    # the web dashboard (docs/dashboard.md): HTML pages over the same read models and log, reads only
    app.include_router(dashboard_router(services))
    app.mount("/dashboard/static", StaticFiles(directory=str(DASHBOARD_STATIC)), name="dashboard-static")

    # outermost last: the metrics see every answer, the rate limit runs before a body is read
    app.add_middleware(BodyLimitMiddleware, limit=settings.api_max_body_bytes)
    app.add_middleware(RateLimitMiddleware, limiter=limiter)
    app.add_middleware(metrics.MetricsMiddleware)
    return app


class _AsgiApp:
    """prometheus_client's ASGI app as a route's endpoint (a plain function would be taken for a handler)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)


def openapi_document(settings: Settings | None = None) -> dict[str, Any]:
    """The app's OpenAPI document (docs/openapi.json; ``parsec api --openapi`` prints it)."""
    from infrastructure.api.services import unwired

    return create_app(settings or Settings.from_env({}), unwired(), insecure_no_token=True).openapi()
