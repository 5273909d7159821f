"""Property: over any workload, the balances read model equals what the Channel aggregates compute.

Random channels, deposits, payments (either direction, any affordable price),
checkpoints, confirmations, settlements and closes go through ChannelService on
an in-memory event store; a runner with a random batch size projects the log
into SQLite. Small examples keep it fast.
"""

from __future__ import annotations

import uuid

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from domain.application import ChannelService
from domain.channel import ChannelParameters, ChannelStatus
from domain.errors import ParsecError
from domain.protocol import GENESIS, Invoice, SigningDomain, sign_invoice
from infrastructure.tools.workload import make_parties
from projections.balances import Balances, channel_balances, participant_balances
from projections.runner import ProjectionRunner
from projections.source import ApplicationEventSource
from projections.sqlite import SQLiteStore

PARTIES = make_parties("projections-property", 4)
DOMAIN = SigningDomain(chain_id=1337, verifying_contract="0xF2E246BB76DF876Cef8b38ae84130F4F55De395b")
PARAMS = ChannelParameters(challenge_period=3600, checkpoint_interval=4, checkpoint_timeout=600)

channel_spec = st.tuples(
    st.sampled_from([(0, 1), (1, 2), (2, 0), (3, 1)]),
    st.sampled_from(["ETH", "BTC"]),
    st.integers(10**6, 10**20),
    st.integers(0, 10**20),
)
pay = st.tuples(st.just("pay"), st.integers(0, 9), st.integers(0, 1), st.integers(1, 1000))
operation = st.one_of(
    pay, pay, pay, pay, pay,
    st.tuples(st.just("deposit"), st.integers(0, 9), st.integers(0, 1), st.integers(1, 10**19)),
    st.tuples(st.just("checkpoint"), st.integers(0, 9), st.just(0), st.just(0)),
    st.tuples(st.just("confirm"), st.integers(0, 9), st.just(0), st.just(0)),
    st.tuples(st.just("settle"), st.integers(0, 9), st.just(0), st.just(0)),
    st.tuples(st.just("close"), st.integers(0, 9), st.just(0), st.integers(0, 1)),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    channels=st.lists(channel_spec, min_size=1, max_size=3),
    ops=st.lists(operation, min_size=1, max_size=30),
    batch_size=st.integers(1, 50),
)
def test_balances_read_model_equals_the_aggregates(channels, ops, batch_size):
    app = ChannelService(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    heads: dict[uuid.UUID, object] = {}
    ids = []
    for n, ((a, b), cur, da, db) in enumerate(channels):
        cid = uuid.UUID(int=n + 1, version=4)
        app.open_channel(channel_id=cid, public_key_a=PARTIES[a].public_key, public_key_b=PARTIES[b].public_key,
                         currency=cur, deposit_a=da, deposit_b=db, parameters=PARAMS, domain=DOMAIN, at=0)
        ids.append(cid)
        heads[cid] = GENESIS
    by_address = {p.address: p for p in PARTIES}
    for i, (kind, which, side, amount) in enumerate(ops):
        cid = ids[which % len(ids)]
        ch = app.get_channel_aggregate(cid)
        payer = ch.participants[side]
        try:
            if kind == "pay":
                price = ch.balance_of(payer) * amount // 1000
                if price == 0:
                    continue
                tx = sign_invoice(
                    Invoice(invoice_address=ch.counterparty(payer), price=price, currency=ch.currency),
                    key=by_address[payer].key, channel=cid, invoice_id=uuid.UUID(int=10**6 + i, version=4),
                    sequence=ch.sequence + 1, previous=heads[cid], buyer_total=ch.sent[payer] + price,
                    domain=DOMAIN,
                )
                app.accept_payment(tx, at=i)
                heads[cid] = tx.pointer
            elif kind == "deposit":
                app.deposit(cid, payer, amount)
            elif kind == "checkpoint":
                app.request_checkpoint(cid, at=i)
            elif kind == "confirm" and ch.checkpoint_sequence:
                app.confirm_checkpoint(cid, ch.checkpoint_sequence, "0x" + "11" * 32, i)
            elif kind == "settle":
                app.request_settlement(cid, at=i)
            elif kind == "close":
                total = ch.total_deposits
                app.close_channel(cid, at=i, payouts=[total, 0] if amount else None)
        except ParsecError:
            pass  # refused by the aggregate (closed, settling, …): nothing is written

    event(f"seq>0: {any(app.get_channel_aggregate(c).sequence for c in ids)}")
    store = SQLiteStore(":memory:")
    ProjectionRunner(ApplicationEventSource.of(app), store, [Balances()], batch_size=batch_size).catch_up()
    rows = {r.channel_id: r for r in channel_balances(store)}
    assert set(rows) == {str(c) for c in ids}
    expected_totals: dict[tuple[str, str], int] = {}
    for cid in ids:
        ch = app.get_channel_aggregate(cid)
        row = rows[str(cid)]
        final = ch.final_balances if ch.status == ChannelStatus.CLOSED.value else None
        balances = final if final is not None else ch.balances
        assert row.balances == tuple(balances[p] for p in ch.participants)
        assert row.deposits == tuple(ch.deposits[p] for p in ch.participants)
        assert row.sent == tuple(ch.sent[p] for p in ch.participants)
        assert (row.sequence, row.head_hash, row.status) == (ch.sequence, ch.head_hash, ch.status)
        assert (row.checkpoint_sequence, row.confirmed_sequence) == (ch.checkpoint_sequence, ch.confirmed_sequence)
        for p in ch.participants:
            key = (p, ch.currency)
            expected_totals[key] = expected_totals.get(key, 0) + balances[p]
    assert {(t.address, t.currency): t.balance for t in participant_balances(store)} == expected_totals
