"""The executor's ``ChannelCommands`` on Kafka: signed notices on the control topic to the owning node.

On the Kafka store each channel has one writer, the node that owns its partition, so the settler
never writes channel events itself: it reads the channels (a read-only ``ChannelService``) and
tells the owner, through the control topic (keyed and partitioned by channel id), that a
checkpoint was confirmed, that a pending lock's secret is in the contract's registry (a
``secret-registered`` notice), that payments must stop because the chain saw a close (a ``settle``
notice), or that the channel closed with the chain's payouts. Each notice is signed with the
settler's operator key (EIP-712 ``SettlerNotice``, in the channel's domain); a node accepts it
only from a settler it is configured to trust (``PARSEC_SETTLERS``). The node applies each
notice idempotently (a repeated one is a no-op), so the settler may send one twice (its receipt,
then the watcher's event; or again after a restart).
"""

from __future__ import annotations

import logging
from typing import Any
from uuid import UUID

from domain.application import ChannelService
from domain.channel import ChannelStatus
from domain.crypto import PrivateKey
from domain.errors import UnknownChannel
from infrastructure.node.messages import (
    CheckpointConfirmedNotice,
    ClosedOnChainNotice,
    SecretRegisteredNotice,
    SettleNotice,
)

log = logging.getLogger("parsec.settlement")


class ControlTopicCommands:
    """Sends the executor's commands to the control topic (``sender``: an ``infrastructure.node.Sender``),
    signed with ``key``, the settler's operator key."""

    def __init__(self, sender: Any, reader: ChannelService, key: PrivateKey, timeout: float = 15.0) -> None:
        self.sender = sender
        self.reader = reader
        self.key = key
        self.timeout = timeout
        self.sent: list[Any] = []  # what was sent, for logs and tests

    def _send(self, notice: Any) -> None:
        domain = self.reader.get_channel_aggregate(notice.channel).domain
        signed = notice.signed(self.key, domain)
        self.sender.control(signed).get(timeout=self.timeout)  # acknowledged before the executor goes on
        self.sent.append(signed)

    def confirm_checkpoint(self, channel_id: UUID, sequence: int, tx_hash: str, block: int) -> None:
        self._send(CheckpointConfirmedNotice(channel=channel_id, sequence=sequence, tx_hash=tx_hash, block=block))
        log.info("channel %s: checkpoint %d confirmed in block %d, sent to its node", channel_id, sequence, block)

    def request_settlement(self, channel_id: UUID, at: int, requested_by: str) -> None:
        try:
            if self.reader.get_channel_aggregate(channel_id).status != ChannelStatus.OPEN.value:
                return  # nothing to stop: a settlement is already under way
        except UnknownChannel:
            return
        self._send(SettleNotice(channel=channel_id, reason=requested_by))
        log.info("channel %s: settlement requested (%s), sent to its node", channel_id, requested_by)

    def close_channel(self, channel_id: UUID, at: int, payouts: list[int] | None) -> None:
        self._send(ClosedOnChainNotice(channel=channel_id, payouts=payouts, at=at))
        log.info("channel %s: closed on-chain with payouts %s, sent to its node", channel_id, payouts)

    def record_secret(self, channel_id: UUID, secret_hash: bytes, revealed_at: int, tx_hash: str) -> None:
        self._send(SecretRegisteredNotice(channel=channel_id, secret_hash="0x" + secret_hash.hex(),
                                          revealed_at=revealed_at, tx_hash=tx_hash))
        log.info("channel %s: secret 0x%s registered on-chain at %d, sent to its node", channel_id,
                 secret_hash.hex(), revealed_at)
