"""Every kind of channel transaction through a real node on Kafka (issue 14): locked transfers,
unlocks, lock expiries and a plugin's own kind are signed, reordered, applied once and replayed.

The plugin (``domain/examples/metered.py``) is loaded the way a deployment loads it: by module name
through the ``kind_plugins`` setting (``bootstrap.load_kind_plugins``), nothing of Parsec edited.
"""

from __future__ import annotations

import time
import uuid

import pytest

from domain import kinds
from domain.application import ChannelView
from domain.locks import secret_hash
from infrastructure import bootstrap
from infrastructure.node import Sender
from infrastructure.tools.workload import make_channels
from tests.builders import Ledger
from tests.integration.node import harness

pytestmark = [pytest.mark.integration, pytest.mark.kafka]


def test_locks_unlocks_expiries_and_a_plugin_kind_are_ordered_applied_and_replayed(node_config, tmp_path):
    config = node_config(window=64).model_copy(update={"kind_plugins": "domain.examples.metered"})
    assert bootstrap.load_kind_plugins(config) == ["meteredUsage"] and "meteredUsage" in kinds.kinds()
    (plan,) = make_channels("kinds", 1)
    led = Ledger(plan.channel_id, a=plan.a.key, b=plan.b.key, domain=plan.domain)
    now = int(time.time())
    s1, s2 = b"\x01" * 32, b"\x02" * 32
    txs = [
        led.lock(plan.a.key, 300, s1, now + 120),                    # 1: A locks 300 for B
        led.lock(plan.a.key, 200, s2, now + 10),                     # 2: a lock that will expire
        led.pay(plan.b.key, 40, kind="meteredUsage", terms={        # 3: B pays 4 units × 10 (plugin)
            "meterId": str(uuid.UUID(int=7)), "units": 4, "unitPrice": "10"}),
        led.unlock(plan.a.key, s1),                                  # 4: the secret: B gets the 300
    ]
    deposits = plan.deposits
    with harness.running_node(config):
        sender = Sender(config)
        harness.open_channels(sender, [plan])
        service = harness.reader(config)
        harness.wait_opened(service, [plan])
        for tx in [txs[3], txs[1], txs[0], txs[2], txs[0]]:  # out of order, one repeat
            sender.payment(tx)
        sender.flush()
        harness.wait_for(lambda: service.get_channel(plan.channel_id).sequence == 4, 60, "four transactions applied")
        time.sleep(max(0, now + 10 + kinds.LOCK_EXPIRY_MARGIN + 1 - time.time()))
        expiry = led.expire(plan.a.key, secret_hash(s2))            # 5: after expiry + margin, A takes it back
        sender.payment(expiry)
        sender.flush()
        harness.wait_for(lambda: service.get_channel(plan.channel_id).sequence == 5, 60, "the expiry applied")
        sender.close()
    view = service.get_channel(plan.channel_id)
    assert view.balances == (deposits[0] - 300 + 40, deposits[1] + 300 - 40) and view.locked == (0, 0)
    replayed, events = harness.replay(service, plan.channel_id)
    assert ChannelView.of(replayed) == view
    accepted = [e for e in events if type(e).__name__ == "PaymentAccepted"]
    assert [e.kind for e in accepted] == ["lockedTransfer", "lockedTransfer", "meteredUsage", "unlock", "lockExpired"]
    assert [e.transferred for e in accepted] == [0, 0, 40, 300, 0]
    assert harness.read_rejected(config) == []

    from projections.balances import Balances, channel_balances
    from projections.runner import rebuild
    from projections.source import source_for
    from projections.sqlite import SQLiteStore

    store = SQLiteStore(tmp_path / "balances.sqlite")
    rebuild(source_for(service), store, Balances())
    (row,) = [r for r in channel_balances(store) if r.channel_id == str(plan.channel_id)]
    assert row.balances == view.balances and row.locked == (0, 0)
    store.close()
    service.close()
