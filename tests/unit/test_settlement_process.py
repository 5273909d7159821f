"""The settlement process manager: pure transitions, given / when / then."""

import uuid

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from domain.settlement import (
    CheckpointWanted,
    CloseChannel,
    ClosedOnChain,
    ConfirmCheckpoint,
    Confirmed,
    DisputeWanted,
    Failed,
    IntentKind,
    IntentStatus,
    ProcessState,
    ReportGiveUp,
    SendTransaction,
    SettlementWanted,
    Submitted,
    UpdateWanted,
    intent_id,
    transition,
    wanted,
)

CH = uuid.UUID(int=42)


def run(state, *events):
    outputs = []
    for e in events:
        state, out = transition(state, e)
        outputs += out
    return state, outputs


def test_a_checkpoint_request_becomes_one_intent_with_a_deterministic_id():
    state, out = run(ProcessState(), CheckpointWanted(CH, 10, ({"sequence": 10},)))
    (send,) = out
    assert isinstance(send, SendTransaction) and send.intent.kind is IntentKind.CHECKPOINT
    assert send.intent.intent_id == intent_id(IntentKind.CHECKPOINT, CH, 10)
    # the same request replayed (a restart re-reads the log): nothing new
    state2, out2 = run(state, CheckpointWanted(CH, 10, ({"sequence": 10},)))
    assert out2 == [] and state2 == state


def test_confirmation_tells_the_channel():
    iid = intent_id(IntentKind.CHECKPOINT, CH, 10)
    state, out = run(
        ProcessState(), CheckpointWanted(CH, 10, ()), Submitted(iid, "0xaa"), Confirmed(iid, "0xaa", 7, 51_000)
    )
    assert out[-1] == ConfirmCheckpoint(CH, 10, "0xaa", 7)
    rec = state.record(iid)
    assert (rec.status, rec.block, rec.gas_used) == (IntentStatus.CONFIRMED, 7, 51_000)
    assert state.open_intents() == []


def test_a_newer_checkpoint_supersedes_a_pending_older_one():
    state, out = run(ProcessState(), CheckpointWanted(CH, 10, ()), CheckpointWanted(CH, 20, ()))
    assert state.record(intent_id(IntentKind.CHECKPOINT, CH, 10)).status is IntentStatus.SUPERSEDED
    assert [o.intent.sequence for o in out] == [10, 20]
    # a submitted one is not superseded: it may already be on its way
    iid30 = intent_id(IntentKind.CHECKPOINT, CH, 30)
    state, _ = run(state, CheckpointWanted(CH, 30, ()), Submitted(iid30, "0x1"), CheckpointWanted(CH, 40, ()))
    assert state.record(iid30).status is IntentStatus.SUBMITTED


def test_failures_are_retried_then_given_up():
    iid0 = intent_id(IntentKind.DISPUTE, CH, 5)
    state, out = run(ProcessState(max_attempts=2), DisputeWanted(CH, 1, 5), Failed(iid0, "nonce too low"))
    retry = out[-1]
    assert isinstance(retry, SendTransaction) and retry.intent.attempt == 1 and retry.intent.intent_id != iid0
    state, out = run(state, Failed(retry.intent.intent_id, "nonce too low"))
    assert isinstance(out[-1], ReportGiveUp)
    state, out = run(ProcessState(), DisputeWanted(CH, 1, 5), Failed(iid0, "revert: BrokenHashLink", final=True))
    assert isinstance(out[-1], ReportGiveUp)


def test_settlement_closes_then_settles_after_the_challenge_period():
    state, out = run(ProcessState(), SettlementWanted(CH, 9, ()))
    close = out[0].intent
    assert close.kind is IntentKind.CLOSE
    state, out = run(state, Confirmed(close.intent_id, "0xc", 3, 80_000), ClosedOnChain(CH, 9, settle_after=1_000))
    settle = out[-1].intent
    assert settle.kind is IntentKind.SETTLE and settle.not_before == 1_000
    state, out = run(state, Confirmed(settle.intent_id, "0xd", 9, 60_000))
    assert out == [CloseChannel(CH, "0xd", 9)]


