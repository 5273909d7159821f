"""The chain port: every chain operation the settlement executor and the chain watcher use.

The executor and the watcher talk to the chain only through ``Chain``; ``OperatorChain``
(``infrastructure.chain.operator``) implements it over a deployed ``ChannelContract`` and the
operator wallet that signs; unit tests implement it in memory. Values in and out are typed
(``OnChainChannel``, ``ChannelParams``, ``ChainEvent``, ``Receipt``); nothing web3-shaped passes.

A transaction goes in three steps so that "submitted" can be saved before anything leaves the
process: ``prepare`` (simulate, take a nonce, sign: a revert surfaces here as
``ContractReverted``), then ``broadcast`` of the signed bytes, then ``receipt`` by hash.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from uuid import UUID

from domain.settlement import IntentKind
from infrastructure.chain.channels import ChannelParams, OnChainChannel, Proof, Receipt
from infrastructure.chain.events import ChainEvent
from infrastructure.chain.sender import PreparedTransaction


@dataclass(frozen=True)
class Call:
    """One contract call of an intent's kind: the channel and the signed payments it carries.

    ``head`` is for a dispute only: the recorded payment the ``proofs`` continue from (None when
    nothing is recorded and they start at sequence 1). ``locks`` is for a settle only: each side's
    (A's, B's) packed pending locks, the settle then decides them (``settleWithLocks``; None: plain
    ``settle``). ``secret`` is a secret registration's (``registerSecret``).
    """

    kind: IntentKind
    channel_id: UUID
    proofs: tuple[Proof, ...] = ()
    head: Proof | None = None
    locks: tuple[bytes, bytes] | None = None
    secret: bytes = b""


class Chain(ABC):
    """The chain as the settlement process sees it: one contract, one submitting wallet."""

    @property
    @abstractmethod
    def submitter(self) -> str:
        """The address every transaction is sent from (the operator wallet's)."""

    # ------------------------------------------------------------ reads
    @abstractmethod
    def channel(self, channel_id: UUID) -> OnChainChannel:
        """What the contract records for the channel now."""

    @abstractmethod
    def params(self, channel_id: UUID) -> ChannelParams:
        """The channel's immutable parameters (participants, token, challenge period)."""

    @abstractmethod
    def operator_of(self, participant: str) -> str:
        """Who may submit proofs paying ``participant`` besides itself."""

    @abstractmethod
    def secret_revealed_at(self, secret_hash: bytes) -> int:
        """When the contract's registry first got the secret of this sha256 hash (unix s; 0: never)."""

    def secret_revealed_tx(self, secret_hash: bytes) -> str:
        """The transaction that registered it first ("" if not known)."""
        return ""

    @abstractmethod
    def latest_timestamp(self) -> int:
        """The chain's time (unix seconds of the latest block): deadlines are chain time."""

    @abstractmethod
    def block_number(self) -> int:
        """The latest block."""

    @abstractmethod
    def events(self, from_block: int, to_block: int) -> list[ChainEvent]:
        """Every event of the contract in a block range (inclusive), in chain order."""

    @abstractmethod
    def channel_events(self, channel_id: UUID, *kinds: type[ChainEvent]) -> list[ChainEvent]:
        """Every event of these kinds about one channel, in chain order."""

    # ------------------------------------------------------------ transactions
    @abstractmethod
    def prepare(self, call: Call, gas: int | None = None) -> PreparedTransaction:
        """Simulate ``call``, take the next nonce and sign; raises ``ContractReverted`` on a revert.

        ``gas``: the limit to sign with (None: let the node estimate).
        """

    @abstractmethod
    def broadcast(self, raw: bytes) -> None:
        """Send signed bytes (again: harmless); raises ``NonceTooLow`` when the nonce is used."""

    @abstractmethod
    def receipt(self, tx_hash: str) -> Receipt | None:
        """The mined transaction's receipt with its decoded events (None: not mined yet)."""

    @abstractmethod
    def is_known(self, tx_hash: str) -> bool:
        """Whether the node has this transaction, mined or in its pool."""

    @abstractmethod
    def resync_nonce(self) -> None:
        """Take the next nonce from the chain again (after a nonce error or a restart)."""
