"""The dashboard in a real browser: a node's channels on Kafka, the API + dashboard on uvicorn with the
projection runner following, headless Chromium (the system's, /usr/bin/chromium) driven by Playwright.

Payments written to the log must show on the overview's counters, in the channels table and on the live
feed within seconds; a channel's page shows its history's hash links; the live feed resumes after a reload
without repeating an event. A screenshot of each page goes to test-output/dashboard/<test>/."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from domain.addresses import eth_address_from_public_key
from tests.builders import ALICE, BOB
from tests.integration.api.harness import Deployment, Served, deployment, reject
from tests.integration.dashboard.browsing import SOON
from tests.integration.dashboard.browsing import shot as _shot

pytestmark = [pytest.mark.integration, pytest.mark.kafka, pytest.mark.browser]

A, B = (eth_address_from_public_key(k.public_key) for k in (ALICE, BOB))


@pytest.fixture
def dep(kafka_bootstrap: str, tmp_path) -> Iterator[Deployment]:
    yield from deployment(kafka_bootstrap, tmp_path)


def test_payments_show_on_every_page_within_seconds(dep, browser, shots):
    from playwright.sync_api import expect

    ledger = dep.open(deposit_a=3 * 10**18, deposit_b=10**18)
    other = dep.open()
    cid, oid = str(ledger.channel_id), str(other.channel_id)
    with Served(dep.app(follow=True)) as base:
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        errors: list[str] = []
        overview, live = context.new_page(), context.new_page()
        for p in (overview, live):
            p.on("pageerror", lambda e: errors.append(str(e)))
        overview.goto(f"{base}/dashboard/")
        expect(overview.locator('[data-counter="open"]')).to_have_text("2", timeout=SOON)
        expect(overview.locator('[data-counter="payments"]')).to_have_text("0")

        live.goto(f"{base}/dashboard/live")
        expect(live.locator("#live-status")).to_have_attribute("data-state", "open", timeout=SOON)

        for i in range(6):  # the 5th requests a checkpoint (m = 5)
            dep.pay(ledger, 10**17 + i, payer=ALICE if i % 2 else BOB)
        dep.pay(other, 5 * 10**16)
        reject(dep, cid, "WrongSigner")

        # the overview's counters (htmx refreshes them every 2 s)
        expect(overview.locator('[data-counter="payments"]')).to_have_text("7", timeout=SOON)
        expect(overview.locator('[data-counter="last-minute"]')).to_have_text("7", timeout=SOON)
        expect(overview.locator("svg.chart rect[height]:not([height='0.0'])")).not_to_have_count(0)
        _shot(overview, shots, "overview")

        # the live feed: each payment once, the refusal with its reason, the checkpoint request
        pays = live.locator("#live-payments tbody tr")
        expect(pays).to_have_count(7, timeout=SOON)
        seqs = sorted(int(s) for s in live.locator(f'#live-payments tr[data-channel="{cid}"]').evaluate_all(
            "rows => rows.map(r => r.dataset.sequence)"))
        assert seqs == [1, 2, 3, 4, 5, 6]
        expect(live.locator('#live-refusals tr[data-reason="WrongSigner"]')).to_have_count(1, timeout=SOON)
        expect(live.locator('#live-refusals')).to_contain_text("refused: WrongSigner")
        expect(live.locator('#live-settlements tr[data-event="checkpoint.requested"]')).to_have_count(1, timeout=SOON)
        first_price = live.locator(f'#live-payments tr[data-channel="{cid}"][data-sequence="1"] .amt')
        expect(first_price).to_have_text("0.1 ETH")
        expect(first_price).to_have_attribute("title", f"{10**17} (smallest unit)")
        _shot(live, shots, "live")

        # reloading resumes after the last event seen: the next payment once, nothing before it again
        live.reload()
        expect(live.locator("#live-status")).to_have_attribute("data-state", "open", timeout=SOON)
        dep.pay(ledger, 10**17)
        expect(live.locator(f'#live-payments tr[data-channel="{cid}"][data-sequence="7"]')).to_have_count(
            1, timeout=SOON)
        live.wait_for_timeout(1500)  # a repeat would arrive right behind it
        expect(live.locator(f'#live-payments tr[data-channel="{cid}"][data-sequence="7"]')).to_have_count(1)
        expect(live.locator(f'#live-payments tr[data-channel="{cid}"][data-sequence="6"]')).to_have_count(1)
        expect(live.locator('#live-refusals tr[data-reason="WrongSigner"]')).to_have_count(0)

        # the channels table: the sequence, sorting by a header link, filtering with the form
        page = context.new_page()
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(f"{base}/dashboard/channels")
        expect(page.locator(f'tr[data-channel="{cid}"] [data-sequence]')).to_have_text("7", timeout=SOON)
        page.get_by_role("link", name="Sequence").click()
        page.wait_for_url(re.compile(r"sort=sequence"))
        page.get_by_role("link", name=re.compile("Sequence")).click()  # again: descending
        page.wait_for_url(re.compile(r"sort=-sequence"))
        order = page.locator("tbody tr[data-channel]").evaluate_all("rows => rows.map(r => r.dataset.channel)")
        assert order == [cid, oid]
        page.get_by_label("Participant").fill(B)
        page.get_by_label("Status").select_option("open")
        page.get_by_label("Participant").press("Enter")
        page.wait_for_url(re.compile(r"status=open"))
        expect(page.locator("tbody tr[data-channel]")).to_have_count(2)
        _shot(page, shots, "channels")

        # a channel's page: the hash-linked history
        page.locator(f'tr[data-channel="{cid}"] a').first.click()
        page.wait_for_url(f"**/dashboard/channels/{cid}")
        rows = page.locator("#history-table tbody tr")
        expect(rows).to_have_count(7)
        links = rows.evaluate_all("rows => rows.map(r => [+r.dataset.sequence, r.dataset.hash, r.dataset.previous])")
        assert [s for s, _, _ in links] == list(range(1, 8))
        for (_, before, _), (_, _, previous) in zip(links, links[1:], strict=False):
            assert previous == before
        assert len(set(h for _, h, _ in links)) == 7
        expect(page.locator("#history-table .ok")).to_have_count(7)
        expect(page.locator("#history-table .bad")).to_have_count(0)
        page.locator("#tx-4 a[href='#tx-3']").click()
        assert page.url.endswith("#tx-3")
        expect(page.locator('#settlements-table tr[data-kind="checkpoint"]')).to_have_count(1)
        expect(page.locator("[data-status]")).to_have_text("open")
        expect(page.locator("time[datetime]").first).to_have_attribute("datetime", re.compile(r"Z$"))
        _shot(page, shots, "channel")

        page.goto(f"{base}/dashboard/network")
        expect(page.locator("svg.graph g.node")).to_have_count(2)
        expect(page.locator("#network-table tbody tr")).to_have_count(4)
        _shot(page, shots, "network")

        # on a phone: the page does not scroll sideways (a wide table scrolls in its own box)
        phone = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
        small = phone.new_page()
        for path in ("/dashboard/", "/dashboard/channels", f"/dashboard/channels/{cid}", "/dashboard/live"):
            small.goto(base + path)
            assert small.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1"), path
        _shot(small, shots, "live-phone")
        phone.close()

        # JavaScript off: every table is there, server-rendered
        nojs = browser.new_context(java_script_enabled=False)
        plain = nojs.new_page()
        plain.goto(f"{base}/dashboard/live")
        expect(plain.locator(f'#live-payments tr[data-channel="{cid}"]')).to_have_count(7)
        plain.goto(f"{base}/dashboard/channels?sort=-sequence")
        expect(plain.locator("tbody tr[data-channel]").first).to_have_attribute("data-channel", cid)
        nojs.close()

        # the keyboard reaches the navigation first (after the skip link)
        page.goto(f"{base}/dashboard/")
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.textContent") == "Skip to content"
        page.keyboard.press("Tab")
        page.keyboard.press("Tab")
        page.keyboard.press("Enter")
        page.wait_for_url("**/dashboard/channels")
        context.close()
        assert errors == []
    assert sorted(p.name for p in shots.iterdir()) == ["channel.png", "channels.png", "live-phone.png", "live.png",
                                                       "network.png", "overview.png"]
