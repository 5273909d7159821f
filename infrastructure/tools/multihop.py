"""``parsec simulate --multi-hop``: random multi-hop payments over a random network, in one process.

A random connected network (a random spanning tree, then random extra channels, no pair twice) of
generated parties is opened on an :class:`EmbeddedNetwork` (one embedded ``ChannelService``, a
simulated secret registry, a clock the simulator moves). Every party runs a ``MediationAgent``. A
fraction of the parties are *failing hops* (``Misbehaviour(never_forward=True)``: they take a lock and
go silent, so the lock expires and the payer retries another route) and a fraction, disjoint from
those, are *uncooperative* (``withhold_unlocks=True``: they never send the unlock they owe; the
downstream party registers the secret on-chain and asks for a close, and the lock stays in the
channel for the chain to decide).

Payments go between random pairs of parties that share no channel (so each is at least two hops),
for a random amount the payer can afford. They are started at ``rate`` payments per simulated
second, the clock moving ``step`` seconds at a time (several payments are in flight at once); once
every payment has started, the clock keeps moving until every payment has finished and the log has
been quiet long enough for every silent hop's lock to expire.

Then the run checks, and reports, what must hold whatever the parties did:

* money is conserved: per channel, the balances plus what is locked equal the deposits, and each
  side's own identity holds (balance = deposit - sent + received - locked); summed over the
  network, balances + locked = deposits;
* no balance is below zero;
* nothing is locked at the end except locks sent by an uncooperative party (which channels);
* the read models (balances, graph), followed live during the run by a projection runner over the
  embedded store's log, equal a fresh rebuild from the log, and the balances read model equals the
  channels' own state.
"""

from __future__ import annotations

import logging
import random
import re
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from domain.channel import Channel, ChannelParameters
from infrastructure.mediation.agent import AgentConfig, MediationAgent, Misbehaviour
from infrastructure.mediation.embedded import EmbeddedNetwork
from infrastructure.tools.workload import DEV_DOMAIN, ChannelPlan, make_parties

log = logging.getLogger("parsec.simulate")

UNIT = 10**9  # amounts in gwei steps
T0 = 1_800_000_000  # the simulated clock's start


class SimAgent(MediationAgent):
    """A mediation agent that does not save its state: the simulator never restarts an agent, and
    ``MediationAgent.save`` serialises the whole state (core, outbox, every payment) twice per
    ``flush``, every agent every round, which is most of a run's time (``save_state=True`` keeps it)."""

    def save(self) -> None:
        pass


@dataclass(frozen=True)
class MultiHopConfig:
    parties: int = 50
    channels: int = 150
    payments: int = 1000
    failing_hops: float = 0.0  # fraction of parties that never forward a lock
    uncooperative: float = 0.0  # fraction of parties that withhold the unlocks they owe
    seed: int = 7
    rate: float = 5.0  # payments started per simulated second
    step: int = 1  # simulated seconds per clock move while payments are in flight
    max_jump: int = 600  # the most the clock jumps at once when nothing moves
    idle_step: int = 60  # the clock's move when nothing is due but a payment is still pending
    deposit: tuple[int, int] = (500, 2000)  # each side's deposit, in UNITs
    max_amount: int = 100  # a payment's largest amount, in UNITs (and at most what the payer can send)
    challenge_period: int = 7200  # above the longest route's first lock (final expiry + hops × delta)
    follow_every: int = 50  # clock moves between two catch-ups of the live read models
    save_state: bool = False  # agents save their state at every flush, as deployed (slower; see SimAgent)
    agent: AgentConfig = AgentConfig()

    def validate(self) -> None:
        if self.parties < 3:
            raise ValueError("--parties must be >= 3 (a multi-hop payment needs a mediator)")
        if self.channels < self.parties - 1:
            raise ValueError(f"--channels must be >= parties - 1 = {self.parties - 1} for a connected network")
        if self.channels > self.parties * (self.parties - 1) // 2:
            raise ValueError(f"--channels must be <= {self.parties * (self.parties - 1) // 2} "
                             f"(one channel per pair of {self.parties} parties)")
        for name, v in (("--failing-hops", self.failing_hops), ("--uncooperative", self.uncooperative)):
            if not 0 <= v <= 1:
                raise ValueError(f"{name} is a fraction between 0 and 1, got {v}")
        if self.failing_hops + self.uncooperative > 1:
            raise ValueError("--failing-hops + --uncooperative must be <= 1")
        if self.payments < 0:
            raise ValueError("--payments must be >= 0")