class ProcessMachine(RuleBasedStateMachine):
    """Random interleavings of requests and chain observations keep the invariants."""

    def __init__(self):
        super().__init__()
        self.state = ProcessState()
        self.sent: list = []

    def _apply(self, event):
        self.state, out = transition(self.state, event)
        self.sent += [o.intent.intent_id for o in out if isinstance(o, SendTransaction)]

    @rule(seq=st.integers(1, 30), kind=st.sampled_from(["checkpoint", "settle", "dispute"]))
    def request(self, seq, kind):
        cls = {"checkpoint": CheckpointWanted, "settle": SettlementWanted, "dispute": DisputeWanted}[kind]
        self._apply(DisputeWanted(CH, 1, seq) if cls is DisputeWanted else cls(CH, seq, ()))

    @rule(data=st.data(), what=st.sampled_from(["submit", "confirm", "fail"]))
    def observe(self, data, what):
        if not self.state.intents:
            return
        iid = data.draw(st.sampled_from(sorted(self.state.intents)))
        event = {"submit": Submitted(iid, "0x1"), "confirm": Confirmed(iid, "0x1", 1, 1), "fail": Failed(iid, "x")}[what]
        before = self.state.record(iid).status
        self._apply(event)
        if before is IntentStatus.CONFIRMED:
            assert self.state.record(iid).status is IntentStatus.CONFIRMED  # confirmed is final

    @invariant()
    def each_intent_is_sent_once(self):
        assert len(self.sent) == len(set(self.sent))

    @invariant()
    def superseded_intents_were_never_submitted(self):
        for r in self.state.intents.values():
            if r.status is IntentStatus.SUPERSEDED:
                assert r.tx_hash is None


TestProcessMachine = ProcessMachine.TestCase
TestProcessMachine.settings = settings(max_examples=50, stateful_step_count=30, deadline=None)


def test_a_stale_close_is_answered_with_one_update_intent():
    state, out = run(ProcessState(), UpdateWanted(CH, 12, ({"sequence": 12},)))
    (send,) = out
    assert send.intent.kind is IntentKind.UPDATE
    assert send.intent.intent_id == intent_id(IntentKind.UPDATE, CH, 12)
    # the watcher sees the close again after a restart: nothing new
    assert run(state, UpdateWanted(CH, 12, ({"sequence": 12},)))[1] == []
    state, out = run(state, Confirmed(send.intent.intent_id, "0xu", 4, 63_000))
    assert out == [] and state.open_intents() == []


def test_a_settle_carries_the_chains_payouts_to_the_channel():
    state, out = run(ProcessState(), ClosedOnChain(CH, 0, settle_after=50))
    settle = out[0].intent
    _, out = run(state, Confirmed(settle.intent_id, "0xs", 8, 40_000, payouts=(700, 300)))
    assert out == [CloseChannel(CH, "0xs", 8, (700, 300))]


def test_defect1_a_defence_is_never_given_up_while_the_challenge_period_runs():
    deadline = 10_000
    state, out = run(ProcessState(max_attempts=2), UpdateWanted(CH, 7, ({"sequence": 7},), deadline=deadline))
    (send,) = out
    at = 1_000
    for attempt in range(12):  # reverts that "will repeat", far past max_attempts
        state, out = run(state, Failed(send.intent.intent_id, "revert: Overdraft", final=True, at=at))
        (send,) = out
        assert isinstance(send, SendTransaction) and send.intent.attempt == attempt + 1
        assert send.intent.not_before > at and send.intent.deadline == deadline  # later each time
        at = send.intent.not_before
    assert not any(isinstance(o, ReportGiveUp) for o in out)
    # once the challenge period is over nothing can be submitted: only then is it given up
    state, out = run(state, Failed(send.intent.intent_id, "ChallengePeriodOver", final=True, at=deadline))
    assert isinstance(out[-1], ReportGiveUp)


def test_defect9_a_long_dispute_continues_from_the_head_each_step_recorded():
    iid = intent_id(IntentKind.DISPUTE, CH, 5000)
    state, out = run(ProcessState(), DisputeWanted(CH, 1, 5000), Submitted(iid, "0x1"),
                     Confirmed(iid, "0x1", 10, 2_000_000, reached=200))
    confirm, step = out[-2:]
    assert isinstance(confirm, ConfirmCheckpoint) and confirm.sequence == 200  # what the chain has so far
    assert isinstance(step, SendTransaction) and step.intent.after == 200 and step.intent.sequence == 5000
    assert step.intent.intent_id == intent_id(IntentKind.DISPUTE, CH, 5000, after=200)
    state, out = run(state, Confirmed(step.intent.intent_id, "0x2", 11, 2_000_000, reached=5000))
    assert [type(o).__name__ for o in out] == ["ConfirmCheckpoint"] and out[0].sequence == 5000
    assert not state.open_intents()


def test_channel_events_map_to_process_inputs():
    from tests.builders import ALICE, T0, open_channel

    channel, ledger = open_channel(1000, 500)
    for _ in range(5):  # the 5th is the checkpoint interval
        channel.accept_payment(ledger.pay(ALICE, 10), T0)
    channel.request_settlement(T0 + 1)
    channel.request_dispute(T0 + 2)
    inputs = [w for w in (wanted(e) for e in channel.collect_events()) if w is not None]
    checkpoint, settlement, dispute = inputs
    assert checkpoint == CheckpointWanted(channel.id, 5, (channel.latest[ledger_addr(ledger)],))
    assert isinstance(settlement, SettlementWanted) and settlement.sequence == 5
    assert dispute == DisputeWanted(channel.id, 1, 5)  # a range of the log, not a copy of it


def ledger_addr(ledger):
    from tests.builders import addr

    return addr(ledger.a)
