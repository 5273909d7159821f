"""A party's mediation agent on Kafka (``parsec mediate``, ``parsec pay --to``).

What it reads:
- the rejected topic, from where it stood when the agent started: a refusal of a transaction this
  agent sent (matched by its exact bytes) is acted on at once, not after the 30 s timeout;
- the events topic, every partition, read-only (``projections.source`` over a reading
  ``ChannelService``): the channels it mirrors and routes over, its locks accepted by the nodes;
- the hops topic (``PARSEC_HOPS_TOPIC``, key = the recipient's address): signed hop messages, each
  verified in the domain of the recipient's channels; one addressed to someone else is skipped;
- the chain, when a contract is given: ``SecretRevealed`` logs of the secret registry.

What it writes: signed channel transactions to the inbound topic (the owning node verifies, orders
and applies them like any payment), hop messages to the hops topic, and to the control topic a
signed ``SettlementRequest`` when it must close a channel for a lock, or a ``RegisterSecret`` request
that the settler turns into an on-chain registration (the settlement process manager's intent,
``domain/settlement.py`` REGISTER_SECRET).

Its state (the core's transfers, the outbox, its payments, its positions in the three sources) is
one JSON document written atomically (temporary file, fsync, rename) before it acts. On a restart
the events topic is read again from the start to rebuild the mirror; only events after the saved
positions are fed to the core, and the outbox is acted on again (the same signed bytes).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any
from uuid import UUID

from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from domain.channel import Channel
from domain.crypto import PrivateKey
from domain.errors import ParsecError
from domain.hop_messages import HopMessage, parse_hop_message
from infrastructure.chain import events as chain_events
from infrastructure.kafka.admin import TopicSpec, ensure_topics
from infrastructure.mediation.agent import AgentConfig, MediationAgent, Misbehaviour
from infrastructure.node.messages import (
    ChannelUpdateRequest,
    RegisterSecretRequest,
    Rejection,
    SettlementRequest,
)
from infrastructure.node.send import Sender
from infrastructure.node.topics import store_settings
from infrastructure.schemas.registry import header as schema_header
from infrastructure.settings import Settings
from projections.source import source_for

log = logging.getLogger("parsec.mediation")

HOPS_TOPIC_CONFIG = {"retention.ms": str(7 * 24 * 3600 * 1000)}  # a week: longer than any lock lives


class FileAgentStore:
    """One JSON document, replaced atomically."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)

    def load(self) -> dict[str, Any] | None:
        if not self.path.exists():
            return None
        return json.loads(self.path.read_text())

    def save(self, state: dict[str, Any]) -> None:
        tmp = self.path.with_suffix(".tmp")
        with open(tmp, "w") as f:
            json.dump(state, f, separators=(",", ":"))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)


def agent_config(settings: Settings, **overrides: Any) -> AgentConfig:
    values: dict[str, Any] = dict(
        reveal_timeout=settings.mediation_reveal_timeout, expiry_delta=settings.mediation_expiry_delta,
        fee_base=settings.mediation_fee_base, fee_ppm=settings.mediation_fee_ppm,
        final_expiry=settings.mediation_final_expiry, max_attempts=settings.mediation_max_attempts)
    values.update(overrides)
    return AgentConfig(**values)


