"""GET endpoints on read models filled by the projection runner from the Kafka log, on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from domain.addresses import eth_address_from_public_key
from tests.builders import ALICE, BOB, CAROL
from tests.integration.api.harness import Deployment, deployment

pytestmark = [pytest.mark.integration, pytest.mark.kafka]

A, B = (eth_address_from_public_key(k.public_key) for k in (ALICE, BOB))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def filled(request, kafka_bootstrap, tmp_path) -> Iterator[Deployment]:
    """Three channels; the first with 7 payments (a checkpoint at 5: m = 5), the read models caught up."""
    overrides = {}
    if request.param == "postgres":
        overrides = {"postgres_dsn": request.getfixturevalue("pg_dsn"), "schema": f"api_{uuid.uuid4().hex[:10]}"}
    for d in deployment(kafka_bootstrap, tmp_path, **overrides):
        first = d.open(deposit_a=3 * 10**18, deposit_b=10**18)
        for i in range(7):
            d.pay(first, 10**17 + i, payer=ALICE if i % 3 else BOB)
        d.open()
        d.open()
        assert d.project() > 0
        yield d
        if request.param == "postgres":
            from projections.postgres import PostgresStore

            PostgresStore(d.settings.postgres_dsn, schema=d.schema).drop_schema()


def _walk(client: TestClient, url: str) -> list[list[dict]]:
    pages = []
    while url:
        resp = client.get(url)
        assert resp.status_code == 200, resp.text
        body = resp.json()
        pages.append(body["items"])
        url = body["next"]
    return pages


def test_channels_page_by_id_and_every_amount_is_a_decimal_string(filled):
    first = next(iter(filled.ledgers.values()))
    with TestClient(filled.app()) as client:
        pages = _walk(client, "/v1/channels?limit=2")
        assert [len(p) for p in pages] == [2, 1]
        ids = [c["channel_id"] for p in pages for c in p]
        assert ids == sorted(str(cid) for cid in filled.ledgers)
        ch = client.get(f"/v1/channels/{first.channel_id}").json()
        assert ch["participants"] == [A, B] and ch["sequence"] == 7 and ch["status"] == "open"
        assert ch["checkpoint_sequence"] == 5
        sent_a = sum(10**17 + i for i in range(7) if i % 3)
        sent_b = sum(10**17 + i for i in range(7) if not i % 3)
        assert ch["sent"] == [str(sent_a), str(sent_b)]
        assert ch["balances"] == [str(3 * 10**18 - sent_a + sent_b), str(10**18 - sent_b + sent_a)]
        assert all(isinstance(v, str) for v in ch["deposits"] + ch["sent"] + ch["balances"])
        mine = client.get(f"/v1/channels?participant={A.lower()}&status=open").json()["items"]
        assert len(mine) == 3
        assert client.get(f"/v1/channels?participant={eth_address_from_public_key(CAROL.public_key)}").json() == {
            "items": [], "next": None, "cursor": None}


def test_history_pages_in_sequence_order_without_gaps_or_repeats(filled):
    first = next(iter(filled.ledgers.values()))
    with TestClient(filled.app()) as client:
        pages = _walk(client, f"/v1/channels/{first.channel_id}/history?limit=3")
    assert [len(p) for p in pages] == [3, 3, 1]
    payments = [p for page in pages for p in page]
    assert [p["sequence"] for p in payments] == list(range(1, 8))
    assert [p["price"] for p in payments] == [str(10**17 + i) for i in range(7)]
    for before, after in zip(payments, payments[1:], strict=False):
        assert after["previous_hash"] == before["transaction_hash"]


def test_settlements_and_a_participants_balances(filled):
    first = next(iter(filled.ledgers.values()))
    with TestClient(filled.app()) as client:
        rows = client.get(f"/v1/channels/{first.channel_id}/settlements").json()["items"]
        assert [(r["kind"], r["sequence"], r["state"], r["reason"]) for r in rows] == [
            ("checkpoint", 5, "requested", "interval")]
        assert all(isinstance(b, str) for b in rows[0]["balances"])
        assert client.get(f"/v1/channels/{first.channel_id}/settlements?state=confirmed").json()["items"] == []
        totals = client.get(f"/v1/participants/{A}/balances").json()
        assert totals["address"] == A
        (eth,) = totals["items"]
        assert eth["currency"] == "ETH" and eth["channels"] == 3
        assert eth["deposited"] == str(3 * 10**18 + 2 * 10**18)


def test_read_refusals_are_problems(filled):
    first = next(iter(filled.ledgers.values()))
    with TestClient(filled.app()) as client:
        def reason(url: str, status: int) -> str:
            resp = client.get(url)
            assert resp.status_code == status, resp.text
            assert resp.headers["content-type"].startswith("application/problem+json")
            return resp.json()["reason"]

        assert reason(f"/v1/channels/{uuid.uuid4()}", 404) == "UnknownChannel"
        assert reason(f"/v1/channels/{uuid.uuid4()}/history", 404) == "UnknownChannel"
        assert reason("/v1/channels/abc", 422) == "InvalidChannelId"
        assert reason("/v1/participants/0x1234/balances", 422) == "InvalidAddress"
        assert reason("/v1/channels?limit=0", 422) == "InvalidParameter"
        assert reason("/v1/channels?limit=5000", 422) == "InvalidParameter"
        assert reason("/v1/channels?cursor=bm90LW1pbmU", 422) == "InvalidParameter"
        assert reason(f"/v1/channels/{first.channel_id}/history?cursor=WyJ4Il0", 422) == "InvalidParameter"
        assert reason("/v1/nothing-here", 404) == "RouteNotFound"
        assert client.delete("/v1/channels").json()["reason"] == "MethodNotAllowed"


def test_follow_keeps_the_read_models_current_while_the_server_runs(kafka_bootstrap, tmp_path):
    from tests.integration.api.harness import wait_until

    for d in deployment(kafka_bootstrap, tmp_path):
        ledger = d.open()
        with TestClient(d.app(follow=True)) as client:
            for _ in range(3):
                d.pay(ledger, 7)

            def current(cid: uuid.UUID = ledger.channel_id) -> bool:
                resp = client.get(f"/v1/channels/{cid}")
                return resp.status_code == 200 and resp.json()["sequence"] == 3

            wait_until(current, 30, "the read models to reach sequence 3")
            history = client.get(f"/v1/channels/{ledger.channel_id}/history").json()["items"]
            assert [p["price"] for p in history] == ["7", "7", "7"]


def test_routes_come_from_the_graph_read_model_and_no_route_is_a_problem(filled):
    with TestClient(filled.app()) as client:
        resp = client.get(f"/v1/routes?from={A}&to={B}&amount=1000&k=2")
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert body["currency"] == "ETH" and body["amount"] == "1000"
        (route,) = body["items"]  # three parallel channels A–B count as one candidate
        assert route["path"] == [A, B] and route["total_fee"] == "0" and route["total_amount"] == "1000"
        (hop,) = route["hops"]
        assert (hop["from"], hop["to"], hop["amount"], hop["fee"]) == (A, B, "1000", "0")
        assert hop["channel_id"] in {str(c) for c in filled.ledgers}
        carol = eth_address_from_public_key(CAROL.public_key)
        missing = client.get(f"/v1/routes?from={A}&to={carol}&amount=1000")
        assert missing.status_code == 422 and missing.json()["reason"] == "UnknownParty"
        assert client.get(f"/v1/routes?from={A}&to={B}&amount=1.5").status_code == 422
