"""A typed proxy over the ParsecChannels contract.

Every write returns a ``Receipt`` (hash, block, gas used, decoded events); every revert becomes
``ContractReverted`` carrying the contract's custom error. Domain objects go in (``SignedInvoice``,
UUIDs, integer amounts) and typed values come out; nothing web3-shaped leaks past this package
except the ``Web3`` instance the caller chose (the ``*_call`` builders hand unsigned calls only to
``infrastructure.chain.sender``, which signs them for the chain port).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, NewType
from uuid import UUID

from eth_utils import to_checksum_address
from web3 import Web3
from web3.contract import Contract
from web3.contract.contract import ContractFunction
from web3.exceptions import ContractLogicError

from domain.crypto import keccak
from domain.locks import Lock, unpack_locks
from domain.locks import locks_root as domain_locks_root
from domain.protocol import SignedInvoice, SigningDomain
from infrastructure.chain.artifacts import load_artifact
from infrastructure.chain.connection import Wallet, latest_timestamp
from infrastructure.chain.errors import ContractReverted, RevertDecoder, TransactionFailed, revert_data
from infrastructure.chain.events import LOG_NAMES, ChainEvent, decode_events, typed_events

try:  # the embedded chain raises its own error type on a revert
    from eth_tester.exceptions import TransactionFailed as _TesterTransactionFailed

    _TESTER_ERRORS: tuple[type[BaseException], ...] = (_TesterTransactionFailed,)
except ImportError:  # pragma: no cover - eth-tester is optional with a JSON-RPC node
    _TESTER_ERRORS = ()

CALL_REVERTS: tuple[type[BaseException], ...] = (ContractLogicError, *_TESTER_ERRORS)
"""What building or simulating a call raises when the contract reverts, whichever node answered."""

TxHash = NewType("TxHash", str)
ETH = "0x0000000000000000000000000000000000000000"
DEFAULT_MIN_CHALLENGE_PERIOD = 3600
"""The shortest challenge period a deployed contract accepts unless its deployer says otherwise."""
SETTLED_MARKER = (1).to_bytes(32, "big")


class OnChainStatus(IntEnum):
    """The contract's channel status (``domain.channel.ChannelStatus`` is the Channel's own)."""

    NONE = 0
    OPEN = 1
    CLOSED_BY_A = 2
    CLOSED_BY_B = 3
    SETTLED = 4


@dataclass(frozen=True)
class ChannelParams:
    """A channel's immutable parameters; the contract keeps only their hash."""

    a: str
    b: str
    token: str
    challenge_period: int

    def as_tuple(self) -> tuple[str, str, str, int]:
        return (self.a, self.b, self.token, self.challenge_period)

    def other(self, participant: str) -> str:
        return self.b if participant == self.a else self.a


@dataclass(frozen=True)
class OnChainChannel:
    """What the contract records for one channel."""

    channel_id: UUID
    status: OnChainStatus
    deposit_a: int
    deposit_b: int
    settle_at: int
    sent_a: int
    seq_a: int
    sent_b: int
    seq_b: int
    # each side's recorded lock state: keccak256(uint128 lockedAmount, bytes32 locksRoot) of its latest
    # recorded proof (the contract's locksHashOf), zero when that proof has no pending lock
    locks_hash_a: bytes = b"\0" * 32
    locks_hash_b: bytes = b"\0" * 32

    @property
    def has_locks(self) -> bool:
        return self.locks_hash_a != NO_LOCKS_HASH or self.locks_hash_b != NO_LOCKS_HASH

    @property
    def head_sequence(self) -> int:
        return max(self.seq_a, self.seq_b)

    @property
    def balance_a(self) -> int:
        """What settle would pay A now: dA + sentB - sentA, clamped to [0, dA + dB]."""
        total = self.deposit_a + self.deposit_b
        return min(max(self.deposit_a + self.sent_b - self.sent_a, 0), total)

    @property
    def balance_b(self) -> int:
        return self.deposit_a + self.deposit_b - self.balance_a

    @property
    def is_closed(self) -> bool:
        return self.status in (OnChainStatus.CLOSED_BY_A, OnChainStatus.CLOSED_BY_B)


