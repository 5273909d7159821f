"""The dashboard of a whole deployment, in a real browser: a node (thread) on Kafka, the settler on anvil,
the API + dashboard on uvicorn, the nodes' /metrics sampled, `parsec audit` run on the events topic.

A channel opened on-chain takes payments through the node; its checkpoint lands on anvil and the channel's
page shows the confirmed checkpoint's transaction hash (the receipt's own) and the contract's record beside
the read model's; a settle closes it on-chain, the challenge period passes, and the page shows it closed
with the payouts the chain made. The overview shows the partitions' owner and lag and the latency chart; the
Audit page the report; the Network page a route. Two dashboards run at once on the same read models; one
stopped, the other goes on, and a new one started shows everything again: a dashboard keeps nothing.
"""

from __future__ import annotations

import re
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from infrastructure import bootstrap
from infrastructure.chain import ChannelContract, advance_time, connect, fund, wallet
from infrastructure.cli import main
from infrastructure.metrics import serve_metrics
from infrastructure.node import Sender, SettlementRequest
from infrastructure.tools.workload import make_channels
from tests.integration.api.harness import Served, wait_until
from tests.integration.contract.chain import ANVIL_URL, ETHER, party
from tests.integration.dashboard.browsing import SOON, shot
from tests.integration.node.harness import running_node

pytestmark = [pytest.mark.integration, pytest.mark.kafka, pytest.mark.chain, pytest.mark.browser]

PERIOD = 120  # the challenge period (s): anvil's clock is moved past it
INTERVAL = 4  # a checkpoint every 4th sequence
DEPOSIT = 2 * ETHER
PRICE = 10**17


def reload_until(page: Any, status: str, timeout: float = 30.0) -> None:
    """The channel page is a document, not a feed: reload it until it says ``status``."""

    def says() -> bool:
        page.reload()
        return page.locator("[data-status]").inner_text() == status

    wait_until(says, timeout, f"the channel page to say {status}")


@pytest.fixture
def anvil() -> Iterator[Any]:
    try:
        yield connect(ANVIL_URL, timeout=10)
    except Exception as err:  # pragma: no cover - depends on the machine
        pytest.fail(f"anvil not available at {ANVIL_URL}: {err}")


