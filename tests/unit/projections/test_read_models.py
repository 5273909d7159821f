"""The read models' handlers, given events, then rows (no database: MemoryRows)."""

from __future__ import annotations

import pytest
from channel_driver import Driver

from projections.balances import CHANNELS, Balances, ChannelBalance, participant_totals
from projections.examples.revenue import REVENUE, RevenueBySeller
from projections.history import PAYMENTS, PaymentHistory
from projections.model import Column, MemoryRows, ReadModel, Table, event_name, handles
from projections.settlements import SETTLEMENTS, Settlements, advance

ETH = 10**18


def test_balances_follow_deposits_payments_and_close():
    d = Driver.open(deposits=(ETH, 0))
    d.pay(0, 3 * ETH // 10)
    d.pay(1, ETH // 10)
    d.channel.deposit(d.parties[1].address, 2 * ETH)
    d.collect()
    rows = MemoryRows()
    rows.apply_all(Balances(), d.events)
    (row,) = rows.all(CHANNELS)
    assert (row["deposit_a"], row["deposit_b"]) == (ETH, 2 * ETH)
    assert (row["sent_a"], row["sent_b"]) == (3 * ETH // 10, ETH // 10)
    assert (row["balance_a"], row["balance_b"]) == tuple(d.channel.balances.values())
    assert row["sequence"] == 2 and row["head_hash"] == d.channel.head_hash
    assert row["status"] == "open"

    d.channel.request_settlement(at=3_000)
    d.channel.close(at=3_100, payouts=[ETH, 2 * ETH])
    rows.apply_all(Balances(), d.collect())
    (row,) = rows.all(CHANNELS)
    assert row["status"] == "closed" and (row["balance_a"], row["balance_b"]) == (ETH, 2 * ETH)


def test_interval_checkpoints_update_the_channel_and_the_settlements():
    d = Driver.open()
    for _ in range(4):  # checkpoint_interval = 3
        d.pay(0, 1000)
    d.channel.confirm_checkpoint(3, "0x" + "ab" * 32, 77)
    d.collect()
    rows = MemoryRows()
    rows.apply_all(Balances(), d.events)
    rows.apply_all(Settlements(), d.events)
    (ch,) = rows.all(CHANNELS)
    assert (ch["checkpoint_sequence"], ch["confirmed_sequence"]) == (3, 3)
    (cp,) = rows.all(SETTLEMENTS)
    assert (cp["kind"], cp["sequence"], cp["state"], cp["reason"]) == ("checkpoint", 3, "confirmed", "interval")
    assert (cp["tx_hash"], cp["block"], cp["requested_at"]) == ("0x" + "ab" * 32, 77, 2_000)


def test_settlement_and_dispute_requests_then_close_confirms_the_settlement():
    d = Driver.open()
    d.pay(0, 5)
    d.channel.request_dispute(at=2_500, requested_by="watchtower")
    d.channel.request_settlement(at=3_000, requested_by="control")
    d.channel.close(at=3_600)
    d.collect()
    rows = MemoryRows()
    rows.apply_all(Settlements(), d.events)
    by_kind = {r["kind"]: r for r in rows.all(SETTLEMENTS)}
    assert by_kind["dispute"]["from_sequence"] == 1 and by_kind["dispute"]["sequence"] == 1
    assert by_kind["dispute"]["state"] == "requested" and by_kind["dispute"]["reason"] == "watchtower"
    assert by_kind["settlement"]["state"] == "confirmed" and by_kind["settlement"]["confirmed_at"] == 3_600


def test_settlement_states_only_move_forward():
    rows = MemoryRows()
    advance(rows, "c", "checkpoint", 3, "requested", requested_at=1)
    advance(rows, "c", "checkpoint", 3, "submitted", tx_hash="0x1", gas=21000)
    advance(rows, "c", "checkpoint", 3, "confirmed", block=9)
    advance(rows, "c", "checkpoint", 3, "submitted", gas=30000)  # late, out of order
    (row,) = rows.all(SETTLEMENTS)
    assert (row["state"], row["tx_hash"], row["block"], row["gas"], row["requested_at"]) == (
        "confirmed", "0x1", 9, 30000, 1)
    with pytest.raises(ValueError):
        advance(rows, "c", "checkpoint", 3, "lost")


def test_the_process_managers_transactions_move_the_rows():
    from types import SimpleNamespace

    def ev(name, **kw):  # the handlers read attributes only; dispatch by name is checked below
        assert f"SettlementIntent.{name}" in Settlements().handled_events
        return SimpleNamespace(**kw)

    d = Driver.open()
    for _ in range(3):  # checkpoint_interval = 3
        d.pay(0, 1000)
    d.channel.request_settlement(at=3_000)
    d.collect()
    rows = MemoryRows()
    rows.apply_all(Settlements(), d.events)
    cid = d.channel.id
    model = Settlements()
    model.transaction_submitted(ev("TransactionSubmitted", channel_id=cid, kind="checkpoint", sequence=3, tx_hash="0x1"), rows)
    model.transaction_confirmed(
        ev("TransactionConfirmed", channel_id=cid, kind="checkpoint", sequence=3, tx_hash="0x1", block=5, gas_used=62_000),
        rows,
    )
    model.transaction_confirmed(
        ev("TransactionConfirmed", channel_id=cid, kind="close", sequence=3, tx_hash="0x2", block=6, gas_used=68_000),
        rows,
    )
    model.transaction_failed(ev("TransactionFailed", channel_id=cid, kind="update", sequence=3, reason="NotPayee", final=True), rows)
    by_kind = {r["kind"]: r for r in rows.all(SETTLEMENTS)}
    assert (by_kind["checkpoint"]["state"], by_kind["checkpoint"]["gas"], by_kind["checkpoint"]["block"]) == ("confirmed", 62_000, 5)
    assert (by_kind["settlement"]["state"], by_kind["settlement"]["tx_hash"]) == ("submitted", "0x2")  # until ChannelClosed
    assert (by_kind["update"]["state"], by_kind["update"]["error"]) == ("failed", "NotPayee")


def test_history_keeps_the_hash_chain_in_sequence_order():
    d = Driver.open()
    d.pay(0, 10)
    d.pay(1, 4)
    rows = MemoryRows()
    rows.apply_all(PaymentHistory(), d.events)
    first, second = sorted(rows.all(PAYMENTS), key=lambda r: r["sequence"])
    assert first["previous_hash"] == "0x" + "00" * 32
    assert second["previous_hash"] == first["transaction_hash"]
    assert second["previous_id"] == first["invoice_id"]
    assert (second["buyer"], second["price"], second["buyer_total"]) == (d.parties[1].address, 4, 4)
    assert (second["buyer_balance"], second["supplier_balance"]) == (
        d.channel.balance_of(d.parties[1].address), d.channel.balance_of(d.parties[0].address))
    assert second["currency"] == "ETH"


def test_revenue_example_sums_a_sellers_channels_per_currency():
    a = Driver.open(seed=1, a=0, b=1)
    b = Driver.open(seed=2, a=2, b=1, currency="BTC", deposits=(10**8, 0))
    a.pay(0, 7)
    a.pay(0, 3)
    a.pay(1, 1)
    b.pay(0, 50)
    rows = MemoryRows()
    rows.apply_all(RevenueBySeller(), a.events + b.events)
    seller = a.parties[1].address
    got = {(r["currency"], r["channel_id"]): (r["revenue"], r["payments"]) for r in rows.all(REVENUE)
           if r["seller"] == seller}
    assert got == {("ETH", str(a.channel.id)): (10, 2), ("BTC", str(b.channel.id)): (50, 1)}


def test_participant_totals_sum_channels_per_currency():
    chans = [
        ChannelBalance("1", "ETH", ("x", "y"), (10, 0), (3, 1), (8, 2), 2, "h", 0, 0, "open"),
        ChannelBalance("2", "ETH", ("z", "x"), (5, 5), (0, 4), (9, 1), 1, "h", 0, 0, "open"),
    ]
    x = {p.address: p for p in participant_totals(chans)}["x"]
    assert (x.channels, x.deposited, x.sent, x.received, x.balance) == (2, 15, 7, 1, 9)


def test_a_read_model_ignores_events_it_does_not_handle():
    d = Driver.open()
    rows = MemoryRows()
    assert PaymentHistory().apply(event_name(d.events[0]), d.events[0], rows) is False
    assert rows.all(PAYMENTS) == []


def test_tables_refuse_bad_names_and_rows():
    with pytest.raises(ValueError):
        Table("Bad-Name", (Column("a"),), key=("a",))
    with pytest.raises(ValueError):
        Table("t", (Column("a"),), key=("b",))
    t = Table("t", (Column("a"), Column("n", "int")), key=("a",))
    with pytest.raises(ValueError):
        MemoryRows().put(t, {"a": "x", "nope": 1})
    with pytest.raises(ValueError):
        MemoryRows().put(t, {"n": 1})


def test_handlers_are_collected_from_subclasses():
    class Base(ReadModel):
        name = "base"
        tables = ()

        @handles("Channel.ChannelOpened")
        def opened(self, event, rows):
            pass

    class Child(Base):
        name = "child"

        @handles("Channel.PaymentAccepted", "Channel.DepositMade")
        def moved(self, event, rows):
            pass

    assert Child().handled_events == {"Channel.ChannelOpened", "Channel.PaymentAccepted", "Channel.DepositMade"}
    assert Base().handled_events == {"Channel.ChannelOpened"}