@dataclass(frozen=True)
class Receipt:
    tx_hash: TxHash
    block_number: int
    gas_used: int
    events: tuple[ChainEvent, ...] = field(default=())
    succeeded: bool = True  # False: mined with status 0 (reverted when mined)


PaymentTuple = tuple[int, bytes, str, int, int, int, bytes, bytes, bytes, bytes, bytes, bytes, int]
"""(sequence, invoiceId, buyer, price, buyerTotal, lockedAmount, locksRoot, invoiceTypeHash, terms,
previous, r, s, v): the contract's ``SignedPayment``."""
_ZERO32 = b"\0" * 32
EMPTY_PAYMENT: PaymentTuple = (0, b"\0" * 16, ETH, 0, 0, 0, _ZERO32, _ZERO32, _ZERO32, _ZERO32, _ZERO32, _ZERO32, 0)
LOCK_SIZE = 56
"""One pending lock packed as the contract reads it: uint64 expiry, uint128 amount, bytes32 secretHash."""


def pack_lock(expiry: int, amount: int, secret_hash: bytes) -> bytes:
    """One lock as the contract takes it (domain/locks.py holds the encoding)."""
    return Lock(amount=amount, secret_hash=secret_hash, expiry=expiry).packed()


NO_LOCKS_HASH = b"\0" * 32


def locks_hash(locked_amount: int, root: bytes) -> bytes:
    """A side's lock state as the contract stores it: keccak256(uint128 lockedAmount ‖ locksRoot), zero for none."""
    if locked_amount == 0 and root == NO_LOCKS_HASH:
        return NO_LOCKS_HASH
    return keccak(locked_amount.to_bytes(16, "big") + root)


def locks_root(locks: bytes) -> bytes:
    """The locksRoot of packed pending locks (in the order added): keccak256, zero for none."""
    return domain_locks_root(unpack_locks(locks))


Proof = SignedInvoice | PaymentTuple
"""A domain SignedInvoice, or a raw contract tuple (tools and adversarial tests only)."""


def payment_tuple(invoice: Proof) -> PaymentTuple:
    """The contract's ``SignedPayment`` for a domain ``SignedInvoice`` (the one conversion point).

    channelId, supplier and currency are implied on-chain by the channel; the invoice type
    travels as its keccak-256, which is exactly how EIP-712 hashes a string.
    """
    if isinstance(invoice, tuple):
        return invoice
    sig = invoice.invoice_signature
    return (
        invoice.sequence,
        invoice.invoice_id.bytes,
        str(invoice.buyer),
        invoice.price,
        invoice.buyer_total,
        invoice.locked_amount,
        invoice.locks_root,
        keccak(invoice.invoice_type.encode("utf-8")),
        invoice.terms_hash,
        invoice.hash_pointer_to_previous.transaction_hash,
        sig[:32],
        sig[32:64],
        sig[64],
    )


class DeployedContract:
    """A contract at an address, with the ABI and the revert decoder of its compiled artifact."""

    ARTIFACT = ""

    def __init__(self, w3: Web3, address: str) -> None:
        artifact = load_artifact(self.ARTIFACT)
        self.w3 = w3
        self.address = to_checksum_address(address)
        self.contract: Contract = w3.eth.contract(address=self.address, abi=artifact.abi)
        self._decoder = RevertDecoder(artifact.abi)


