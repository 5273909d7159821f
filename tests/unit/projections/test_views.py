"""Event views read the same values from the stored bytes as the domain events hold."""

from __future__ import annotations

import msgspec
import pytest
from channel_driver import Driver

from projections import views
from projections.model import ReadModel, handles
from projections.views import VIEWS, UndecodableView, view_of

ETH = 10**18


def _channel_life() -> list:
    d = Driver.open(deposits=(2**128 - 1, ETH))  # an amount past 64 bits stays exact
    for i in range(7):
        d.pay(i % 2, 10**16 + i)
    d.channel.deposit(d.parties[1].address, 2 * ETH)
    d.channel.confirm_checkpoint(3, "0x" + "ab" * 32, 12)
    d.channel.request_settlement(at=3_000)
    d.channel.close(at=3_100)
    d.collect()
    return d.events


def _plain(value):
    if isinstance(value, list | tuple):
        return tuple(_plain(v) for v in value)
    return value


def test_every_view_field_equals_the_domain_events_attribute():
    events = _channel_life()
    seen = set()
    for event in events:
        name = type(event).__qualname__
        if name not in VIEWS:
            continue
        seen.add(name)
        view = view_of(event)
        assert type(view) is VIEWS[name]
        assert view.originator_id == str(event.originator_id)
        assert view.originator_version == event.originator_version
        assert view.timestamp is not None and view.timestamp.isoformat() == event.timestamp.isoformat()
        assert view.timestamp.timestamp() == event.timestamp.timestamp()
        for field in type(view).__struct_fields__:
            if field in ("timestamp", "originator_id", "originator_version"):
                continue
            if field == "transaction":
                tx = event.transaction
                assert view.transaction.currency == tx["currency"]
                previous = tx["hashPointerToPrevious"]
                assert view.transaction.hashPointerToPrevious.transactionHash == previous["transactionHash"]
                assert view.transaction.hashPointerToPrevious.transactionID == previous["transactionID"]
                continue
            assert _plain(getattr(view, field)) == _plain(getattr(event, field)), (name, field)
    assert {"Channel.ChannelOpened", "Channel.PaymentAccepted", "Channel.CheckpointRequested",
            "Channel.CheckpointConfirmed", "Channel.DepositMade", "Channel.SettlementRequested",
            "Channel.ChannelClosed"} <= seen


def test_amounts_are_exact_integers_never_floats():
    opened = view_of(_channel_life()[0])
    assert opened.deposits == (2**128 - 1, ETH) and all(type(x) is int for x in opened.deposits)


def test_an_event_missing_a_field_or_of_another_type_is_refused_with_its_name():
    with pytest.raises(UndecodableView, match=r"Channel.PaymentAccepted of c1 v7: Object missing required field"):
        views.decode("Channel.PaymentAccepted", b'{"sequence": 1}', "c1", 7)
    with pytest.raises(UndecodableView, match=r"Expected `int`, got `float`"):
        views.decode("Channel.DepositMade", b'{"participant": "0xA", "total": 1.5}', "c1", 2)
    with pytest.raises(msgspec.DecodeError):  # not JSON at all: the decoder's own error, not a view's
        views.decode("Channel.DepositMade", b"{", "c1", 2)


def test_events_recorded_before_locks_read_as_nothing_locked():
    state = (b'{"sequence":1,"transaction_hash":"0x1","invoice_id":"i","buyer":"0xA","supplier":"0xB",'
             b'"price":5,"buyer_total":5,"balances":[1,2],"transaction":{"currency":"ETH"}}')
    view = views.decode("Channel.PaymentAccepted", state, "c1", 2)
    assert (view.kind, view.locked, view.timestamp) == ("payment", None, None)
    assert view.transaction.hashPointerToPrevious is None


def test_a_read_model_of_views_must_have_a_view_for_every_event_it_handles():
    with pytest.raises(TypeError, match=r"has none of \['Channel.SecretRegistered'\]"):
        class Secrets(ReadModel, name="secrets", tables=(), reads_views=True):
            @handles("Channel.SecretRegistered")
            def registered(self, event, rows):
                pass


def test_an_event_of_a_topic_this_code_does_not_know_is_not_decodable():
    """What the mediators test before they read an event (a newer writer's): a method, called."""
    import uuid

    from eventsourcing.persistence import JSONTranscoder, Mapper, StoredEvent

    from projections.source import SourceEvent

    stored = StoredEvent(originator_id=uuid.uuid4(), originator_version=1,
                         topic="parsec_next.channel:Channel.Teleported", state=b"{}")
    assert SourceEvent.of(0, 1, stored, Mapper(transcoder=JSONTranscoder())).decodable() is False


def test_the_process_managers_transaction_events_read_the_same_as_their_domain_events():
    import uuid

    from infrastructure.settlement.aggregates import SettlementIntent

    channel = uuid.uuid4()
    intent = SettlementIntent(intent_id=uuid.uuid4(), kind="checkpoint", channel_id=channel, sequence=3,
                              payload=[], not_before=0, attempt=1, after=0, deadline=0, subject="")
    intent.submitted("0x" + "12" * 32, "0xSender", 7, "0xraw")
    intent.confirmed("0x" + "12" * 32, 41, 62_000, None)
    intent.failed("NotPayee", True)
    seen = {}
    for event in intent.collect_events():
        name = type(event).__qualname__
        if name in VIEWS:
            view = view_of(event)
            seen[name] = view
            assert str(view.channel_id) == str(channel) and (view.kind, view.sequence) == ("checkpoint", 3)
    assert seen["SettlementIntent.TransactionSubmitted"].tx_hash == "0x" + "12" * 32
    confirmed = seen["SettlementIntent.TransactionConfirmed"]
    assert (confirmed.block, confirmed.gas_used) == (41, 62_000)
    failed = seen["SettlementIntent.TransactionFailed"]
    assert (failed.reason, failed.final) == ("NotPayee", True)