@dataclass
class MultiHopResult:
    config: MultiHopConfig
    attempted: int = 0
    succeeded: int = 0
    failed: Counter = field(default_factory=Counter)  # reason -> payments
    on_chain: int = 0  # the payer withheld its unlock: the secret is registered, the chain decides
    pending: int = 0  # still pending when the run stopped, secret not on-chain (0 unless cut off)
    attempts: int = 0  # routes tried, over every payment
    retried: int = 0  # payments that needed more than one route
    hops: list[int] = field(default_factory=list)  # per succeeded payment
    fees: int = 0
    completion_s: list[int] = field(default_factory=list)  # simulated seconds, per succeeded payment
    wall_seconds: float = 0.0  # the payments' part of the run (not the checks)
    simulated_seconds: int = 0
    clock_moves: int = 0
    rounds: int = 0  # pump rounds over the run
    events: Counter = field(default_factory=Counter)  # the log's transactions by kind
    secrets_registered: int = 0
    closes_for_locks: int = 0
    refused: Counter = field(default_factory=Counter)  # the node's refusals by reason
    failing_parties: list[str] = field(default_factory=list)
    uncooperative_parties: list[str] = field(default_factory=list)
    deposits: int = 0
    checks: dict[str, Any] = field(default_factory=dict)
    check_seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return all(c["ok"] for c in self.checks.values())

    @property
    def payments_per_s(self) -> float:
        return self.attempted / self.wall_seconds if self.wall_seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        c = self.config
        done = sorted(self.completion_s)

        def pct(p: float) -> int | None:
            return done[min(len(done) - 1, int(p / 100 * len(done)))] if done else None

        return {
            "mode": "multi-hop", "parties": c.parties, "channels": c.channels, "seed": c.seed,
            "save_state": c.save_state, "rate": c.rate,
            "failing_hops": c.failing_hops, "uncooperative": c.uncooperative,
            "failing_parties": self.failing_parties, "uncooperative_parties": self.uncooperative_parties,
            "attempted": self.attempted, "succeeded": self.succeeded, "failed": sum(self.failed.values()),
            "failed_by_reason": dict(self.failed), "on_chain": self.on_chain, "pending": self.pending,
            "success_rate": round(self.succeeded / self.attempted, 4) if self.attempted else None,
            "attempts": self.attempts, "retried": self.retried,
            "hops": {"mean": round(sum(self.hops) / len(self.hops), 2) if self.hops else None,
                     "max": max(self.hops) if self.hops else None},
            "fees_paid": self.fees,
            "time_to_complete_s": {"p50": pct(50), "p99": pct(99), "max": done[-1] if done else None},
            "wall_seconds": round(self.wall_seconds, 3), "payments_per_s": round(self.payments_per_s, 1),
            "simulated_seconds": self.simulated_seconds, "clock_moves": self.clock_moves, "rounds": self.rounds,
            "transactions": dict(self.events), "locks_expired": self.events.get("lockExpired", 0),
            "secrets_registered": self.secrets_registered, "closes_for_locks": self.closes_for_locks,
            "refused": dict(self.refused), "deposits": self.deposits,
            "checks": self.checks, "checks_ok": self.ok, "check_seconds": round(self.check_seconds, 3),
        }


# --------------------------------------------------------------------------- the network
def random_pairs(rng: random.Random, n: int, count: int) -> list[tuple[int, int]]:
    """``count`` distinct pairs of ``range(n)`` forming a connected graph: a random spanning tree
    (each node joins a random earlier one, in a shuffled order), then random extra pairs."""
    order = list(range(n))
    rng.shuffle(order)
    pairs: set[tuple[int, int]] = set()
    for i in range(1, n):
        a, b = order[i], order[rng.randrange(i)]
        pairs.add((min(a, b), max(a, b)))
    while len(pairs) < count:
        a, b = rng.sample(range(n), 2)
        pairs.add((min(a, b), max(a, b)))
    return sorted(pairs)


@dataclass
class SimNetwork:
    net: EmbeddedNetwork
    agents: list[MediationAgent]
    plans: list[ChannelPlan]
    neighbours: dict[int, set[int]]
    failing: set[int]
    uncooperative: set[int]


