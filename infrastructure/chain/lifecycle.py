"""The channel's life on-chain as a participant drives it: what ``parsec contract`` and ``parsec channel`` share.

``ChannelContract`` (infrastructure/chain/channels.py) does the transactions; this module adds what a
person at a command line needs around them: a revert as a refusal the CLI prints with the contract's
decoded error (``TransactionRefused``), a channel's on-chain state as plain values (amounts as
strings for JSON), and the co-signed terms of a cooperative close as a file two people can pass
between them (``CloseTerms``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any
from uuid import UUID

from domain.addresses import Address, eth_address_from_public_key, parse_eth_address
from domain.crypto import PrivateKey, recover_public_key
from domain.errors import InvalidSignature, MalformedMessage, ParsecError
from domain.money import Currency, format_amount
from domain.protocol import SigningDomain, cooperative_close_digest
from infrastructure.chain.channels import ETH, ChannelContract, OnChainChannel, OnChainStatus, Receipt
from infrastructure.chain.errors import ContractReverted, TransactionFailed
from infrastructure.chain.events import ChannelSettled, CooperativelyClosed

CLOSE_FILE_TYPE = "parsec.cooperative-close"
MAX_UINT64 = 2**64 - 1


class TransactionRefused(ParsecError):
    """The contract refused the transaction; the message carries its decoded custom error."""

    def __init__(self, message: str, revert: ContractReverted | None = None) -> None:
        super().__init__(message)
        self.revert = revert

    @property
    def error(self) -> str:
        """The contract's error name (``ChallengePeriodNotOver``), or ``TransactionFailed``."""
        return self.revert.name if self.revert is not None else "TransactionFailed"


class NotAParticipantKey(ParsecError):
    """The signing key is not a participant of the channel."""


class BadCloseTerms(ParsecError):
    """A cooperative-close file that cannot be used: malformed, for another channel or deployment, or
    carrying a signature that is not a participant's."""


@contextmanager
def refusals() -> Iterator[None]:
    """A revert (simulated or mined) as ``TransactionRefused``, which the CLI prints and exits 2 on."""
    try:
        yield
    except ContractReverted as err:
        raise TransactionRefused(str(err), err) from None
    except TransactionFailed as err:
        raise TransactionRefused(str(err)) from None


def currency_of(token: str) -> Currency:
    """The channel's currency from its token: ETH is the zero address, BTC the contract's token."""
    return Currency.ETH if int(token, 16) == 0 else Currency.BTC


def token_for(contract: ChannelContract, currency: Currency) -> str:
    return ETH if currency is Currency.ETH else contract.btc_token


# ---------------------------------------------------------------------- state
@dataclass(frozen=True)
class ChannelOnChain:
    """A channel as the contract has it, with its parameters; ``payouts`` once it paid out."""

    channel_id: UUID
    status: str
    participants: tuple[str, str]
    currency: Currency
    challenge_period: int
    deposits: tuple[int, int]
    sent: tuple[int, int]
    sequences: tuple[int, int]
    balances: tuple[int, int]  # what settle would pay now
    settle_at: int
    payouts: tuple[int, int] | None = None
    payout_tx: str | None = None

    def as_json(self) -> dict[str, Any]:
        """Amounts as strings of the smallest unit (JSON numbers lose digits past 2**53)."""
        return {
            "channel": str(self.channel_id),
            "status": self.status,
            "participant_a": self.participants[0],
            "participant_b": self.participants[1],
            "currency": self.currency.value,
            "challenge_period": self.challenge_period,
            "deposit_a": str(self.deposits[0]),
            "deposit_b": str(self.deposits[1]),
            "sent_a": str(self.sent[0]),
            "sent_b": str(self.sent[1]),
            "sequence_a": self.sequences[0],
            "sequence_b": self.sequences[1],
            "balance_a": str(self.balances[0]),
            "balance_b": str(self.balances[1]),
            "settle_at": self.settle_at,
            "payout_a": None if self.payouts is None else str(self.payouts[0]),
            "payout_b": None if self.payouts is None else str(self.payouts[1]),
            "payout_tx": self.payout_tx,
        }

    def rows(self) -> list[tuple[str, str]]:
        """(label, value) pairs for a table: amounts in the channel's currency."""
        cur = self.currency

        def pair(values: tuple[int, int]) -> str:
            return f"{format_amount(values[0], cur)} / {format_amount(values[1], cur)}"

        out = [
            ("channel", str(self.channel_id)),
            ("status", self.status),
            ("participant A", self.participants[0]),
            ("participant B", self.participants[1]),
            ("currency", cur.value),
            ("challenge period", f"{self.challenge_period} s"),
            ("deposits A / B", pair(self.deposits)),
            ("sent A / B", pair(self.sent)),
            ("recorded sequence A / B", f"{self.sequences[0]} / {self.sequences[1]}"),
            ("settle would pay A / B", pair(self.balances)),
        ]
        if self.settle_at:
            out.append(("settles at (chain time)", str(self.settle_at)))
        if self.payouts is not None:
            out.append(("paid out A / B", pair(self.payouts)))
            out.append(("paid out in", self.payout_tx or ""))
        return out