def test_checkpoints_and_a_settle_on_anvil_show_on_the_dashboard(anvil, node_config, browser, shots, tmp_path):
    from playwright.sync_api import expect

    w3 = anvil
    tag = uuid.uuid4().hex[:8]
    deployer, operator = (party(w3, f"parsec-dashboard/{tag}/{n}") for n in ("deployer", "operator"))
    contract = ChannelContract.deploy(w3, deployer.wallet, deployer.address, min_challenge_period=PERIOD)
    plans = make_channels(f"parsec-dashboard/{tag}", 2, deposits=(DEPOSIT, 0), domain=contract.domain)
    for p in plans:
        wa, wb = wallet(p.a.key), wallet(p.b.key)
        fund(w3, wa.address, 5 * ETHER)
        fund(w3, wb.address, ETHER)
        contract.set_operator(wa, operator.address)
        contract.set_operator(wb, operator.address)
        contract.open_channel(wa, p.channel_id, p.b.address, deposit=DEPOSIT, challenge_period=PERIOD)
    ledger, other = plans
    cid = str(ledger.channel_id)

    _, metrics_port = serve_metrics(0)  # this process's registry: the node below runs in a thread of it
    report = tmp_path / "audit.json"
    config = node_config(min_challenge_period=PERIOD, tick_interval=0.2, timeout_check_interval=3600.0,
                         session_timeout_ms=30000, settlers=operator.address, data_dir=tmp_path,
                         eth_rpc=ANVIL_URL, contract=contract.address, audit_report=report,
                         node_metrics=f"http://127.0.0.1:{metrics_port}/metrics", node_metrics_interval=1.0,
                         postgres_dsn=None, api_rate=0.0, event_store="kafka")
    config.settlement_topic = f"{config.events_topic}.settlement"
    sender = Sender(config)
    for p in plans:
        sender.control(p.open_request(challenge_period=PERIOD, checkpoint_interval=INTERVAL,
                                      checkpoint_timeout=10**6)).get(timeout=15)

    stop = threading.Event()
    with running_node(config):
        settler = bootstrap.settler(config, ChannelContract(w3, contract.address), operator.wallet,
                                    interval=0.3, start_block=int(w3.eth.block_number))
        settling = threading.Thread(target=settler.run, args=(stop,), daemon=True)
        settling.start()
        try:
            # one dashboard follows the log (its projection runner), a second reads the same read models
            first = Served(bootstrap.api_app(config, follow=True, insecure_no_token=True))
            second = Served(bootstrap.api_app(config, insecure_no_token=True))
            with first as base, second as base2:
                context = browser.new_context(viewport={"width": 1280, "height": 900})
                errors: list[str] = []
                page, page2 = context.new_page(), context.new_page()
                for pg in (page, page2):
                    pg.on("pageerror", lambda e: errors.append(str(e)))

                for i in range(INTERVAL):  # the 4th requests the first checkpoint
                    sender.payment(ledger.pay(PRICE + i if i % 2 == 0 else PRICE // 10, i % 2)).get(timeout=15)  # B pays back less than it got
                sender.payment(other.pay(PRICE)).get(timeout=15)

                # the overview: counters, the partitions' owner and lag, the nodes' latency
                page.goto(f"{base}/dashboard/")
                expect(page.locator('[data-counter="payments"]')).to_have_text("5", timeout=SOON)
                expect(page.locator('[data-counter="checkpoints"]')).to_have_text("1", timeout=30_000)
                rows = page.locator('#partitions-table tr[data-role="inbound"]')
                expect(rows).to_have_count(config.partitions)
                owners = set(rows.evaluate_all("rs => rs.map(r => r.dataset.owner)"))
                assert len(owners) == 1 and "" not in owners, owners  # one node owns every partition
                expect(page.locator('[data-counter="lag"]')).to_have_text("0", timeout=SOON)
                expect(page.locator("svg.chart.latency polyline.p99")).to_have_count(1, timeout=SOON)
                shot(page, shots, "overview")

                # a channel's page: the confirmed checkpoint with the receipt's hash; the contract beside the read model
                page.goto(f"{base}/dashboard/channels/{cid}")
                confirmed = page.locator(f'#settlements-table tr[data-kind="checkpoint"][data-state="confirmed"]'
                                         f'[data-sequence="{INTERVAL}"]')
                expect(confirmed).to_have_count(1, timeout=SOON)
                tx_hash = confirmed.get_attribute("data-tx")
                receipt = w3.eth.get_transaction_receipt(tx_hash)
                assert receipt["status"] == 1 and receipt["to"] == contract.address
                expect(confirmed.locator(f'code[title="{tx_hash}"]')).to_have_count(1)
                expect(confirmed).to_contain_text(f"{receipt['gasUsed']:,}")
                expect(page.locator('[data-onchain="status"]')).to_have_text("open")
                seqs = [int(page.locator(f'[data-onchain="sequence-{s}"]').inner_text()) for s in "ab"]
                on = contract.channel(ledger.channel_id)
                assert seqs == [on.seq_a, on.seq_b] and max(seqs) == INTERVAL
                expect(page.locator("#history-table tbody tr")).to_have_count(INTERVAL)
                expect(page.locator("#history-table .ok")).to_have_count(INTERVAL)
                shot(page, shots, "channel-open")

                # the second dashboard shows the same; stopping it loses nothing (it holds nothing)
                page2.goto(f"{base2}/dashboard/channels/{cid}")
                expect(page2.locator(f'#settlements-table tr[data-tx="{tx_hash}"]')).to_have_count(1)
            # both stopped; a new one on the same read models shows the same history
            with Served(bootstrap.api_app(config, follow=True, insecure_no_token=True)) as base:
                page.goto(f"{base}/dashboard/channels/{cid}")
                expect(page.locator(f'#settlements-table tr[data-tx="{tx_hash}"]')).to_have_count(1)
                expect(page.locator("#history-table tbody tr")).to_have_count(INTERVAL)

                # settle: closed on-chain, the challenge period passes, the settler settles
                sender.control(ledger.sign_request(SettlementRequest(channel=ledger.channel_id))).get(timeout=15)
                wait_until(lambda: contract.channel(ledger.channel_id).is_closed, 30, "the close on-chain")
                reload_until(page, "settling")
                advance_time(w3, PERIOD + 5)
                reload_until(page, "closed")  # the read model closed: the page shows the payouts the chain made
                a, b = ledger.expected_balances()
                logs = contract.contract.events.ChannelSettled.get_logs(
                    from_block=0, argument_filters={"channelId": ledger.channel_id.bytes})
                assert len(logs) == 1 and (logs[0]["args"]["balanceA"], logs[0]["args"]["balanceB"]) == (a, b)
                expect(page.locator('tr[data-side="a"] [data-payout]')).to_have_attribute("data-payout", str(a))
                expect(page.locator('tr[data-side="b"] [data-payout]')).to_have_attribute("data-payout", str(b))
                expect(page.locator('[data-onchain="status"]')).to_have_text("settled")
                expect(page.locator('[data-onchain="payout-a"]')).to_have_attribute("data-value", str(a))
                expect(page.locator('[data-onchain="payout-b"]')).to_have_attribute("data-value", str(b))
                expect(page.locator("#onchain-table .differs")).to_have_count(0)
                expect(page.locator('#settlements-table tr[data-kind="settlement"][data-state="confirmed"]')
                       ).to_have_count(1)
                shot(page, shots, "channel-closed")
                page.goto(f"{base}/dashboard/channels?status=closed")
                expect(page.locator("tbody tr[data-channel]")).to_have_count(1)
                expect(page.locator(f'tbody tr[data-channel="{cid}"]')).to_have_count(1)
                page.goto(f"{base}/dashboard/")
                expect(page.locator('[data-counter="closed"]')).to_have_text("1", timeout=SOON)

                # the audit of this deployment's events topic, shown on the Audit page
                assert main(["--kafka", config.kafka_bootstrap, "audit", "--topic", config.events_topic,
                             "--report", str(report)]) == 0
                page.goto(f"{base}/dashboard/audit")
                expect(page.locator('[data-verdict="ok"]')).to_have_count(1)
                expect(page.locator("#audit-table tbody tr[data-ok='true']")).to_have_count(2)
                expect(page.locator(f'#audit-table tr[data-channel="{cid}"]')).to_contain_text("closed")
                shot(page, shots, "audit")

                # the Network page: a route from the other channel's A to its B, highlighted
                page.goto(f"{base}/dashboard/network")
                page.get_by_label("From (payer)").fill(other.a.address)
                page.get_by_label("To (payee)").fill(other.b.address)
                page.get_by_label(re.compile("Amount the payee receives")).fill("0.25")
                page.get_by_role("button", name="Route").click()
                page.wait_for_url(re.compile(r"amount=0\.25"))
                expect(page.locator("#routes-table tbody tr")).to_have_count(1)
                expect(page.locator(f'svg.graph line.route[data-channel="{other.channel_id}"]')).to_have_count(1)
                expect(page.locator("svg.graph line.route")).to_have_count(1)
                shot(page, shots, "network-route")
                context.close()
                assert errors == []
        finally:
            stop.set()
            settling.join(30)
    assert {p.name for p in shots.iterdir()} == {"overview.png", "channel-open.png", "channel-closed.png",
                                                 "audit.png", "network-route.png"}