def build(cfg: MultiHopConfig, rng: random.Random) -> SimNetwork:
    cfg.validate()
    parties = make_parties(f"multihop-{cfg.seed}", cfg.parties)
    pairs = random_pairs(rng, cfg.parties, cfg.channels)
    from domain.application import ChannelService
    from infrastructure.settings import WRITER_CACHE_ENV

    # the channels' only writer, like a node: with its aggregate cache (else every transaction
    # reconstructs its channel from the last snapshot, and a run slows down as the channels grow)
    net = EmbeddedNetwork(ChannelService(env={"PERSISTENCE_MODULE": "eventsourcing.popo", **WRITER_CACHE_ENV}),
                          now=T0)
    params = ChannelParameters(challenge_period=cfg.challenge_period, checkpoint_interval=10**6,
                               checkpoint_timeout=cfg.challenge_period)
    plans, neighbours = [], {i: set() for i in range(cfg.parties)}
    for a, b in pairs:
        x, y = (a, b) if rng.random() < 0.5 else (b, a)
        deposits = (rng.randint(*cfg.deposit) * UNIT, rng.randint(*cfg.deposit) * UNIT)
        plan = ChannelPlan(uuid.UUID(int=rng.getrandbits(128), version=4), parties[x], parties[y], deposits,
                           domain=DEV_DOMAIN)
        net.service.open_channel(**plan.open_kwargs(params, at=T0))
        plans.append(plan)
        neighbours[a].add(b)
        neighbours[b].add(a)
    shuffled = list(range(cfg.parties))
    rng.shuffle(shuffled)
    n_fail, n_unc = round(cfg.failing_hops * cfg.parties), round(cfg.uncooperative * cfg.parties)
    failing, uncooperative = set(shuffled[:n_fail]), set(shuffled[n_fail:n_fail + n_unc])
    agents = []
    for i, p in enumerate(parties):
        config = cfg.agent
        if i in failing or i in uncooperative:
            config = AgentConfig(**{**config.__dict__, "misbehaviour": Misbehaviour(
                never_forward=i in failing, withhold_unlocks=i in uncooperative)})
        seed_rng = random.Random(rng.getrandbits(64))
        cls = MediationAgent if cfg.save_state else SimAgent
        agents.append(net.add(cls(p.key, net.port, config=config,
                                             random_secret=lambda r=seed_rng: r.randbytes(32))))
    net.pump()
    return SimNetwork(net, agents, plans, neighbours, failing, uncooperative)


def _advance(net: EmbeddedNetwork, seconds: int) -> int:
    """``EmbeddedNetwork.advance``, returning the pump's rounds."""
    net.now += seconds
    for agent in net.agents.values():
        agent.tick(net.now)
    return net.pump()


def _next_step(sim: SimNetwork, rounds: int, cfg: MultiHopConfig) -> int | None:
    """How far to move the clock when no payment is being started: a second while anything moves
    (the last move's pump took more than one round, or a transaction waits in a queue), else straight
    to the next time a lock asks for something (a payee's danger zone before its expiry, its payer's
    lockExpired after it); None when nothing is due at all."""
    agents = sim.agents
    if rounds > 1 or any(q for a in agents for q in a.queues.values()):
        return cfg.step
    now, a = sim.net.now, cfg.agent
    due = []
    for ch in agents[0].channels.values():  # every agent mirrors every channel
        for p in ch.participants:
            for lock in ch.pending_locks(p):
                due += [lock.expiry - a.reveal_timeout, lock.expiry + a.lock_expiry_margin + 1]
    due = [t for t in due if t > now]
    return min(min(due) - now, cfg.max_jump) if due else None


def _spendable(agent: MediationAgent) -> int:
    return max((ch.balance_of(agent.me) for ch in agent.channels.values() if agent.me in ch.participants),
               default=0)


_HEX = re.compile(r"0x[0-9a-fA-F]+|[0-9a-f]{8}-[0-9a-f-]{27}")


def reason_of(text: str | None) -> str:
    """A failure reason without its addresses, ids and numbers (to count by)."""
    if not text:
        return "unknown"
    head = text.split(":")[0] if text.startswith("no route") else text
    return re.sub(r"\d+", "N", _HEX.sub("…", head)).strip()[:80]


