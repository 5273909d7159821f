"""Issue 14: over random routes, behaviours and times, no honest party of a mediated transfer loses money."""

from __future__ import annotations

from hypothesis import event, given, settings
from hypothesis import strategies as st

from domain import mediation as m
from tests.unit.test_mediation import T0, Network

PARTIES = ["0x" + format(i, "040x") for i in range(1, 8)]
BEHAVIOURS = st.sampled_from(["cooperative", "silent", "onchain"])


@settings(max_examples=150, deadline=None)
@given(hops=st.integers(1, 5), data=st.data())
def test_no_honest_party_loses(hops, data):
    route = PARTIES[: hops + 1]
    behaviour = {p: data.draw(BEHAVIOURS, label=p) for p in route[1:]}
    slack = data.draw(st.integers(-40, 60), label="expiry slack")
    amount = data.draw(st.integers(1, 10**6), label="amount")
    first_expiry = T0 + 30 * hops + 20 + slack
    net = Network(route, behaviour=behaviour, first_expiry=first_expiry)
    net.start(amount)
    step = data.draw(st.integers(1, 7), label="tick")
    net.run_until(first_expiry + 60, step=step)

    initiator, target = route[0], route[-1]
    for party in route[1:-1]:
        if behaviour[party] != "silent":
            assert net.balance[party] >= 0, (party, net.balance)
    if behaviour[target] != "silent":
        assert net.balance[target] >= 0
    if net.balance[initiator] < 0:  # the initiator paid only if the target was paid
        assert net.balance[target] >= amount
    if net.outputs(initiator, m.PaymentSucceeded):
        assert net.balance[target] >= amount
    assert not net.locks  # every lock decided, on- or off-chain

    forwarded = [o for _, o in net.log if isinstance(o, m.ForwardLock) and o.expiry]
    amounts = [a for a, _ in net.sent]
    expiries = [e for _, e in net.sent]
    event(f"{len(net.sent)} of {hops} locks; paid: {net.balance[target] >= amount}")
    assert amounts == sorted(amounts, reverse=True)  # non-increasing downstream
    assert all(a - b >= 10 for a, b in zip(expiries, expiries[1:], strict=False))  # reveal_timeout
    assert all(o.amount > 0 for o in forwarded)