class KafkaNetwork:
    """The agent's ``Network`` port on Kafka (and the chain's secret registry, if given)."""

    def __init__(self, settings: Settings, key: PrivateKey, sender: Sender, producer: KafkaProducer,
                 agent_ref: list[MediationAgent], registrar: Any = None) -> None:
        self.settings, self.key, self.sender, self.producer = settings, key, sender, producer
        self.agent_ref, self.registrar = agent_ref, registrar

    def submit(self, raw: bytes, channel: UUID) -> None:
        self.sender.payment(raw, channel)
        self.sender.flush()

    def send_hop(self, message: HopMessage) -> None:
        value = json.dumps(message.to_json(), separators=(",", ":")).encode()
        self.producer.send(self.settings.hops_topic, key=message.recipient.encode(), value=value,
                           headers=[schema_header("hop-message")])
        self.producer.flush()

    def register_secret(self, channel: UUID, secret: bytes) -> None:
        """Ask the settlement process manager (the settler) to register ``secret``: a signed request on
        the control topic; the owning node records it in the channel's log and the settler's intent
        registers it once (or finds it registered) and reports the receipt back as an event."""
        if self.registrar is not None:  # tests, or a party that registers with its own chain account
            self.registrar(channel, secret)
            return
        ch = self.agent_ref[0].channels.get(channel)
        if ch is None:
            log.warning("secret of a lock in unknown channel %s: not registered", channel)
            return
        request = RegisterSecretRequest(channel=channel, secret="0x" + secret.hex()).signed(self.key, ch.domain)
        self.sender.control(request)
        self.sender.flush()
        log.info("asked for the on-chain registration of the secret of a lock in channel %s", channel)

    def announce(self, update: Any) -> None:
        self.sender.control(ChannelUpdateRequest.of(update))
        self.sender.flush()
        log.info("announced the forwarding policy of %s on channel %s: %d + %d ppm, expiry delta %d s",
                 update.participant, update.channel_id, update.fee_base, update.fee_proportional, update.expiry_delta)

    def close_channel(self, channel: UUID) -> None:
        ch = self.agent_ref[0].channels.get(channel)
        if ch is None:
            return
        request = SettlementRequest(channel=channel).signed(self.key, ch.domain)
        self.sender.control(request)
        self.sender.flush()
        log.info("asked for the unilateral close of channel %s (a lock must be decided on-chain)", channel)


