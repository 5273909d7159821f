"""The wallet's REST transport against a tiny local HTTP server that speaks the API's contract.

``POST /v1/payments``: the signed invoice JSON as the body, ``Authorization: Bearer <token>``;
202 ``{"partition", "offset", "channel", "sequence"}`` or an ``application/problem+json`` refusal
(``type``, ``title``, ``status``, ``detail``, ``reason``). This server is real (the standard
library's), but it is not Parsec's API: the transport is not yet tested against that here.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from domain.protocol import SignedInvoice
from infrastructure.client import (
    DeliveryUnknown,
    HttpTransport,
    PaymentRefused,
    PaymentState,
    Wallet,
    WalletRecord,
)
from tests.unit.test_wallet import A, terms

TOKEN = "s3cret-token"


class ContractServer(ThreadingHTTPServer):
    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.received: list[bytes] = []
        self.answer: tuple[int, dict] | None = None  # forced answer (status, body) for the next request


class Handler(BaseHTTPRequestHandler):
    server: ContractServer

    def log_message(self, *args: object) -> None:  # keep the test output quiet
        pass

    def _reply(self, status: int, body: dict, problem: bool = False) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/problem+json" if problem else "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _problem(self, status: int, reason: str, detail: str) -> None:
        self._reply(status, {"type": f"https://parsec.example/problems/{reason}", "title": reason,
                             "status": status, "detail": detail, "reason": reason}, problem=True)

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.path != "/v1/payments":
            return self._problem(404, "NotFound", self.path)
        if self.headers.get("Authorization") != f"Bearer {TOKEN}":
            return self._problem(401, "Unauthorized", "a bearer token is required")
        if self.headers.get("Content-Type") != "application/json":
            return self._problem(415, "UnsupportedMediaType", "application/json only")
        if self.server.answer is not None:
            status, doc = self.server.answer
            self.server.answer = None
            return self._reply(status, doc, problem=status >= 400)
        try:
            tx = SignedInvoice.from_json(body)  # validated as the node would
        except Exception as err:
            return self._problem(422, getattr(err, "reason", "MalformedMessage"), str(err))
        self.server.received.append(body)
        self._reply(202, {"partition": 1, "offset": len(self.server.received) - 1, "channel": str(tx.channel),
                          "sequence": tx.sequence})


@pytest.fixture
def server() -> Iterator[ContractServer]:
    srv = ContractServer()
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def url(srv: ContractServer) -> str:
    return f"http://127.0.0.1:{srv.server_address[1]}"


def test_payments_are_posted_with_the_token_and_recorded_with_partition_and_offset(tmp_path, server):
    channel = uuid.uuid4()
    w = Wallet(WalletRecord(tmp_path / "w.sqlite"), A, transport=HttpTransport(url(server), TOKEN))
    w.track(terms(channel))
    first, second = w.pay(channel, 5), w.pay(channel, 6)
    assert server.received == [first.raw, second.raw]  # the exact recorded bytes
    assert (second.state, second.partition, second.offset) == (PaymentState.SENT, 1, 1)


def test_a_problem_refusal_is_recorded_with_its_reason_and_frees_the_sequence(tmp_path, server):
    channel = uuid.uuid4()
    w = Wallet(WalletRecord(tmp_path / "w.sqlite"), A, transport=HttpTransport(url(server), TOKEN))
    w.track(terms(channel))
    server.answer = (404, {"type": "about:blank", "title": "Unknown channel", "status": 404,
                           "detail": f"no channel {channel}", "reason": "UnknownChannel"})
    with pytest.raises(PaymentRefused) as refused:
        w.pay(channel, 5)
    assert (refused.value.reason, refused.value.status) == ("UnknownChannel", 404)
    (p,) = w.payments(channel)
    assert (p.state, p.reason, p.detail) == (PaymentState.REJECTED, "UnknownChannel", f"no channel {channel}")
    assert w.channel(channel).sequence == 0
    assert w.pay(channel, 5).sequence == 1


@pytest.mark.parametrize("status", [401, 503])
def test_answers_that_say_nothing_about_the_payment_leave_it_to_be_resent(tmp_path, server, status):
    channel = uuid.uuid4()
    w = Wallet(WalletRecord(tmp_path / "w.sqlite"), A, transport=HttpTransport(url(server), TOKEN))
    w.track(terms(channel))
    server.answer = (status, {"type": "about:blank", "title": "no", "status": status, "detail": "try later",
                              "reason": "Busy"})
    with pytest.raises(DeliveryUnknown, match=str(status)):
        w.pay(channel, 5)
    (p,) = w.payments(channel)
    assert p.state is PaymentState.RECORDED
    (resent,) = w.resend()
    assert resent.state is PaymentState.SENT and server.received == [p.raw]


def test_a_rate_limited_payment_waits_and_is_sent_again_as_the_same_bytes(tmp_path, server):
    channel = uuid.uuid4()
    w = Wallet(WalletRecord(tmp_path / "w.sqlite"), A, transport=HttpTransport(url(server), TOKEN))
    w.track(terms(channel))
    server.answer = (429, {"type": "about:blank", "title": "slow down", "status": 429, "detail": "over 20/s",
                           "reason": "RateLimited"})
    p = w.pay(channel, 5)
    assert p.state is PaymentState.SENT and server.received == [p.raw]


def test_a_rate_limit_that_outlasts_the_wait_leaves_the_outcome_unknown(tmp_path, server):
    channel = uuid.uuid4()
    w = Wallet(WalletRecord(tmp_path / "w.sqlite"), A, transport=HttpTransport(url(server), TOKEN, max_rate_wait=0))
    w.track(terms(channel))
    server.answer = (429, {"type": "about:blank", "title": "slow down", "status": 429, "detail": "over 20/s",
                           "reason": "RateLimited"})
    with pytest.raises(DeliveryUnknown, match="429"):
        w.pay(channel, 5)
    (p,) = w.payments(channel)
    assert p.state is PaymentState.RECORDED
    (resent,) = w.resend()
    assert resent.state is PaymentState.SENT and server.received == [p.raw]


def test_a_missing_token_and_an_unreachable_api_are_unknown_outcomes(tmp_path, server):
    channel = uuid.uuid4()
    w = Wallet(WalletRecord(tmp_path / "w.sqlite"), A, transport=HttpTransport(url(server), None))
    w.track(terms(channel))
    with pytest.raises(DeliveryUnknown, match="401"):
        w.pay(channel, 5)
    port = server.server_address[1]
    server.shutdown()
    server.server_close()
    gone = HttpTransport(f"http://127.0.0.1:{port}", TOKEN, timeout=2)
    with pytest.raises(DeliveryUnknown, match="did not answer"):
        gone.send(b"{}", channel)
