"""Every party's agent in one process over the embedded store: the simulator's network, and the
fastest way to exercise mediation end to end with a clock that the caller moves.

The channels live in one ``ChannelService`` (the same aggregate and refusals as a node's); a
transaction an agent submits is applied at once at the network's time (a refusal reaches the agent
as :class:`TransactionRefused`). :meth:`EmbeddedNetwork.pump` delivers what happened, in order:
new Channel events of the store's log to every agent, hop messages to their recipients, secrets
registered on the simulated chain to everyone; then every agent acts; until nothing moves.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from domain.application import ChannelService
from domain.channel import Channel
from domain.errors import ConflictingPayment, ParsecError
from domain.hop_messages import HopMessage
from infrastructure.mediation.agent import MediationAgent, TransactionRefused

log = logging.getLogger("parsec.mediation")


@dataclass
class SimulatedChain:
    """What the chain would hold for multi-hop payments: the secret registry (first registration
    wins, with its time) and the unilateral closes asked for."""

    secrets: dict[bytes, tuple[bytes, int]] = field(default_factory=dict)  # sha256 -> (secret, registered at)
    closes: list[UUID] = field(default_factory=list)
    _new: list[tuple[bytes, int]] = field(default_factory=list)

    def register(self, secret: bytes, at: int) -> None:
        h = hashlib.sha256(secret).digest()
        if h not in self.secrets:
            self.secrets[h] = (secret, at)
            self._new.append((secret, at))

    def take_new(self) -> list[tuple[bytes, int]]:
        new, self._new = self._new, []
        return new


class _AgentPort:
    """One agent's view of the embedded network (its ``Network`` port)."""

    def __init__(self, net: EmbeddedNetwork) -> None:
        self.net = net

    def submit(self, raw: bytes, channel: UUID) -> None:
        try:
            self.net.service.accept_payment(raw, at=self.net.now)
        except ParsecError as err:
            self.net.refused[type(err).__name__] = self.net.refused.get(type(err).__name__, 0) + 1
            if isinstance(err, ConflictingPayment):
                # The counterparty's transaction took this sequence in the same round, and the agent has
                # not seen it yet: as on Kafka, the outcome shows in the log (another transaction in the
                # slot), and the agent signs its own again on the new head. Refusing it at once would make
                # the agent drop it, and a dropped unlock leaves its lock to the chain.
                return
            raise TransactionRefused(getattr(err, "reason", type(err).__name__), str(err)) from None

    def send_hop(self, message: HopMessage) -> None:
        self.net.hops.append(message)

    def register_secret(self, channel: UUID, secret: bytes) -> None:
        self.net.chain.register(secret, self.net.now)

    def close_channel(self, channel: UUID) -> None:
        self.net.chain.closes.append(channel)

    def announce(self, update: Any) -> None:
        self.net.service.set_fee_policy(update.channel_id, update, self.net.now)


class EmbeddedNetwork:
    def __init__(self, service: ChannelService | None = None, *, now: int = 0) -> None:
        self.service = service or ChannelService(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
        self.now = now
        self.agents: dict[str, MediationAgent] = {}
        self.hops: list[HopMessage] = []
        self.chain = SimulatedChain()
        self.refused: dict[str, int] = {}
        self.position = 0  # the last notification delivered
        self.port = _AgentPort(self)

    def add(self, agent: MediationAgent) -> MediationAgent:
        self.agents[agent.me] = agent
        return agent

    def new_events(self) -> list[Any]:
        out = []
        while True:
            section = self.service.recorder.select_notifications(self.position + 1, 500)
            if not section:
                return out
            for n in section:
                self.position = n.id
                out.append(self.service.mapper.to_domain_event(n))

    def pump(self, *, rounds: int = 1000) -> int:
        """Deliver and act until quiet; returns the rounds it took."""
        for i in range(rounds):
            events = [e for e in self.new_events() if isinstance(e, Channel.Event)]
            hops, self.hops = self.hops, []
            secrets = self.chain.take_new()
            for agent in self.agents.values():
                for e in events:
                    agent.on_event(e, self.now)
            for m in hops:
                recipient = self.agents.get(m.recipient)
                if recipient is not None:
                    recipient.on_hop(m, self.now)
            for secret, at in secrets:
                for agent in self.agents.values():
                    agent.on_secret_registered(secret, at)
            for agent in self.agents.values():
                agent.flush(self.now)
            moved = self.service.recorder.max_notification_id() or 0
            if not events and not hops and not secrets and not self.hops and not self.chain._new \
                    and moved == self.position:
                return i + 1
        raise RuntimeError("the embedded network did not settle down")

    def advance(self, seconds: int) -> None:
        """Move the clock, tick every agent and pump."""
        self.now += seconds
        for agent in self.agents.values():
            agent.tick(self.now)
        self.pump()

    def channels(self) -> Iterable[Channel]:
        ids = {e for a in self.agents.values() for e in a.channels}
        return [self.service.get_channel_aggregate(cid) for cid in sorted(ids)]


__all__ = ["EmbeddedNetwork", "SimulatedChain"]
