"""The wallet against a real node on the real broker: pay through the Kafka transport, reconcile
with the node's events and rejected topics, re-send as a duplicate, recover from a refusal."""

from __future__ import annotations

import threading
import uuid
from collections import Counter

import pytest

from domain.addresses import eth_address_from_public_key
from domain.crypto import PrivateKey
from infrastructure import bootstrap
from infrastructure.client import ChannelTerms, PaymentState
from infrastructure.node.messages import OpenChannelRequest
from infrastructure.tools.workload import DEV_DOMAIN
from tests.integration.node import harness

pytestmark = [pytest.mark.integration, pytest.mark.kafka]

A = PrivateKey.from_seed("wallet-it/a")
B = PrivateKey.from_seed("wallet-it/b")


def open_request(channel: uuid.UUID, deposit_a: int = 10**18, deposit_b: int = 10**17) -> OpenChannelRequest:
    return OpenChannelRequest(channel=channel, public_key_a="0x" + A.public_key.hex(),
                              public_key_b="0x" + B.public_key.hex(), deposit_a=deposit_a, deposit_b=deposit_b,
                              chain_id=DEV_DOMAIN.chain_id, contract=DEV_DOMAIN.verifying_contract).signed(A, DEV_DOMAIN)


def accepted_sequences(service, channel) -> list[int]:
    return [e.sequence for e in service.events.get(channel) if type(e).__name__ == "PaymentAccepted"]


def test_pay_through_kafka_and_reconcile_with_the_node(node_config, tmp_path):
    config = node_config(session_timeout_ms=30000, wallet_path=tmp_path / "a.sqlite")
    channel = uuid.uuid4()
    request = open_request(channel)
    with harness.running_node(config):
        sender = bootstrap.sender(config)
        sender.sent(sender.control(request))
        wa = bootstrap.wallet(config, A)
        wa.track(ChannelTerms.from_open_request(request))

        # concurrent payers in one process: distinct sequences, one chain, all accepted
        errors: list[BaseException] = []

        def pay_some() -> None:
            try:
                for _ in range(5):
                    wa.pay(channel, 10**15)
            except BaseException as err:  # pragma: no cover - reported below
                errors.append(err)

        threads = [threading.Thread(target=pay_some) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors
        report = wa.wait(channel, timeout=60)
        assert report.unsettled == 0 and sorted(report.accepted) == list(range(1, 21))
        assert Counter(p.state for p in wa.payments(channel)) == {PaymentState.ACCEPTED: 20}

        # the same bytes again are a duplicate at the node: nothing applied twice, nothing refused
        first = wa.payments(channel)[0]
        wa.transport.send(first.raw, channel)
        service = harness.reader(config)
        probe = wa.pay(channel, 10**15)  # sent after the repeat, on the same partition: applied after it
        assert wa.wait(channel, timeout=60).accepted == [probe.sequence]
        assert accepted_sequences(service, channel) == list(range(1, 22))
        assert [r for r in harness.read_rejected(config) if r.key == str(channel).encode()] == []

        # B learns A's payments from the node's log and pays back on the channel's head
        wb = bootstrap.wallet(config.model_copy(update={"wallet_path": tmp_path / "b.sqlite"}), B)
        state_b = wb.track_from_node(channel)
        assert (state_b.role, state_b.sequence, state_b.their_total) == ("B", 21, 21 * 10**15)
        back = wb.pay(channel, 5 * 10**15)
        assert back.sequence == 22
        assert wb.wait(channel, timeout=60).accepted == [22]
        st = wa.wait(channel, timeout=30)
        assert st.counterparty == [22]
        assert wa.channel(channel).their_total == 5 * 10**15
        for w in (wa, wb):
            w.close()
        service.close()
        sender.close()


def test_a_refusal_by_the_node_is_reconciled_and_its_sequence_reused(node_config, tmp_path):
    config = node_config(session_timeout_ms=30000, wallet_path=tmp_path / "a.sqlite")
    channel = uuid.uuid4()
    request = open_request(channel, deposit_a=10**16)
    with harness.running_node(config):
        sender = bootstrap.sender(config)
        sender.sent(sender.control(request))
        wa = bootstrap.wallet(config, A)
        # the wallet believes in a larger deposit than the node holds: the node refuses the overspend
        terms = ChannelTerms.from_open_request(request)
        wa.track(ChannelTerms(**{**terms.__dict__, "deposit_a": 10**18}))
        ok = wa.pay(channel, 10**15)
        too_much = wa.pay(channel, 5 * 10**16)
        after = wa.pay(channel, 10**15)  # chains on the refused one: it can never be applied
        report = wa.wait(channel, timeout=60)
        assert report.accepted == [1] and report.rejected == {2: "Overspend"}
        states = {p.tx_hash: p.state for p in wa.payments(channel)}
        assert states[ok.tx_hash] is PaymentState.ACCEPTED
        assert states[too_much.tx_hash] is PaymentState.REJECTED
        assert states[after.tx_hash] in (PaymentState.VOID, PaymentState.REJECTED)
        assert wa.channel(channel).sequence == 1
        again = wa.pay(channel, 10**15)
        assert again.sequence == 2 and again.previous == ok.pointer
        assert wa.wait(channel, timeout=60).accepted == [2]
        service = harness.reader(config)
        assert accepted_sequences(service, channel) == [1, 2]
        assert service.get_channel(channel).sent[0] == 2 * 10**15
        assert eth_address_from_public_key(A.public_key) == wa.address
        wa.close()
        service.close()
        sender.close()
