"""The ChannelService port: one suite of its commands and queries, run on every event store.

A subclass per store supplies ``make_service`` (a fixture: a factory of fresh ChannelService
processes over one store; ``cache=False`` for one that must read the store) and lives with the
tests of what it needs: memory and SQLite in tests/unit, Kafka in tests/integration/kafka.
"""

from __future__ import annotations

import uuid

import pytest

from domain.application import ChannelService
from domain.channel import PaymentOutcome
from domain.errors import (
    BrokenHashPointer,
    ChannelAlreadyExists,
    ChannelIsClosed,
    Overspend,
    UnknownChannel,
    WrongSigner,
)
from tests.builders import ALICE, BOB, DOMAIN, PARAMS, T0, Ledger, addr


def open_alice_bob(service: ChannelService, deposit_a: int = 1000, deposit_b: int = 0) -> Ledger:
    cid = uuid.uuid4()
    service.open_channel(
        channel_id=cid,
        public_key_a=ALICE.public_key,
        public_key_b=BOB.public_key,
        currency="ETH",
        deposit_a=deposit_a,
        deposit_b=deposit_b,
        parameters=PARAMS,
        domain=DOMAIN,
        at=T0,
    )
    return Ledger(cid)


def services(env: dict[str, str]):
    """A factory of ChannelService processes over one store's ``env``; each closed at the end."""
    made: list[ChannelService] = []

    def make(cache: bool = True) -> ChannelService:
        e = dict(env)
        if not cache:
            e.pop("AGGREGATE_CACHE_MAXSIZE", None)
        made.append(ChannelService(env=e))
        return made[-1]

    return make, made


