"""The API's limits without a server: tokens, the token bucket, cursors of pages and of the event stream."""

from __future__ import annotations

import pytest

from infrastructure.api.errors import InvalidEventId, InvalidParameter, InvalidToken, MissingToken, problem
from infrastructure.api.events import Cursor
from infrastructure.api.limits import RateLimiter, TokenCheck, bearer_tokens
from infrastructure.api.queries import decode_cursor, encode_cursor
from infrastructure.settings import Settings


def test_tokens_come_from_the_list_and_the_file(tmp_path):
    f = tmp_path / "tokens"
    f.write_text("# ops\nfile-token-1\n\n  file-token-2  # ci\n")
    s = Settings.from_env({"PARSEC_API_TOKENS": "a, b,", "PARSEC_API_TOKEN_FILE": str(f)})
    assert bearer_tokens(s) == {"a", "b", "file-token-1", "file-token-2"}
    with pytest.raises(ValueError, match="PARSEC_API_TOKEN_FILE"):
        bearer_tokens(Settings.from_env({"PARSEC_API_TOKEN_FILE": str(tmp_path / "missing")}))


def test_write_endpoints_never_open_by_accident():
    with pytest.raises(ValueError, match="--insecure-no-token"):
        TokenCheck([])
    TokenCheck([], insecure=True).check(None)  # development: anyone
    check = TokenCheck(["s3cret"], insecure=True)  # a configured token wins over the flag
    with pytest.raises(MissingToken):
        check.check(None)
    with pytest.raises(MissingToken):
        check.check("Basic czNjcmV0")
    with pytest.raises(InvalidToken):
        check.check("Bearer guess")
    check.check("Bearer s3cret")
    check.check("bearer s3cret")


def test_the_token_bucket_allows_a_burst_then_the_rate():
    now = [0.0]
    limiter = RateLimiter(rate=2.0, burst=3, clock=lambda: now[0])
    assert [limiter.wait("c") for _ in range(3)] == [0, 0, 0]
    assert limiter.wait("c") == pytest.approx(0.5)
    assert limiter.wait("other") == 0  # each client its own bucket
    now[0] += 0.5
    assert limiter.wait("c") == 0
    assert limiter.wait("c") > 0
    assert RateLimiter(rate=0, burst=1).wait("c") == 0  # 0: no limit


def test_the_rate_limiter_forgets_the_least_recent_clients():
    limiter = RateLimiter(rate=1.0, burst=1, max_clients=2, clock=lambda: 0.0)
    for c in ("a", "b", "c"):
        limiter.wait(c)
    assert limiter.wait("a") == 0  # forgotten: a full bucket again
    assert limiter.wait("c") > 0


def test_page_cursors_round_trip_and_refuse_what_they_did_not_make():
    assert decode_cursor(encode_cursor(["0f3c", 7]), 2) == ["0f3c", 7]
    for bad in ("%%%", encode_cursor(["x"]), encode_cursor([True, 1]), encode_cursor([[1], 2])):
        with pytest.raises(InvalidParameter):
            decode_cursor(bad, 2)


def test_event_ids_name_every_partition_and_parse_back():
    c = Cursor()
    c.advance("rejected", 1, 3)
    c.advance("events", 2, 17)
    c.advance("events", 0, 42)
    c.advance("settler", 0, 9)
    text = c.encode()
    assert text == "events:0:42,events:2:17,settler:0:9,rejected:1:3"
    assert Cursor.parse(text).positions == c.positions
    assert Cursor().encode() == "start" and Cursor.parse("start").positions == {}
    assert Cursor.parse(None) is None and Cursor.parse("") is None
    for bad in ("events:0", "ledger:0:1", "events:x:1", "events:0:1;drop", "e" * 9000):
        with pytest.raises(InvalidEventId):
            Cursor.parse(bad)


def test_a_problem_document_has_the_rfc_9457_members_and_the_reason():
    doc = problem(InvalidToken("no"))
    assert doc == {"type": "urn:parsec:problem:InvalidToken", "title": "Authentication required", "status": 401,
                   "detail": "no", "reason": "InvalidToken"}


def test_a_service_that_went_away_is_503_not_500(tmp_path):
    from fastapi.testclient import TestClient

    from infrastructure.api.app import create_app
    from infrastructure.api.services import ApiServices
    from projections.store import StoreUnavailable

    def gone() -> None:
        raise StoreUnavailable("read-model database: disk I/O error")

    services = ApiServices(sender=gone, read_store=gone, channels=gone, readers=gone)
    app = create_app(Settings.from_env({"PARSEC_DATA_DIR": str(tmp_path)}), services, tokens=["t"])
    with TestClient(app) as client:
        resp = client.get("/v1/channels")
    assert resp.status_code == 503 and resp.json()["reason"] == "ServiceUnavailable"