def onchain_state(contract: ChannelContract, channel_id: UUID) -> ChannelOnChain:
    """The contract's record of a channel (``NoSuchChannel`` when it was never opened)."""
    with refusals():
        params = contract.params(channel_id)
    ch: OnChainChannel = contract.channel(channel_id)
    payouts = payout_tx = None
    if ch.status is OnChainStatus.SETTLED:
        for event in reversed(contract.channel_events(channel_id, ChannelSettled, CooperativelyClosed)):
            payouts, payout_tx = (event.balance_a, event.balance_b), event.tx_hash  # type: ignore[attr-defined]
            break
    return ChannelOnChain(
        channel_id=channel_id,
        status=ch.status.name.lower().replace("_", "-"),
        participants=(params.a, params.b),
        currency=currency_of(params.token),
        challenge_period=params.challenge_period,
        deposits=(ch.deposit_a, ch.deposit_b),
        sent=(ch.sent_a, ch.sent_b),
        sequences=(ch.seq_a, ch.seq_b),
        balances=(ch.balance_a, ch.balance_b) if ch.status is not OnChainStatus.SETTLED else (0, 0),
        settle_at=ch.settle_at,
        payouts=payouts,
        payout_tx=payout_tx,
    )


def transaction_json(operation: str, receipt: Receipt) -> dict[str, Any]:
    return {"operation": operation, "tx_hash": receipt.tx_hash, "block": receipt.block_number,
            "gas_used": receipt.gas_used}