class MediationService:
    """One party's agent fed from Kafka (and the chain), run by :meth:`run` or stepped by a caller."""

    def __init__(self, settings: Settings, key: PrivateKey, reader: Any, *, config: AgentConfig | None = None,
                 store_path: Path | None = None, contract: Any = None, registrar: Any = None,
                 misbehaviour: Misbehaviour | None = None, interval: float = 0.2) -> None:
        """``reader``: a reading ``ChannelService`` over the events topic (``bootstrap.mediation_service``
        builds one); the service closes it when it stops."""
        from domain.addresses import eth_address_from_public_key

        self.settings, self.interval = settings, interval
        me = eth_address_from_public_key(key.public_key)
        config = config or agent_config(settings)
        if misbehaviour is not None:
            config = AgentConfig(**{**config.__dict__, "misbehaviour": misbehaviour})
        counts = ensure_topics(store_settings(settings),
                               [TopicSpec(settings.hops_topic, settings.partitions, HOPS_TOPIC_CONFIG)])
        self.sender = Sender(settings)
        self.producer = KafkaProducer(**settings.kafka.kafka_python_producer(linger_ms=0, client_id="parsec-hops"))
        self.reader = reader
        self.source = source_for(self.reader)
        ref: list[MediationAgent] = []
        self.network = KafkaNetwork(settings, key, self.sender, self.producer, ref, registrar)
        store = FileAgentStore(store_path or settings.mediation_dir / f"{me}.json")
        self.agent = MediationAgent(key, self.network, config=config, store=store)
        ref.append(self.agent)
        self.contract = contract
        self.hops = KafkaConsumer(**settings.kafka.kafka_python(
            group_id=None, enable_auto_commit=False, client_id=f"parsec-hops-{me[:10]}"))
        self._hop_partitions = [TopicPartition(settings.hops_topic, p) for p in range(counts[settings.hops_topic])]
        self.hops.assign(self._hop_partitions)
        for tp in self._hop_partitions:
            saved = self.agent.positions.get(f"hops:{tp.partition}")
            if saved is None:
                self.hops.seek_to_beginning(tp)
            else:
                self.hops.seek(tp, saved)
        # the node's refusals of what this agent sent: from the end of the rejected topic (older ones
        # are about transactions no longer in flight, or are caught by the timeout)
        self.rejected = KafkaConsumer(**settings.kafka.kafka_python(
            group_id=None, enable_auto_commit=False, client_id=f"parsec-refusals-{me[:10]}"))
        rejected = [TopicPartition(settings.rejected_topic, p) for p in range(settings.partitions)]
        self.rejected.assign(rejected)
        for tp in rejected:
            self.rejected.seek_to_end(tp)
        self._read: dict[int, int | None] = {p: None for p in self.source.partitions()}  # rebuilt from the start
        self.lock = threading.RLock()
        self.stopped = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def me(self) -> str:
        return self.agent.me

    # ------------------------------------------------------------------ one pass
    def step(self, now: int | None = None) -> None:
        with self.lock:
            now = int(time.time()) if now is None else now
            self._follow_events(now)
            self._follow_hops(now)
            self._follow_refusals(now)
            self._follow_chain(now)
            self.agent.tick(now)
            self.agent.flush(now)

    def _follow_events(self, now: int) -> None:
        for p in self.source.partitions():
            while True:
                batch = self.source.read(p, self._read[p], 1000)
                if not batch:
                    break
                saved = self.agent.positions.get(f"events:{p}", -1)
                for se in batch:
                    self._read[p] = se.position
                    if not se.decodable():  # an event of a newer writer: not this agent's to read
                        continue
                    event = se.event
                    if isinstance(event, Channel.Event):
                        self.agent.on_event(event, now, replaying=se.position <= saved)
                    self.agent.positions[f"events:{p}"] = max(saved, se.position)

    def _follow_hops(self, now: int) -> None:
        polled = self.hops.poll(timeout_ms=0, max_records=1000)
        for tp, records in polled.items():
            for r in records:
                self.agent.positions[f"hops:{tp.partition}"] = r.offset + 1
                if r.key is not None and r.key.decode(errors="replace") != self.me:
                    continue
                try:
                    data = json.loads(r.value)
                    domain = self.agent._domain(None)
                    if domain is None:
                        continue
                    message = parse_hop_message(data, domain)
                except (ValueError, ParsecError) as err:
                    log.warning("%s: hop message at %s/%d refused: %s", self.me, tp.partition, r.offset, err)
                    continue
                self.agent.on_hop(message, now)

    def _follow_refusals(self, now: int) -> None:
        polled = self.rejected.poll(timeout_ms=0, max_records=1000)
        for records in polled.values():
            for r in records:
                try:
                    rejection = Rejection.of(r.key, r.value, r.headers)
                    channel = UUID((r.key or b"").decode())
                except (KeyError, ValueError):
                    continue  # not a node's rejection of a keyed message
                self.agent.on_refused(channel, rejection.raw, rejection.reason, rejection.message, now)

    def _follow_chain(self, now: int) -> None:
        if self.contract is None:
            return
        start = self.agent.positions.get("chain", 0)
        head = self.contract.w3.eth.block_number
        if head < start:
            return
        for e in self.contract.events(start, head):
            if isinstance(e, chain_events.SecretRevealed):
                self.agent.on_secret_registered(e.secret, now)
        self.agent.positions["chain"] = head + 1

    # ------------------------------------------------------------------ the loop
    def run(self) -> None:
        while not self.stopped.is_set():
            try:
                self.step()
            except Exception as exc:  # a broker or chain hiccup: the next pass starts from the saved state
                log.error("%s: mediation pass failed (%s: %s); retrying", self.me, type(exc).__name__, exc)
                self.stopped.wait(1.0)
                continue
            self.stopped.wait(self.interval)

    def start(self) -> MediationService:
        self._thread = threading.Thread(target=self.run, name=f"parsec-mediate-{self.me[:10]}", daemon=True)
        self._thread.start()
        return self

    def pay(self, target: str, amount: int, *, currency: str | None = None) -> str:
        with self.lock:
            pid = self.agent.pay(target, amount, int(time.time()), currency=currency)
            self.agent.flush(int(time.time()))
            return pid

    def payment(self, payment_id: str) -> dict[str, Any]:
        with self.lock:
            return self.agent.payment(payment_id).to_json()

    def wait(self, payment_id: str, timeout: float = 60.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            p = self.payment(payment_id)
            if p["status"] != "pending" or time.monotonic() > deadline:
                return p
            time.sleep(0.1)

    def stop(self) -> None:
        self.stopped.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        for closing in (self.hops, self.rejected, self.producer, self.sender, self.reader):
            try:
                closing.close()
            except Exception:
                log.debug("closing", exc_info=True)


__all__ = ["FileAgentStore", "KafkaNetwork", "MediationService", "agent_config"]