# --------------------------------------------------------------------------- the run
def run(cfg: MultiHopConfig, *, progress: Callable[[int], None] | None = None) -> MultiHopResult:
    from projections.balances import Balances
    from projections.channel_graph import ChannelGraph
    from projections.runner import ProjectionRunner
    from projections.source import ApplicationEventSource
    from projections.sqlite import SQLiteStore

    rng = random.Random(cfg.seed)
    sim = build(cfg, rng)
    net, agents = sim.net, sim.agents
    result = MultiHopResult(cfg, failing_parties=sorted(agents[i].me for i in sim.failing),
                            uncooperative_parties=sorted(agents[i].me for i in sim.uncooperative),
                            deposits=sum(sum(p.deposits) for p in sim.plans))
    models = [Balances(), ChannelGraph()]
    source = ApplicationEventSource.of(net.service)
    live = SQLiteStore(":memory:")
    follower = ProjectionRunner(source, live, models)
    follower.catch_up()

    started: list[tuple[MediationAgent, str]] = []
    pending: set[int] = set()  # indexes into started of the payments not finished yet
    wall = time.perf_counter()
    credit, moves, rounds, idle = 0.0, 0, 1, 0
    a_cfg = cfg.agent
    quiet_for = a_cfg.final_expiry + a_cfg.max_hops * a_cfg.expiry_delta + a_cfg.lock_expiry_margin
    while True:
        issuing = len(started) < cfg.payments
        if issuing:
            credit += cfg.rate * cfg.step
            while credit >= 1 and len(started) < cfg.payments:
                credit -= 1
                payer, target = _pair(rng, sim)
                agent = agents[payer]
                amount = min(rng.randint(1, cfg.max_amount) * UNIT, _spendable(agent) // 2) or 1
                pid = agent.pay(agents[target].me, amount, net.now,
                                payment_id=uuid.UUID(int=rng.getrandbits(128), version=4))
                pending.add(len(started))
                started.append((agent, pid))
            result.rounds += net.pump()
        step = cfg.step if issuing else _next_step(sim, rounds, cfg)
        if step is None:
            if not pending:
                break  # nothing moves and nothing is due: done
            # a payer that withholds its own unlock never sees its payment succeed: stop once nothing
            # has moved for as long as the longest lock lives
            idle += cfg.idle_step
            if idle > quiet_for:
                break
            step = cfg.idle_step
        else:
            idle = 0
        rounds = _advance(net, step)
        result.rounds += rounds
        moves += 1
        if moves % cfg.follow_every == 0:
            follower.catch_up()
        done = {i for i in pending if started[i][0].payment(started[i][1]).status != "pending"}
        if done:
            pending -= done
            if progress is not None:
                progress(len(done))
        if net.now - T0 > 20 * cfg.challenge_period:
            log.warning("multi-hop simulation cut off at %d simulated seconds", net.now - T0)
            break
    result.wall_seconds = time.perf_counter() - wall
    if progress is not None and pending:
        progress(len(pending))  # over: left to the chain, or cut off
    result.simulated_seconds = net.now - T0
    result.clock_moves = moves

    for agent, pid in started:
        p = agent.payment(pid)
        result.attempted += 1
        result.attempts += len(p.attempts)
        result.retried += len(p.attempts) > 1
        if p.status == "succeeded":
            ok = next(a for a in p.attempts if a.status == "succeeded")
            result.succeeded += 1
            result.hops.append(len(ok.route))
            result.fees += ok.fee
            result.completion_s.append((p.finished_at or net.now) - p.started_at)
        elif p.status == "failed":
            result.failed[reason_of(p.reason)] += 1
        elif bytes.fromhex(p.attempts[-1].secret_hash) in net.chain.secrets:
            # its payer withheld the unlock it owed: the payee's side is claimed on-chain
            result.on_chain += 1
        else:
            result.pending += 1
    result.secrets_registered = len(net.chain.secrets)
    result.closes_for_locks = len(set(net.chain.closes))
    result.refused = Counter(net.refused)

    t = time.perf_counter()
    follower.catch_up()
    result.events = _log_kinds(net)
    result.checks = checks(sim, source, live, models)
    result.check_seconds = time.perf_counter() - t
    return result


def _pair(rng: random.Random, sim: SimNetwork) -> tuple[int, int]:
    """A random payer and payee that share no channel (at least two hops), when there is such a pair."""
    n = len(sim.agents)
    for _ in range(50):
        a, b = rng.sample(range(n), 2)
        if b not in sim.neighbours[a]:
            return a, b
    return a, b


def _log(net: EmbeddedNetwork) -> list[Any]:
    out, position = [], 0
    while True:
        section = net.service.recorder.select_notifications(position + 1, 1000)
        if not section:
            return out
        for n in section:
            position = n.id
            out.append(net.service.mapper.to_domain_event(n))


def _log_kinds(net: EmbeddedNetwork) -> Counter:
    return Counter(getattr(e, "kind", "payment") for e in _log(net) if type(e).__name__ == "PaymentAccepted")


def _replay_channels(net: EmbeddedNetwork) -> dict[uuid.UUID, Channel]:
    """Every channel rebuilt from the log's events alone (no cache, no snapshot)."""
    channels: dict[uuid.UUID, Any] = {}
    for e in _log(net):
        if isinstance(e, Channel.Event) and not type(e).__name__.endswith("Snapshot"):
            channels[e.originator_id] = e.mutate(channels.get(e.originator_id))
    return channels


# --------------------------------------------------------------------------- the checks
def checks(sim: SimNetwork, source: Any, live: Any, models: list[Any]) -> dict[str, dict[str, Any]]:
    from projections.balances import channel_balances
    from projections.runner import rebuild
    from projections.sqlite import SQLiteStore

    channels: list[Channel] = [sim.net.service.get_channel_aggregate(p.channel_id) for p in sim.plans]
    replayed = _replay_channels(sim.net)
    differ_from_log = [str(ch.id) for ch in channels if replayed.get(ch.id) is None
                       or replayed[ch.id].__dict__ != ch.__dict__]
    bad_identity, negative, held, stray = [], [], [], []
    total_deposits = total_balances = total_locked = 0
    uncooperative = {sim.agents[i].me for i in sim.uncooperative}
    closes = {str(c) for c in sim.net.chain.closes}
    for ch in channels:
        a, b = ch.participants
        deposits = ch.total_deposits
        balances = ch.balance_of(a) + ch.balance_of(b)
        locked = ch.locked_of(a) + ch.locked_of(b)
        total_deposits, total_balances, total_locked = (total_deposits + deposits, total_balances + balances,
                                                        total_locked + locked)
        sides_ok = all(ch.balance_of(p) == ch.deposits[p] - ch.sent[p] + ch.sent[ch.counterparty(p)] - ch.locked_of(p)
                       for p in ch.participants)
        if balances + locked != deposits or not sides_ok:
            bad_identity.append(str(ch.id))
        for p in ch.participants:
            if ch.balance_of(p) < 0 or ch.locked_of(p) < 0:
                negative.append(f"{ch.id}:{p}")
            for lock in ch.pending_locks(p):
                entry = {"channel": str(ch.id), "sender": p, "amount": lock.amount,
                         "secret_hash": "0x" + lock.secret_hash.hex(), "close_asked": str(ch.id) in closes}
                (held if p in uncooperative else stray).append(entry)
    out: dict[str, dict[str, Any]] = {
        "money_conserved": {
            "ok": not bad_identity and total_balances + total_locked == total_deposits,
            "deposits": total_deposits, "balances": total_balances, "locked": total_locked,
            "channels_failing_identity": bad_identity},
        "no_negative_balance": {"ok": not negative, "negative": negative},
        "channels_equal_replay": {"ok": not differ_from_log, "channels": len(channels),
                                  "differing": differ_from_log},
        "nothing_locked_but_uncooperative": {
            "ok": not stray, "held_by_uncooperative": held, "other_locks": stray,
            "channels_holding_locks": sorted({x["channel"] for x in held + stray})},
    }
    # the live read models (followed during the run) against a fresh rebuild of the log
    fresh = SQLiteStore(":memory:")
    for m in models:
        rebuild(source, fresh, m)

    def dump(store: Any) -> dict[str, list[dict[str, Any]]]:
        return {t.name: store.select(t, order_by=t.key) for m in models for t in m.tables}

    live_rows, fresh_rows = dump(live), dump(fresh)
    differ = sorted(name for name in live_rows if live_rows[name] != fresh_rows.get(name))
    # and the balances read model against the channels themselves
    rows = {r.channel_id: r for r in channel_balances(fresh)}
    mismatch = []
    for ch in channels:
        r = rows.get(str(ch.id))
        want = (tuple(ch.balance_of(p) for p in ch.participants), tuple(ch.locked_of(p) for p in ch.participants),
                ch.sequence)
        if r is None or (r.balances, r.locked, r.sequence) != want:
            mismatch.append(str(ch.id))
    out["read_models_equal_replay"] = {
        "ok": not differ and not mismatch, "models": [m.name for m in models],
        "rows": {name: len(v) for name, v in fresh_rows.items()}, "tables_differing": differ,
        "balances_not_matching_channels": mismatch}
    return out


__all__ = ["MultiHopConfig", "MultiHopResult", "build", "checks", "random_pairs", "reason_of", "run"]