# ---------------------------------------------------------------------- cooperative close
@dataclass(frozen=True)
class CloseTerms:
    """What both participants sign to close at once (``CooperativeClose``, docs/protocol.md), and
    the signatures made so far, by signer address.

    The file is JSON; amounts are strings of the smallest unit. A participant adds its signature
    with ``parsec channel sign-close``; either one then sends both with ``parsec channel close
    --cosigned FILE``. Whoever reads a file checks each signature against its claimed signer.
    """

    channel: UUID
    chain_id: int
    contract: Address
    balance_a: int
    balance_b: int
    sequence: int
    expiry: int
    signatures: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("balance_a", "balance_b", "sequence", "expiry", "chain_id"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise BadCloseTerms(f"{name} is a non-negative integer, got {value!r}")
        for name in ("sequence", "expiry"):
            if getattr(self, name) > MAX_UINT64:
                raise BadCloseTerms(f"{name} does not fit in 64 bits")

    @property
    def domain(self) -> SigningDomain:
        return SigningDomain(chain_id=self.chain_id, verifying_contract=self.contract)

    def digest(self) -> bytes:
        return cooperative_close_digest(self.domain, self.channel, self.balance_a, self.balance_b,
                                        self.sequence, self.expiry)

    def signed_by(self, key: PrivateKey) -> CloseTerms:
        signer = eth_address_from_public_key(key.public_key)
        signature = "0x" + key.sign_digest(self.digest()).hex()
        return replace(self, signatures={**self.signatures, signer: signature})

    def signer_of(self, signature: str) -> Address:
        try:
            raw = bytes.fromhex(signature.removeprefix("0x"))
        except ValueError:
            raise BadCloseTerms("a signature is 0x-hex") from None
        try:
            return eth_address_from_public_key(recover_public_key(self.digest(), raw))
        except InvalidSignature as err:
            raise BadCloseTerms(f"a signature does not verify: {err}") from None

    def check_signatures(self) -> None:
        """Every signature recovers to the address it is filed under (a tampered term shows here)."""
        for claimed, signature in self.signatures.items():
            if self.signer_of(signature) != claimed:
                raise BadCloseTerms(f"the signature filed for {claimed} does not sign these terms "
                                    "(a term was changed after it was signed, or it is another's)")

    def signatures_of(self, a: str, b: str) -> tuple[bytes, bytes]:
        """The two participants' signatures in the contract's order; refuses a missing one."""
        self.check_signatures()
        missing = [who for who in (a, b) if who not in self.signatures]
        if missing:
            raise BadCloseTerms(f"the terms lack the signature of {', '.join(missing)} "
                                "(`parsec channel sign-close --file FILE --key ...` adds one)")
        strangers = sorted(set(self.signatures) - {a, b})
        if strangers:
            raise BadCloseTerms(f"signed by {', '.join(strangers)}, who is not a participant of {self.channel}")
        return tuple(bytes.fromhex(self.signatures[w].removeprefix("0x")) for w in (a, b))  # type: ignore[return-value]

    def to_json(self) -> str:
        return json.dumps({
            "type": CLOSE_FILE_TYPE,
            "channel": str(self.channel),
            "chainId": self.chain_id,
            "contract": self.contract,
            "balanceA": str(self.balance_a),
            "balanceB": str(self.balance_b),
            "sequence": self.sequence,
            "expiry": self.expiry,
            "signatures": dict(sorted(self.signatures.items())),
        }, indent=1) + "\n"

    @classmethod
    def from_json(cls, text: str | bytes) -> CloseTerms:
        try:
            data = json.loads(text)
        except (ValueError, UnicodeDecodeError) as err:
            raise BadCloseTerms(f"not JSON: {err}") from None
        if not isinstance(data, dict) or data.get("type") != CLOSE_FILE_TYPE:
            raise BadCloseTerms(f"not a cooperative-close file (its \"type\" is not {CLOSE_FILE_TYPE!r})")
        try:
            signatures = data.get("signatures") or {}
            if not isinstance(signatures, dict) or not all(isinstance(v, str) for v in signatures.values()):
                raise BadCloseTerms("signatures is an object of address: 0x-hex signature")
            return cls(
                channel=UUID(data["channel"]),
                chain_id=data["chainId"],
                contract=parse_eth_address(data["contract"]),
                balance_a=_digits(data["balanceA"], "balanceA"),
                balance_b=_digits(data["balanceB"], "balanceB"),
                sequence=data["sequence"],
                expiry=data["expiry"],
                signatures={parse_eth_address(k): v for k, v in signatures.items()},
            )
        except KeyError as err:
            raise BadCloseTerms(f"missing field {err.args[0]}") from None
        except (MalformedMessage, ValueError, TypeError) as err:
            if isinstance(err, BadCloseTerms):
                raise
            raise BadCloseTerms(str(err)) from None


def _digits(value: Any, name: str) -> int:
    """An amount in the file: a string of ASCII digits (never a JSON number, never another script's digits)."""
    if not isinstance(value, str) or not value.isascii() or not value.isdigit():
        raise BadCloseTerms(f"{name} is a string of digits (the smallest unit), got {value!r}")
    return int(value)