class ChannelContract(DeployedContract):
    """One deployed ParsecChannels contract."""

    ARTIFACT = "ParsecChannels"

    def __init__(self, w3: Web3, address: str) -> None:
        super().__init__(w3, address)
        self._params: dict[UUID, ChannelParams] = {}
        self.deployment: Receipt | None = None  # set by ``deploy``: its hash and gas, for whoever reports it

    # ------------------------------------------------------------ deployment
    @classmethod
    def deploy(
        cls,
        w3: Web3,
        deployer: Wallet,
        btc_token: str,
        *,
        min_challenge_period: int = DEFAULT_MIN_CHALLENGE_PERIOD,
    ) -> ChannelContract:
        """Deploy a contract whose channels need a challenge period of ``min_challenge_period`` s or more."""
        artifact = load_artifact("ParsecChannels")
        factory = w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
        ctor = factory.constructor(to_checksum_address(btc_token), min_challenge_period)
        receipt = _transact(w3, deployer, ctor, 0, RevertDecoder(artifact.abi), "deploy")
        deployed = cls(w3, receipt["contractAddress"])
        deployed.deployment = _receipt(receipt)
        return deployed

    @property
    def domain(self) -> SigningDomain:
        """What off-chain signatures for this contract must be bound to."""
        return SigningDomain(chain_id=self.w3.eth.chain_id, verifying_contract=self.address)

    @property
    def btc_token(self) -> str:
        return self.contract.functions.btcToken().call()

    @property
    def min_challenge_period(self) -> int:
        return self.contract.functions.minChallengePeriod().call()

    # ------------------------------------------------------------ writes
    def open_channel(
        self,
        sender: Wallet,
        channel_id: UUID,
        counterparty: str,
        *,
        deposit: int,
        challenge_period: int,
        token: str = ETH,
    ) -> Receipt:
        token = to_checksum_address(token)
        fn = self.contract.functions.open(
            channel_id.bytes, to_checksum_address(counterparty), token, challenge_period, deposit
        )
        receipt = self._send(sender, fn, value=deposit if token == ETH else 0, operation="open")
        self._params[channel_id] = ChannelParams(
            sender.address, to_checksum_address(counterparty), token, challenge_period
        )
        return receipt

    def deposit(self, sender: Wallet, channel_id: UUID, amount: int) -> Receipt:
        params = self.params(channel_id)
        fn = self.contract.functions.deposit(channel_id.bytes, params.as_tuple(), amount)
        return self._send(sender, fn, value=amount if params.token == ETH else 0, operation="deposit")

    def set_operator(self, sender: Wallet, operator: str) -> Receipt:
        fn = self.contract.functions.setOperator(to_checksum_address(operator))
        return self._send(sender, fn, operation="setOperator")

    def set_payee(self, sender: Wallet, payee: str) -> Receipt:
        """Where all of ``sender``'s payouts go from now on (``ETH``, the zero address, = itself)."""
        fn = self.contract.functions.setPayee(to_checksum_address(payee))
        return self._send(sender, fn, operation="setPayee")

    def checkpoint(self, sender: Wallet, channel_id: UUID, proofs: Sequence[Proof]) -> Receipt:
        return self._send(sender, self.checkpoint_call(channel_id, proofs), operation="checkpoint")

    def close(self, sender: Wallet, channel_id: UUID, proofs: Sequence[Proof] = ()) -> Receipt:
        return self._send(sender, self.close_call(channel_id, proofs), operation="close")

    def update(self, sender: Wallet, channel_id: UUID, proofs: Sequence[Proof]) -> Receipt:
        return self._send(sender, self.update_call(channel_id, proofs), operation="update")

    def dispute(
        self,
        sender: Wallet,
        channel_id: UUID,
        payments: Sequence[Proof],
        *,
        head: Proof | None = None,
    ) -> Receipt:
        """The paper's disputed settlement: ``payments`` follow the recorded ``head`` payment.

        ``head`` is the recorded head (the recorded proof with the highest sequence); leave it
        out when nothing is recorded yet and ``payments`` start at sequence 1.
        """
        return self._send(sender, self.dispute_call(channel_id, payments, head=head), operation="dispute")

    def settle(self, sender: Wallet, channel_id: UUID) -> Receipt:
        return self._send(sender, self.settle_call(channel_id), operation="settle")

    def settle_with_locks(self, sender: Wallet, channel_id: UUID, locks_a: bytes = b"", locks_b: bytes = b"") -> Receipt:
        """Settle deciding every pending lock: ``locks_a`` A's (packed, see ``pack_lock``), ``locks_b`` B's."""
        fn = self.contract.functions.settleWithLocks(
            channel_id.bytes, self.params(channel_id).as_tuple(), locks_a, locks_b
        )
        return self._send(sender, fn, operation="settleWithLocks")

    def settle_holding_locks(
        self,
        sender: Wallet,
        channel_id: UUID,
        *,
        locked_a: int = 0,
        root_a: bytes = _ZERO32,
        locked_b: int = 0,
        root_b: bytes = _ZERO32,
    ) -> Receipt:
        """Settle paying what is not locked; the recorded locks are held for ``unlock``."""
        fn = self.contract.functions.settleHoldingLocks(
            channel_id.bytes, self.params(channel_id).as_tuple(), locked_a, root_a, locked_b, root_b
        )
        return self._send(sender, fn, operation="settleHoldingLocks")

    def unlock(
        self, sender: Wallet, channel_id: UUID, *, base: int, total: int, locks_a: bytes = b"", locks_b: bytes = b""
    ) -> Receipt:
        """Decide the locks ``settle_holding_locks`` held (``base``/``total`` from its LocksHeld event)."""
        fn = self.contract.functions.unlock(
            channel_id.bytes, self.params(channel_id).as_tuple(), base, total, locks_a, locks_b
        )
        return self._send(sender, fn, operation="unlock")

    def register_secret(self, sender: Wallet, secret: bytes) -> Receipt:
        """Reveal ``secret`` on-chain (the registry keys it by sha256; the first registration stands)."""
        return self._send(sender, self.contract.functions.registerSecret(secret), operation="registerSecret")

    def register_secrets(self, sender: Wallet, secrets: Sequence[bytes]) -> Receipt:
        fn = self.contract.functions.registerSecrets(list(secrets))
        return self._send(sender, fn, operation="registerSecrets")

    def secret_revealed_at(self, secret_hash: bytes) -> int:
        """When sha256-hash ``secret_hash`` was first registered (unix s), 0 if never."""
        return self.contract.functions.secretRevealedAt(secret_hash).call()

    def secret_revealed_tx(self, secret_hash: bytes) -> str:
        """The transaction of the first registration of this secret hash ("" if none)."""
        logs = self.contract.events.SecretRevealed.get_logs(
            from_block=0, argument_filters={"secretHash": secret_hash}
        )
        return logs[0]["transactionHash"].to_0x_hex() if logs else ""

    def cooperative_close(
        self,
        sender: Wallet,
        channel_id: UUID,
        *,
        balance_a: int,
        balance_b: int,
        sequence: int,
        expiry: int,
        signature_a: bytes,
        signature_b: bytes,
    ) -> Receipt:
        """Pay out the co-signed balances at head ``sequence``; refused after ``expiry`` (unix s)."""
        fn = self.contract.functions.cooperativeClose(
            channel_id.bytes,
            self.params(channel_id).as_tuple(),
            balance_a,
            balance_b,
            sequence,
            expiry,
            signature_a,
            signature_b,
        )
        return self._send(sender, fn, operation="cooperativeClose")

    def withdraw(self, sender: Wallet, owner: str | None = None) -> Receipt:
        """Send ``owner``'s credit (refused ETH payouts) to its payee; anyone may send it.

        ``owner`` defaults to the sender.
        """
        fn = self.contract.functions.withdraw(to_checksum_address(owner or sender.address))
        return self._send(sender, fn, operation="withdraw")

    # ------------------------------------------------------------ calls, built but not sent
    # (for a sender that signs them itself: ``infrastructure.chain.sender.TransactionSender``)
    def checkpoint_call(self, channel_id: UUID, proofs: Sequence[Proof]) -> ContractFunction:
        return self._evidence_call("checkpoint", channel_id, proofs)

    def close_call(self, channel_id: UUID, proofs: Sequence[Proof] = ()) -> ContractFunction:
        return self._evidence_call("close", channel_id, proofs)

    def update_call(self, channel_id: UUID, proofs: Sequence[Proof]) -> ContractFunction:
        return self._evidence_call("update", channel_id, proofs)

    def dispute_call(
        self, channel_id: UUID, payments: Sequence[Proof], *, head: Proof | None = None
    ) -> ContractFunction:
        return self.contract.functions.dispute(
            channel_id.bytes,
            self.params(channel_id).as_tuple(),
            payment_tuple(head) if head is not None else EMPTY_PAYMENT,
            [payment_tuple(p) for p in payments],
        )

    def settle_call(self, channel_id: UUID, locks: tuple[bytes, bytes] | None = None) -> ContractFunction:
        """``settle``, or with ``locks`` (A's, B's packed pending locks) ``settleWithLocks``."""
        if locks is None:
            return self.contract.functions.settle(channel_id.bytes, self.params(channel_id).as_tuple())
        return self.contract.functions.settleWithLocks(
            channel_id.bytes, self.params(channel_id).as_tuple(), locks[0], locks[1]
        )

    def register_secret_call(self, secret: bytes) -> ContractFunction:
        return self.contract.functions.registerSecret(secret)

    # ------------------------------------------------------------ reads
    def operator_of(self, participant: str) -> str:
        """Who may submit proofs paying ``participant`` besides itself (the zero address: nobody)."""
        return self.contract.functions.operatorOf(to_checksum_address(participant)).call()

    def block_number(self) -> int:
        return int(self.w3.eth.block_number)

    def latest_timestamp(self) -> int:
        return latest_timestamp(self.w3)

    def channel_events(self, channel_id: UUID, *kinds: type[ChainEvent]) -> list[ChainEvent]:
        """Every event of these kinds about one channel since the contract was deployed, in chain order."""
        entries = []
        for kind in kinds:
            name = LOG_NAMES[kind]
            for entry in getattr(self.contract.events, name).get_logs(
                from_block=0, argument_filters={"channelId": channel_id.bytes}
            ):
                entries.append((name, entry))
        return typed_events(entries)

    def params(self, channel_id: UUID) -> ChannelParams:
        """The channel's parameters, from memory or from its ChannelOpened event."""
        known = self._params.get(channel_id)
        if known is not None:
            return known
        logs = self.contract.events.ChannelOpened.get_logs(
            from_block=0, argument_filters={"channelId": channel_id.bytes}
        )
        if not logs:
            raise ContractReverted("NoSuchChannel", {"channelId": channel_id.bytes}, b"", "params")
        args = logs[-1]["args"]
        params = ChannelParams(args["a"], args["b"], args["token"], args["challengePeriod"])
        self._params[channel_id] = params
        return params

    def channel(self, channel_id: UUID) -> OnChainChannel:
        raw = self.contract.functions.getChannel(channel_id.bytes).call()
        params_hash, dep_a, dep_b, settle_at, status, sent_a, seq_a, locks_a, sent_b, seq_b, locks_b = raw
        state = OnChainStatus.SETTLED if params_hash == SETTLED_MARKER else OnChainStatus(status)
        return OnChainChannel(
            channel_id=channel_id,
            status=state,
            deposit_a=dep_a,
            deposit_b=dep_b,
            settle_at=settle_at,
            sent_a=sent_a,
            seq_a=seq_a,
            sent_b=sent_b,
            seq_b=seq_b,
            # the lock slots are read only when the flags say a side has locks recorded
            locks_hash_a=bytes(self.contract.functions.locksHashOf(channel_id.bytes, 0).call())
            if locks_a else NO_LOCKS_HASH,
            locks_hash_b=bytes(self.contract.functions.locksHashOf(channel_id.bytes, 1).call())
            if locks_b else NO_LOCKS_HASH,
        )

    def withdrawable(self, address: str) -> int:
        return self.contract.functions.withdrawable(to_checksum_address(address)).call()

    def payee_of(self, participant: str) -> str:
        """Where ``participant``'s payouts go (the zero address: to the participant itself)."""
        return self.contract.functions.payeeOf(to_checksum_address(participant)).call()

    def events(self, from_block: int = 0, to_block: int | str = "latest") -> list[ChainEvent]:
        """Every event of this contract in a block range, decoded and in chain order."""
        logs = self.w3.eth.get_logs({"address": self.address, "fromBlock": from_block, "toBlock": to_block})
        return decode_events(self.contract, logs)

    # ------------------------------------------------------------ plumbing
    def _evidence_call(self, name: str, channel_id: UUID, proofs: Sequence[Proof]) -> ContractFunction:
        """checkpoint, close and update take the same arguments: the channel and its proofs."""
        return getattr(self.contract.functions, name)(
            channel_id.bytes, self.params(channel_id).as_tuple(), [payment_tuple(p) for p in proofs]
        )

    def _send(self, sender: Wallet, fn: Any, *, value: int = 0, operation: str) -> Receipt:
        raw = _transact(self.w3, sender, fn, value, self._decoder, operation)
        return Receipt(
            tx_hash=TxHash(raw["transactionHash"].to_0x_hex()),
            block_number=raw["blockNumber"],
            gas_used=raw["gasUsed"],
            events=tuple(decode_events(self.contract, raw["logs"])),
        )


