"""The dashboard's page handlers on a SQLite read-model store filled by hand (FastAPI's TestClient)."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from domain.addresses import to_checksum_address
from infrastructure.api.app import create_app
from infrastructure.api.services import ApiServices
from infrastructure.dashboard.node_metrics import NodeMetricsSampler, delta, parse, quantile
from infrastructure.dashboard.sources import DashboardSources
from infrastructure.settings import Settings
from projections.balances import CHANNELS
from projections.channel_graph import GRAPH_CHANNELS
from projections.history import PAYMENTS
from projections.settlements import SETTLEMENTS
from projections.sqlite import SQLiteStore

# checksummed, as the read models hold them (the projections write the events' addresses)
A, B, C = (to_checksum_address("0x" + x * 20) for x in ("a1", "b2", "c3"))
GENESIS = "0x" + "00" * 32
ETH = 10**18


def _h(i: int) -> str:
    return "0x" + f"{i:064x}"


def _channel(cid: str, a: str, b: str, currency: str = "ETH", status: str = "open", deposits=(ETH, 0),
             sequence: int = 0, sent=(0, 0), opened_at: int = 1_700_000_000) -> dict:
    da, db = deposits
    return dict(channel_id=cid, currency=currency, participant_a=a, participant_b=b, deposit_a=da, deposit_b=db,
                sent_a=sent[0], sent_b=sent[1], locked_a=0, locked_b=0, balance_a=da - sent[0] + sent[1],
                balance_b=db - sent[1] + sent[0], sequence=sequence, head_hash=_h(sequence) if sequence else GENESIS,
                checkpoint_sequence=0, confirmed_sequence=0, status=status, opened_at=opened_at, closed_at=None)


def _graph(ch: dict) -> dict:
    row = dict(channel_id=ch["channel_id"], currency=ch["currency"], participant_a=ch["participant_a"],
               participant_b=ch["participant_b"], deposit_a=ch["deposit_a"], deposit_b=ch["deposit_b"],
               capacity_ab=ch["balance_a"], capacity_ba=ch["balance_b"], locked_a=0, locked_b=0,
               status=ch["status"], last_seen=ch["opened_at"])
    for d in ("ab", "ba"):
        row.update({f"fee_base_{d}": 0, f"fee_ppm_{d}": 0, f"expiry_delta_{d}": 40, f"policy_issued_at_{d}": None})
    return row


def _client(store, **sources):
    services = ApiServices(sender=lambda: None, read_store=lambda: store, channels=lambda: None, readers=lambda: [],
                           dashboard=DashboardSources(**sources))
    return TestClient(create_app(Settings.from_env({}), services, insecure_no_token=True))


@pytest.fixture
def world(tmp_path):
    """Three channels: ETH A–B with 3 payments (the 3rd's link broken when asked), BTC A–C settling, ETH B–C closed."""
    store = SQLiteStore(tmp_path / "rm.sqlite")
    store.create([CHANNELS, PAYMENTS, SETTLEMENTS, GRAPH_CHANNELS])
    now = datetime.now(UTC)
    c1, c2, c3 = (str(uuid.UUID(int=i)) for i in (1, 2, 3))
    rows = [(CHANNELS, _channel(c1, A, B, deposits=(3 * ETH, ETH), sequence=3, sent=(3 * 10**17, 0))),
            (CHANNELS, _channel(c2, A, C, currency="BTC", status="settling", deposits=(10**8, 0))),
            (CHANNELS, _channel(c3, B, C, status="closed", deposits=(5 * ETH, 0), opened_at=1_600_000_000))]
    rows += [(GRAPH_CHANNELS, _graph(r)) for _, r in rows]
    for i in (1, 2, 3):
        rows.append((PAYMENTS, dict(
            channel_id=c1, sequence=i, invoice_id=str(uuid.uuid4()), currency="ETH", buyer=A, supplier=B,
            price=10**17, buyer_total=i * 10**17, buyer_balance=3 * ETH - i * 10**17, supplier_balance=ETH + i * 10**17,
            transaction_hash=_h(i), previous_hash=_h(i - 1) if i > 1 else GENESIS, previous_id=None,
            recorded_at=(now - timedelta(seconds=10 * (3 - i))).isoformat())))
    rows.append((SETTLEMENTS, dict(channel_id=c1, kind="checkpoint", sequence=2, from_sequence=None, state="confirmed",
                                   reason="interval", head_hash=_h(2), balance_a=3 * ETH - 2 * 10**17,
                                   balance_b=ETH + 2 * 10**17, requested_at=1_700_000_100, submitted_at=1_700_000_101,
                                   confirmed_at=1_700_000_105, tx_hash="0x" + "ee" * 32, block=42, gas=51234,
                                   error=None)))
    store.commit(rows, [])
    services = ApiServices(sender=lambda: None, read_store=lambda: store, channels=lambda: None, readers=lambda: [])
    app = create_app(Settings.from_env({}), services, insecure_no_token=True)
    with TestClient(app) as client:
        yield client, store, (c1, c2, c3)
    store.close()


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def test_overview_counts_from_the_read_models(world):
    client, _, _ = world
    resp = client.get("/dashboard/")
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/html")
    html = resp.text
    for counter, value in (("open", 1), ("settling", 1), ("closed", 1), ("payments", 3), ("last-minute", 3),
                           ("checkpoints", 1), ("settlements", 0), ("gas", "51,234")):
        assert f'data-counter="{counter}">{value}<' in html, counter
    assert '<svg class="chart"' in html and re.search(r"peak [23]/min", html)  # 3 payments in the last 20 s
    assert 'aria-current="page"' in html and '<html lang="en">' in html


def test_channels_table_filters_sorts_and_pages(world):
    client, _, (c1, c2, c3) = world
    html = client.get("/dashboard/channels").text
    assert [m for m in re.findall(r'data-channel="([^"]+)"', html)] == [c1, c2, c3]
    assert '<th scope="col"' in html and '<th scope="row">' in html
    # human units, the exact value in title
    assert '<span class="amt" title="3000000000000000000 (smallest unit)">3 ETH</span>' in html
    assert '<span class="amt" title="100000000 (smallest unit)">1 BTC</span>' in html
    assert re.findall(r'data-channel="([^"]+)"', client.get("/dashboard/channels?status=settling").text) == [c2]
    assert re.findall(r'data-channel="([^"]+)"', client.get("/dashboard/channels?currency=btc").text) == [c2]
    assert re.findall(r'data-channel="([^"]+)"', client.get(f"/dashboard/channels?participant={'0x' + C[2:].upper()}").text) == [c2, c3]
    by_deposit = client.get("/dashboard/channels?sort=-deposits").text
    assert re.findall(r'data-channel="([^"]+)"', by_deposit) == [c3, c1, c2]
    assert 'aria-sort="descending"' in by_deposit
    assert re.findall(r'data-channel="([^"]+)"', client.get("/dashboard/channels?sort=opened").text)[0] == c3
    first = client.get("/dashboard/channels?per=2").text
    assert re.findall(r'data-channel="([^"]+)"', first) == [c1, c2] and "page 1 of 2" in first
    assert 'href="/dashboard/channels?page=2&amp;per=2"' in first or "page=2" in first
    assert re.findall(r'data-channel="([^"]+)"', client.get("/dashboard/channels?per=2&page=2").text) == [c3]
    assert "No channel matches" in client.get("/dashboard/channels?status=open&currency=BTC").text
    assert client.get("/dashboard/channels?sort=nonsense").status_code == 200  # the default order


def test_a_channel_page_shows_its_hash_links_and_settlements(world):
    client, store, (c1, c2, _) = world
    html = client.get(f"/dashboard/channels/{c1}").text
    rows = re.findall(r'<tr id="tx-(\d+)" data-sequence="\d+" data-hash="([^"]+)" data-previous="([^"]*)"', html)
    assert [int(s) for s, _, _ in rows] == [1, 2, 3]
    for (_, before, _), (_, _, prev) in zip(rows, rows[1:], strict=False):
        assert prev == before
    assert html.count("✓ linked") == 3 and "✗ broken" not in html
    assert 'href="#tx-2"' in html
    assert "ee" * 7 in html and "51,234" in html and 'data-state="confirmed"' in html
    assert '<time datetime="2023-11-14T22:15:05Z">' in html  # confirmed_at 1_700_000_105
    # a forged link shows as broken
    forged = store.load(PAYMENTS, (c1, 3))
    forged["previous_hash"] = _h(99)
    store.commit([(PAYMENTS, forged)], [])
    assert client.get(f"/dashboard/channels/{c1}").text.count("✗ broken") == 1
    assert "No payment yet" in client.get(f"/dashboard/channels/{c2}").text
    assert client.get(f"/dashboard/channels/{uuid.uuid4()}").status_code == 404
    assert client.get("/dashboard/channels/not-a-uuid").status_code == 404


def test_live_page_without_javascript_shows_the_latest_rows(world):
    client, _, (c1, _, _) = world
    html = client.get("/dashboard/live").text
    assert re.findall(r'data-channel="([^"]+)" data-sequence="(\d+)"', html) == [(c1, "3"), (c1, "2"), (c1, "1")]
    assert "/dashboard/static/live.js" in html and "payment.rejected" in html
    assert "checkpoint" in _text(html)


def test_network_page_draws_the_graph(world):
    client, _, (c1, c2, c3) = world
    html = client.get("/dashboard/network").text
    assert html.count('<g class="node"') == 3 and html.count('<line class="edge') == 3
    assert 'class="edge open route"' not in html  # no route asked for
    assert "3 parties, 3 channels" in _text(html)
    assert len(re.findall(r'<tr data-channel=', html)) == 6  # two directions per channel
    assert "2.7 ETH" in html  # A's capacity towards B
    assert "1 parties" not in client.get("/dashboard/network?currency=BTC").text
    assert "2 parties, 1 channels" in _text(client.get("/dashboard/network?currency=BTC").text)


def test_static_assets_are_served_and_the_pages_are_not_in_the_openapi_document(world):
    client, _, _ = world
    js = client.get("/dashboard/static/htmx.min.js")
    assert js.status_code == 200 and "htmx" in js.text[:2000]
    assert client.get("/dashboard/static/dashboard.css").status_code == 200
    assert client.get("/dashboard/static/live.js").status_code == 200
    assert not [p for p in client.get("/openapi.json").json()["paths"] if p.startswith("/dashboard")]


def test_the_network_page_finds_a_route_and_draws_it_highlighted(world):
    client, _, (c1, _, c3) = world
    html = client.get("/dashboard/network", params={"from": A, "to": B, "amount": "0.5"}).text
    rows = re.findall(r'<tr data-route="(\d+)" data-channels="([^"]+)"', html)
    assert rows == [("1", c1)]
    assert f'class="edge open route" data-channel="{c1}"' in html
    assert f'class="edge closed" data-channel="{c3}"' in html  # not on the route
    assert html.count('<g class="node route"') == 2
    assert 'title="500000000000000000 (smallest unit)">0.5 ETH' in html  # what the payer sends, no fee
    # B–C is closed: no route to C; the reason is said, the graph still drawn without highlight
    html = client.get("/dashboard/network", params={"from": A, "to": C, "amount": "0.5"}).text
    assert 'id="route-error"' in html and "No route:" in html and " route" not in re.sub(r'id="route-\w+"|Find a route|>Route<|route found|name="from"', "", html).split("<svg")[1].split("</svg>")[0]
    html = client.get("/dashboard/network", params={"from": "0x12", "to": B, "amount": "1"}).text
    assert "InvalidAddress" in html
    html = client.get("/dashboard/network", params={"from": A, "to": B, "amount": "0.1234567890123456789"}).text
    assert 'id="route-error"' in html  # more decimals than ETH has: refused, not rounded


def test_the_audit_page_shows_the_last_report_per_channel(world, tmp_path):
    import json

    _, store, (c1, c2, _) = world
    with _client(store) as client:
        assert "no audit report configured" in client.get("/dashboard/audit").text
    path = tmp_path / "audit.json"
    with _client(store, audit_report=path) as client:
        assert f"no report at {path} yet" in client.get("/dashboard/audit").text
        path.write_text("{not json")
        assert "is not a JSON report" in client.get("/dashboard/audit").text
        bad = {"channel": c2, "partition": 1, "offset": 17, "version": 4, "sequence": 3, "event": "PaymentAccepted",
               "reason": "BrokenHashLink", "detail": "sequence 3 points to 0xab…, the head is 0xcd…"}
        path.write_text(json.dumps({
            "ok": False, "topic": "A.parsec.events", "events": 12, "duplicates": 2, "channels_checked": 2,
            "channels_ok": 1, "violations": [bad], "run": {"records_read": 14, "records_per_second": 3000},
            "channels": [
                {"channel": c2, "ok": False, "partition": 1, "events": 4, "duplicates": 0, "violation": bad,
                 "status": "open", "currency": "BTC", "sequence": 2, "balances": ["100000000", "0"]},
                {"channel": c1, "ok": True, "partition": 0, "events": 8, "duplicates": 2, "status": "open",
                 "currency": "ETH", "sequence": 3, "balances": [str(27 * 10**17), str(13 * 10**17)]}]}))
        html = client.get("/dashboard/audit").text
        assert 'data-verdict="violations"' in html and "1 violation(s)" in html
        assert f'data-channel="{c2}" data-ok="false" data-reason="BrokenHashLink" data-sequence="3"' in html
        assert "partition 1, offset 17, sequence 3" in html
        assert f'data-channel="{c1}" data-ok="true"' in html and "2.7 ETH" in html
        only = client.get("/dashboard/audit?show=violations").text
        assert c2 in only and f'data-channel="{c1}"' not in only
        assert client.get("/dashboard/").status_code == 200 and 'href="/dashboard/audit"' in html


def _node_text(batches: list[float], accepted: int) -> str:
    """A node's /metrics as prometheus_client writes it (a registry of its own)."""
    from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

    reg = CollectorRegistry()
    h = Histogram("parsec_node_batch_seconds", "x", buckets=(0.001, 0.005, 0.01, 0.05, 0.1), registry=reg)
    c = Counter("parsec_node_payments_accepted_total", "x", registry=reg)
    for b in batches:
        h.observe(b)
    c.inc(accepted)
    return generate_latest(reg).decode()


def test_latency_quantiles_come_from_the_difference_of_two_scrapes():
    before = parse(_node_text([0.5] * 10, 100))  # slow batches before: not in this interval
    after = parse(_node_text([0.5] * 10 + [0.004] * 98 + [0.04] * 2, 1100))
    d = delta([after], [before])
    assert d.count == 100 and d.accepted == 1000
    assert 0.001 < quantile(0.5, d.buckets) <= 0.005  # the 50th batch is in the (1 ms, 5 ms] bucket
    assert 0.01 < quantile(0.99, d.buckets) <= 0.05
    assert quantile(0.5, {}) is None and quantile(0.5, {float("inf"): 0.0}) is None
    restarted = parse(_node_text([0.002] * 5, 40))  # a node restarted: its counters begin again
    assert delta([restarted], [after]).count == 5


def test_the_overview_draws_the_nodes_latency_and_says_when_it_has_none(world):
    _, store, _ = world
    texts = iter([_node_text([0.004] * 10, 10), _node_text([0.004] * 30 + [0.03], 41),
                  _node_text([0.004] * 60 + [0.03] * 2, 80)])

    class Fed(NodeMetricsSampler):
        def scrape(self):
            return [parse(next(texts))]

    sampler = Fed(["http://127.0.0.1:1/metrics"], interval=5.0)
    with _client(store) as client:
        assert 'id="latency-none"' in client.get("/dashboard/").text
    with _client(store, latency=sampler) as client:
        assert sampler.sample(now=1000.0) is None  # one scrape: nothing to compare yet
        assert 'id="latency-wait"' in client.get("/dashboard/").text
        first = sampler.sample(now=1005.0)
        assert first.batches == 21 and round(first.accepted_per_s, 1) == 6.2
        sampler.sample(now=1010.0)
        html = client.get("/dashboard/").text
        assert 'svg class="chart latency"' in html and html.count("<polyline") == 2
        assert "p99" in html and "payments/s" in html
