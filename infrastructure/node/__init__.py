"""The Parsec node: the paper's job instance that owns Kafka partitions.

Topics (all with the events topic's partition count; record key = channel id,
so inbound p, control p, events p and rejected p hold the same channels):

* inbound (``parsec.inbound``): signed payments, ``SignedInvoice`` JSON;
* control (``parsec.control``): open, deposit, set-operator, checkpoint,
  settle, dispute requests signed by a participant (or its registered
  operator), and the settler's signed notices of what the chain did
  (checkpoint confirmed, closed with payouts, settle)
  (:mod:`infrastructure.node.messages`);
* events (the event store's topic): what the channels decided;
* rejected (``parsec.rejected``): every refused message, raw, with its reason
  code and message and its source topic/partition/offset in headers.

A node joins a consumer group on inbound + control with the Range assignor, so
inbound p and control p go to the same member; for each partition it owns, a
:class:`~infrastructure.node.partition.PartitionWorker` applies each poll batch
and commits the channels' events, the rejected records and the positions in
one Kafka transaction. See ``partition`` for positions and the reorder window,
``runner`` for rebalancing.
"""

from infrastructure.node.messages import (
    CheckpointConfirmedNotice,
    CheckpointRequest,
    ClosedOnChainNotice,
    DepositRequest,
    DisputeRequest,
    OpenChannelRequest,
    RegisterSecretRequest,
    Rejection,
    SecretRegisteredNotice,
    SetOperatorRequest,
    SettlementRequest,
    SettleNotice,
    WrongPartition,
)
from infrastructure.node.partition import BatchReport, PartitionWorker
from infrastructure.node.runner import Node
from infrastructure.node.send import Sender

__all__ = [
    "BatchReport",
    "CheckpointConfirmedNotice",
    "CheckpointRequest",
    "ClosedOnChainNotice",
    "DepositRequest",
    "DisputeRequest",
    "Node",
    "OpenChannelRequest",
    "PartitionWorker",
    "RegisterSecretRequest",
    "Rejection",
    "SecretRegisteredNotice",
    "SettlementRequest",
    "Sender",
    "SetOperatorRequest",
    "SettleNotice",
    "WrongPartition",
]