def _transact(
    w3: Web3, sender: Wallet, fn: Any, value: int, decoder: RevertDecoder | None, operation: str
) -> Any:
    """Estimate (which surfaces a revert with its data), sign locally, send, wait."""
    try:
        tx = fn.build_transaction(
            {
                "from": sender.address,
                "value": value,
                "nonce": w3.eth.get_transaction_count(sender.address, "pending"),
                "chainId": w3.eth.chain_id,
            }
        )
    except CALL_REVERTS as exc:
        data = revert_data(exc)
        if decoder is not None and data:
            raise decoder.decode(data, operation) from None
        raise ContractReverted("Error", {"reason": str(exc)}, data or b"", operation) from None
    signed = sender.sign_transaction(tx)
    tx_hash = w3.eth.send_raw_transaction(signed.raw_transaction)
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash)
    if receipt["status"] != 1:
        raise TransactionFailed(f"{operation}: transaction {tx_hash.to_0x_hex()} failed (status 0)")
    return receipt


def _receipt(raw: Any) -> Receipt:
    return Receipt(TxHash(raw["transactionHash"].to_0x_hex()), raw["blockNumber"], raw["gasUsed"])


class TestToken(DeployedContract):
    """The ERC20 standing for BTC in tests (8 decimals, open mint)."""

    __test__ = False  # not a pytest class
    ARTIFACT = "TestToken"
    deployment: Receipt | None = None

    @classmethod
    def deploy(cls, w3: Web3, deployer: Wallet) -> TestToken:
        artifact = load_artifact("TestToken")
        factory = w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
        receipt = _transact(w3, deployer, factory.constructor(), 0, None, "deploy TestToken")
        deployed = cls(w3, receipt["contractAddress"])
        deployed.deployment = _receipt(receipt)
        return deployed

    def _send(self, sender: Wallet, fn: Any, operation: str) -> Receipt:
        raw = _transact(self.w3, sender, fn, 0, self._decoder, operation)
        return Receipt(TxHash(raw["transactionHash"].to_0x_hex()), raw["blockNumber"], raw["gasUsed"])

    def mint(self, sender: Wallet, to: str, amount: int) -> Receipt:
        return self._send(sender, self.contract.functions.mint(to_checksum_address(to), amount), "mint")

    def approve(self, sender: Wallet, spender: str, amount: int) -> Receipt:
        fn = self.contract.functions.approve(to_checksum_address(spender), amount)
        return self._send(sender, fn, "approve")

    def balance_of(self, address: str) -> int:
        return self.contract.functions.balanceOf(to_checksum_address(address)).call()