class ChannelServiceSuite:
    """Subclass with a ``make_service`` fixture; the name keeps pytest from collecting this class."""

    def test_open_pay_and_query(self, make_service):
        service = make_service()
        ledger = open_alice_bob(service, 1000, 200)
        for payer, price in [(ALICE, 100), (BOB, 50), (ALICE, 25)]:
            result = service.accept_payment(ledger.pay(payer, price).to_json(), at=T0)
            assert result.outcome is PaymentOutcome.ACCEPTED
        view = service.get_channel(ledger.channel_id)
        assert view.balances == (925, 275) and view.sequence == 3
        assert view.participants == (addr(ALICE), addr(BOB))


    def test_state_survives_a_restart_and_equals_a_replay(self, make_service):
        service = make_service()
        ledger = open_alice_bob(service, 1000, 100)
        for i in range(12):  # crosses checkpoint requests (m=5)
            service.accept_payment(ledger.pay(ALICE if i % 3 else BOB, 10 if i % 3 else 1), at=T0 + i)
        before = service.get_channel(ledger.channel_id)
        fresh = make_service(cache=False)
        after = fresh.get_channel(ledger.channel_id)
        assert after == before
        events = fresh.channel_events(ledger.channel_id)
        names = [type(e).__name__ for e in events]
        assert names.count("PaymentAccepted") == 12 and names.count("CheckpointRequested") == 2
        assert [e.originator_version for e in events] == list(range(1, len(events) + 1))


    def test_a_repeat_is_stored_once(self, make_service):
        service = make_service()
        ledger = open_alice_bob(service)
        tx = ledger.pay(ALICE, 10)
        assert service.accept_payment(tx, at=T0).outcome is PaymentOutcome.ACCEPTED
        assert service.accept_payment(tx.to_json(), at=T0).outcome is PaymentOutcome.DUPLICATE
        fresh = make_service(cache=False)  # also after a restart
        assert fresh.accept_payment(tx, at=T0).outcome is PaymentOutcome.DUPLICATE
        assert fresh.get_channel(ledger.channel_id).balances == (990, 10)


    def test_refused_commands_change_nothing(self, make_service):
        service = make_service()
        ledger = open_alice_bob(service, 100, 0)
        service.accept_payment(ledger.pay(ALICE, 100), at=T0)
        version = service.get_channel(ledger.channel_id).version
        with pytest.raises(Overspend):
            service.accept_payment(ledger.pay(ALICE, 1, advance=False), at=T0)
        bad = ledger.pay(BOB, 5, advance=False).to_dict()
        bad["invoiceSignature"] = "0x" + ALICE.sign_digest(b"\1" * 32).hex()
        import json

        with pytest.raises(WrongSigner):
            service.accept_payment(json.dumps(bad).encode(), at=T0)
        from domain.protocol import HashPointer

        with pytest.raises(BrokenHashPointer):
            service.accept_payment(
                ledger.pay(BOB, 5, advance=False, previous=HashPointer(transaction_id=uuid.uuid4(), transaction_hash=b"\2" * 32)),
                at=T0,
            )
        assert service.get_channel(ledger.channel_id).version == version
        # and the service still works after refusals (the cache was not corrupted)
        assert service.accept_payment(ledger.pay(BOB, 5), at=T0).outcome is PaymentOutcome.ACCEPTED
        assert make_service(cache=False).get_channel(ledger.channel_id).balances == (5, 95)


    def test_unknown_and_duplicate_channels(self, make_service):
        service = make_service()
        with pytest.raises(UnknownChannel):
            service.get_channel(uuid.uuid4())
        with pytest.raises(UnknownChannel):
            service.accept_payment(Ledger(uuid.uuid4()).pay(ALICE, 1), at=T0)
        ledger = open_alice_bob(service)
        other = make_service(cache=False)
        with pytest.raises(ChannelAlreadyExists):
            other.open_channel(
                channel_id=ledger.channel_id, public_key_a=ALICE.public_key, public_key_b=BOB.public_key,
                currency="ETH", deposit_a=1, deposit_b=1, parameters=PARAMS, domain=DOMAIN, at=T0,
            )


    def test_checkpoints_settlement_dispute_and_close(self, make_service):
        service = make_service()
        ledger = open_alice_bob(service, 100, 100)
        for _ in range(3):
            service.accept_payment(ledger.pay(ALICE, 10), at=T0)
        assert service.request_checkpoint(ledger.channel_id, at=T0)
        assert not service.request_checkpoint(ledger.channel_id, at=T0)  # nothing new
        service.confirm_checkpoint(ledger.channel_id, 3, "0x" + "ab" * 32, 7)
        service.accept_payment(ledger.pay(BOB, 5), at=T0)
        assert service.check_timeouts([ledger.channel_id], now=T0 + PARAMS.checkpoint_timeout) == [ledger.channel_id]
        service.request_dispute(ledger.channel_id, at=T0)
        service.request_settlement(ledger.channel_id, at=T0)
        view = service.close_channel(ledger.channel_id, at=T0 + 700)
        assert view.status == "closed" and view.balances == (75, 125)
        with pytest.raises(ChannelIsClosed):
            service.accept_payment(ledger.pay(ALICE, 1), at=T0)
        names = [type(e).__name__ for e in make_service(cache=False).channel_events(ledger.channel_id)]
        assert names == [
            "ChannelOpened", "PaymentAccepted", "PaymentAccepted", "PaymentAccepted", "CheckpointRequested",
            "CheckpointConfirmed", "PaymentAccepted", "CheckpointRequested", "DisputeRequested",
            "SettlementRequested", "ChannelClosed",
        ]


    def test_defect9_late_repeats_beyond_the_retained_hashes_are_judged_by_the_log(self, make_service):
        """The aggregate keeps only its latest hashes; an older repeat is still a repeat, a fork a fork."""
        from domain.channel import RETAINED_HASHES
        from domain.errors import ConflictingPayment

        service = make_service()
        ledger = open_alice_bob(service, 10**9, 0)
        first = ledger.pay(ALICE, 1)
        service.accept_payment(first, at=T0)
        fork_of_first = Ledger(ledger.channel_id).pay(ALICE, 2)  # another sequence-1 transaction
        batch = [ledger.pay(ALICE, 1) for _ in range(RETAINED_HASHES + 10)]
        # a repeat of a payment in the same batch, more than RETAINED_HASHES payments back (unsaved yet)
        results = service.accept_payments([*batch, batch[0]], at=T0)
        assert [r.outcome for r in results] == [PaymentOutcome.ACCEPTED] * len(batch) + [PaymentOutcome.DUPLICATE]
        for svc in (service, make_service(cache=False)):
            assert svc.accept_payment(first, at=T0).outcome is PaymentOutcome.DUPLICATE
            with pytest.raises(ConflictingPayment):
                svc.accept_payment(fork_of_first, at=T0)
        assert service.get_channel(ledger.channel_id).sequence == RETAINED_HASHES + 11


    def test_long_channels_load_from_snapshots(self, make_service):
        service = make_service(cache=False)
        ledger = open_alice_bob(service, 10**6, 0)
        for _ in range(210):  # snapshot interval is 200
            service.accept_payment(ledger.pay(ALICE, 1), at=T0)
        assert service.snapshots is not None
        snaps = list(service.snapshots.get(ledger.channel_id, desc=True, limit=1))
        assert snaps and snaps[0].originator_version >= 200
        assert make_service(cache=False).get_channel(ledger.channel_id).sequence == 210
