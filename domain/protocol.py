"""The paper's protocol messages as validated, immutable value objects.

``Invoice`` (what a seller asks for), ``SignedInvoice`` (what a buyer signs:
one channel transaction) and ``HashPointer`` (the link to the previous
transaction). Field names follow the paper in JSON (camelCase aliases) and
Python in code (snake_case). The exact bytes are specified in
``docs/protocol.md``; the contract recomputes the same hashes.

Differences from the paper, on purpose: prices are integers in the smallest
unit (never ``Double``); the hash is real keccak-256 (EIP-712) instead of
``"######-####-####"``; a transaction also carries its ``sequence``, the
buyer's cumulative total (so one signature is a balance proof) and the chain
id and contract it is signed for (replay protection).
"""

from __future__ import annotations

import json
from functools import cached_property
from typing import Any
from uuid import UUID

from pydantic import (
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from domain import kinds
from domain.addresses import (
    Address,
    btc_p2pkh_address,
    eth_address_bytes,
    eth_address_from_public_key,
    parse_btc_address,
    parse_eth_address,
    to_checksum_address,
)
from domain.crypto import PrivateKey, Signature, decompress_public_key, recover_public_key, split_signature
from domain.eip712 import StructType, domain_separator, typed_data_digest
from domain.errors import (
    AddressMismatch,
    AmountOutOfRange,
    InvalidSignature,
    MalformedMessage,
    WrongSigner,
)
from domain.money import Currency, check_amount
from domain.wire import (  # noqa: F401  (re-exported: the names callers import from protocol)
    MAX_JSON_DEPTH,
    AmountField,
    EthAddressField,
    Hash32,
    Message,
    PublicKeyHex,
    SignatureHex,
    _unwrap,
    check_json_depth,
)

PARSEC_DOMAIN_NAME = "Parsec"
PARSEC_DOMAIN_VERSION = "1"

PAYMENT_TYPE = StructType.parse(
    "Payment(bytes16 channelId,uint64 sequence,bytes16 invoiceId,address buyer,"
    "address supplier,uint256 price,uint256 buyerTotal,uint256 lockedAmount,bytes32 locksRoot,"
    "string currency,string invoiceType,bytes32 terms,bytes32 previous)"
)
INVOICE_TYPE = StructType.parse(
    "Invoice(address invoiceAddress,uint256 price,string currency,string invoiceType)"
)
COOPERATIVE_CLOSE_TYPE = StructType.parse(
    "CooperativeClose(bytes16 channelId,uint256 balanceA,uint256 balanceB,uint64 sequence,uint64 expiry)"
)

MAX_SEQUENCE = 2**64 - 1
_SIGNED_HERE = object()  # validation-context key: sign_invoice vouches for the digest it signed
GENESIS_TRANSACTION_ID = UUID(int=0)
GENESIS_HASH = b"\0" * 32
MAX_INVOICE_TYPE_LENGTH = 256


class SigningDomain(Message):
    """What a signature is bound to: the chain and the channel contract (EIP-712 domain)."""

    chain_id: int = Field(alias="chainId", gt=0)
    verifying_contract: EthAddressField = Field(alias="verifyingContract")

    @cached_property
    def separator(self) -> bytes:
        return domain_separator(
            PARSEC_DOMAIN_NAME, PARSEC_DOMAIN_VERSION, self.chain_id, self.verifying_contract
        )

    def digest(self, struct_hash: bytes) -> bytes:
        return typed_data_digest(self.separator, struct_hash)


class HashPointer(Message):
    """The paper's ``HashPointer(transactionID, transactionHash)``."""

    transaction_id: UUID = Field(alias="transactionID")
    transaction_hash: Hash32 = Field(alias="transactionHash")

    @property
    def is_genesis(self) -> bool:
        return self.transaction_hash == GENESIS_HASH and self.transaction_id == GENESIS_TRANSACTION_ID


GENESIS = HashPointer(transaction_id=GENESIS_TRANSACTION_ID, transaction_hash=GENESIS_HASH)


class Invoice(Message):
    """What a seller asks to be paid: the paper's ``Invoice``.

    ``invoice_address`` is the seller's Ethereum address (the channel
    participant paid on-chain, for BTC channels too).
    """

    invoice_address: EthAddressField = Field(alias="invoiceAddress")
    price: AmountField
    currency: Currency
    invoice_type: str = Field(default="", alias="invoiceType", max_length=MAX_INVOICE_TYPE_LENGTH)

    @field_validator("currency", mode="before")
    @classmethod
    def _currency(cls, v: Any) -> Currency:
        return Currency.parse(v)

    @field_validator("price")
    @classmethod
    def _positive(cls, v: int) -> int:
        return check_amount(v, what="price")

    @cached_property
    def invoice_hash(self) -> bytes:
        """keccak-256 of the invoice's EIP-712 struct (replaces the paper's placeholder)."""
        return INVOICE_TYPE.hash_struct(
            {
                "invoiceAddress": self.invoice_address,
                "price": self.price,
                "currency": self.currency.value,
                "invoiceType": self.invoice_type,
            }
        )


class SignedInvoice(Message):
    """One channel transaction, signed by the buyer (the paper's ``SignedInvoice``).

    Constructing one verifies it: the buyer address is the one its key gives
    (Ethereum or P2PKH by currency), the signature is low-s and is the buyer's
    over this transaction's EIP-712 digest. An instance that exists is valid on
    its own; whether it extends its channel is the ``Channel``'s decision.
    """

    invoice_id: UUID = Field(alias="invoiceID")
    invoice_signature: SignatureHex = Field(alias="invoiceSignature")
    supplier_address: EthAddressField = Field(alias="supplierAddress")
    buyer_public_key: PublicKeyHex = Field(alias="buyerPublicKey")
    buyer_address: str = Field(alias="buyerAddress")
    currency: Currency
    price: AmountField
    channel: UUID
    hash_pointer_to_previous: HashPointer = Field(alias="hashPointerToPrevious")
    sequence: int = Field(ge=1, le=MAX_SEQUENCE)
    buyer_total: AmountField = Field(alias="buyerTotal")
    invoice_type: str = Field(default="", alias="invoiceType", max_length=MAX_INVOICE_TYPE_LENGTH)
    locked_amount: AmountField = Field(default=0, alias="lockedAmount")
    locks_root: Hash32 = Field(default=GENESIS_HASH, alias="locksRoot",
                               json_schema_extra={"default": "0x" + GENESIS_HASH.hex()})  # its wire form
    kind: str = Field(default="payment", max_length=64)  # an entry of domain/kinds.py's catalogue
    terms: dict[str, Any] = Field(default_factory=dict)  # the kind's terms (normalised); signed as their hash
    domain: SigningDomain

    # Read through ``__pydantic_private__`` in the properties below: ``self._digest`` is answered by
    # pydantic's ``__getattr__`` fallback, 2.2 µs a read against 0.06 µs, and a payment's digest,
    # buyer and terms are read some ten times on its way through a node.
    _digest: bytes = PrivateAttr(default=b"")
    _buyer: str = PrivateAttr(default="")
    _terms: Any = PrivateAttr(default=None)
    _terms_hash: bytes = PrivateAttr(default=GENESIS_HASH)

    @field_validator("terms", mode="before")
    @classmethod
    def _terms_of_kind(cls, v: Any, info: ValidationInfo) -> dict[str, Any]:
        """Parse the terms by the kind's schema and keep them in one normal form (what ``to_json`` writes
        is then what was hashed), refusing an unknown kind or terms it does not describe."""
        if "kind" not in info.data:  # the kind itself was refused: that error is reported
            return {}
        parsed = kinds.get(info.data["kind"]).parse_terms(v if v is not None else {})
        return parsed.to_dict() if parsed is not None else {}

    @field_validator("currency", mode="before")
    @classmethod
    def _currency(cls, v: Any) -> Currency:
        return Currency.parse(v)

    @field_validator("sequence", mode="before")
    @classmethod
    def _sequence(cls, v: Any) -> int:
        if isinstance(v, bool) or not isinstance(v, int):
            raise MalformedMessage(f"sequence must be an integer, got {type(v).__name__}")
        return v

    def model_post_init(self, context: Any) -> None:
        private = self.__pydantic_private__  # set up by pydantic before this runs
        if isinstance(context, dict) and _SIGNED_HERE in context:
            private["_digest"], private["_buyer"], private["_terms"], private["_terms_hash"] = context[_SIGNED_HERE]
            return
        check_amount(self.price, what="price")
        kind = kinds.get(self.kind)
        terms = private["_terms"] = kind.parse_terms(self.terms)
        private["_terms_hash"] = kind.terms_hash(terms)
        if self.kind == "payment" and self.buyer_total < self.price:
            raise AmountOutOfRange(
                f"buyerTotal {self.buyer_total} is less than this payment's price {self.price}"
            )
        uncompressed = decompress_public_key(self.buyer_public_key)
        buyer = eth_address_from_public_key(uncompressed)
        _check_buyer_address(self.buyer_address, uncompressed, buyer, self.currency)
        if buyer == self.supplier_address:
            raise AddressMismatch("buyer and supplier are the same party")
        if self.sequence == 1 and not self.hash_pointer_to_previous.is_genesis:
            raise MalformedMessage("the first transaction of a channel must point to the genesis hash")
        digest = self.domain.digest(PAYMENT_TYPE.hash_struct(self._struct(buyer)))
        split_signature(self.invoice_signature)  # form and low-s before the costly recovery
        signer = recover_public_key(digest, self.invoice_signature)
        if signer != uncompressed:
            raise WrongSigner(
                "invoiceSignature was not made by the buyer's key over this transaction "
                "(wrong key, altered field, or signed for another chain, contract or channel)"
            )
        private["_digest"] = digest
        private["_buyer"] = buyer

    def _struct(self, buyer: str) -> dict[str, object]:
        return {
            "channelId": self.channel.bytes,
            "sequence": self.sequence,
            "invoiceId": self.invoice_id.bytes,
            "buyer": buyer,
            "supplier": self.supplier_address,
            "price": self.price,
            "buyerTotal": self.buyer_total,
            "lockedAmount": self.locked_amount,
            "locksRoot": self.locks_root,
            "currency": self.currency.value,
            "invoiceType": self.invoice_type,
            "terms": self.__pydantic_private__["_terms_hash"],
            "previous": self.hash_pointer_to_previous.transaction_hash,
        }

    @property
    def transaction_hash(self) -> bytes:
        """The EIP-712 digest the buyer signed; the next transaction points to it."""
        return self.__pydantic_private__["_digest"]

    @property
    def buyer(self) -> Address:
        """The buyer's Ethereum address (the on-chain participant), whatever the currency."""
        return Address(self.__pydantic_private__["_buyer"])

    @property
    def parsed_terms(self) -> Any:
        """The kind's terms as its model (None for a kind without terms)."""
        return self.__pydantic_private__["_terms"]

    @property
    def terms_hash(self) -> bytes:
        """What the signature binds the terms with: the kind's EIP-712 hashStruct (zero: no terms)."""
        return self.__pydantic_private__["_terms_hash"]

    @property
    def pointer(self) -> HashPointer:
        """A HashPointer to this transaction, for the next one to carry."""
        return HashPointer(transaction_id=self.invoice_id, transaction_hash=self.__pydantic_private__["_digest"])

    def payment_struct(self) -> dict[str, object]:
        """The EIP-712 ``Payment`` values as the contract receives them."""
        return self._struct(self.__pydantic_private__["_buyer"])


def _check_buyer_address(text: str, uncompressed: bytes, eth: str, currency: Currency) -> None:
    if currency is Currency.ETH:
        given = parse_eth_address(text)
        if given != eth:
            raise AddressMismatch(
                f"buyerAddress {text} is not the Ethereum address of buyerPublicKey (expected {eth})"
            )
        return
    parse_btc_address(text)
    allowed = {btc_p2pkh_address(uncompressed), btc_p2pkh_address(uncompressed, compressed=False)}
    if text not in allowed:
        raise AddressMismatch(
            f"buyerAddress {text} is not the P2PKH address of buyerPublicKey "
            f"(expected {btc_p2pkh_address(uncompressed)})"
        )


def payment_digest(invoice: Invoice, *, buyer: str, channel: UUID, invoice_id: UUID, sequence: int,
                   previous_hash: bytes, buyer_total: int, domain: SigningDomain, locked_amount: int = 0,
                   locks_root: bytes = GENESIS_HASH, terms_hash: bytes = GENESIS_HASH) -> bytes:
    """The EIP-712 digest a buyer signs for one channel transaction (``PAYMENT_TYPE``)."""
    return domain.digest(PAYMENT_TYPE.hash_struct({
        "channelId": channel.bytes,
        "sequence": sequence,
        "invoiceId": invoice_id.bytes,
        "buyer": buyer,
        "supplier": invoice.invoice_address,
        "price": invoice.price,
        "buyerTotal": buyer_total,
        "lockedAmount": locked_amount,
        "locksRoot": locks_root,
        "currency": invoice.currency.value,
        "invoiceType": invoice.invoice_type,
        "terms": terms_hash,
        "previous": previous_hash,
    }))


def _buyer_signature(invoice: Invoice, key: PrivateKey, signer: PrivateKey, previous: HashPointer,
                     **position: Any) -> tuple[str, bytes, bytes]:
    """The buyer's checksum address (from ``key``), the payment digest at ``position`` (channel,
    invoice_id, sequence, buyer_total, domain) after ``previous``, and ``signer``'s signature of it."""
    buyer = to_checksum_address(eth_address_bytes(key.public_key))
    digest = payment_digest(invoice, buyer=buyer, previous_hash=previous.transaction_hash, **position)
    return buyer, digest, signer.sign_digest(digest)


def _kind_terms(kind: str, terms: dict[str, Any] | None) -> tuple[Any, dict[str, Any], bytes]:
    """The kind's parsed terms, their normal JSON form, and the hash the signature binds them with."""
    entry = kinds.get(kind)
    parsed = entry.parse_terms(terms or {})
    return parsed, (parsed.to_dict() if parsed is not None else {}), entry.terms_hash(parsed)


def signed_invoice_json(invoice: Invoice, *, key: PrivateKey, channel: UUID, invoice_id: UUID, sequence: int,
                        previous: HashPointer, buyer_total: int, domain: SigningDomain,
                        signer: PrivateKey | None = None, locked_amount: int = 0, locks_root: bytes = GENESIS_HASH,
                        kind: str = "payment", terms: dict[str, Any] | None = None) -> tuple[bytes, HashPointer]:
    """The wire form of ``sign_invoice(...).to_json()`` and the new head, without building the model.

    For load generators (the simulator): a third of ``sign_invoice``'s cost. ``signer`` signs in
    the buyer's name (a forged variant: the receiver refuses it). Every receiver verifies what it
    parses, so nothing here is trusted; a unit test keeps this equal to ``SignedInvoice.to_json``."""
    _, terms_json, terms_hash = _kind_terms(kind, terms)
    buyer_key = key.public_key
    buyer, digest, signature = _buyer_signature(invoice, key, signer or key, previous, channel=channel,
                                                invoice_id=invoice_id, sequence=sequence,
                                                buyer_total=buyer_total, domain=domain, locked_amount=locked_amount,
                                                locks_root=locks_root, terms_hash=terms_hash)
    doc = {
        "invoiceID": str(invoice_id), "invoiceSignature": "0x" + signature.hex(),
        "supplierAddress": invoice.invoice_address, "buyerPublicKey": "0x" + buyer_key.hex(),
        "buyerAddress": buyer if invoice.currency is Currency.ETH else btc_p2pkh_address(buyer_key),
        "currency": invoice.currency.value, "price": str(invoice.price), "channel": str(channel),
        "hashPointerToPrevious": {"transactionID": str(previous.transaction_id),
                                  "transactionHash": "0x" + previous.transaction_hash.hex()},
        "sequence": sequence, "buyerTotal": str(buyer_total), "invoiceType": invoice.invoice_type,
        "lockedAmount": str(locked_amount), "locksRoot": "0x" + locks_root.hex(), "kind": kind, "terms": terms_json,
        "domain": {"chainId": domain.chain_id, "verifyingContract": domain.verifying_contract},
    }
    return json.dumps(doc, separators=(",", ":")).encode(), HashPointer(transaction_id=invoice_id,
                                                                        transaction_hash=digest)


def sign_invoice(invoice: Invoice, *, key: PrivateKey, channel: UUID, invoice_id: UUID, sequence: int,
                 previous: HashPointer, buyer_total: int, domain: SigningDomain,
                 buyer_address: str | None = None, verify: bool = True, locked_amount: int = 0,
                 locks_root: bytes = GENESIS_HASH, kind: str = "payment",
                 terms: dict[str, Any] | None = None) -> SignedInvoice:
    """The buyer's side: sign ``invoice`` as transaction ``sequence`` of ``channel``.

    ``kind`` and ``terms``: an entry of the catalogue (``domain/kinds.py``) and its terms as JSON
    values; ``buyer_total``, ``locked_amount`` and ``locks_root`` are the buyer's state after it (the
    Channel refuses any that differ from what the kind's effect gives; ``Channel.sign_next`` computes them)."""
    parsed, terms_json, terms_hash = _kind_terms(kind, terms)
    buyer, digest, signature = _buyer_signature(invoice, key, key, previous, channel=channel,
                                                invoice_id=invoice_id, sequence=sequence,
                                                buyer_total=buyer_total, domain=domain, locked_amount=locked_amount,
                                                locks_root=locks_root, terms_hash=terms_hash)
    if buyer_address is None:
        buyer_address = buyer if invoice.currency is Currency.ETH else btc_p2pkh_address(key.public_key)
    fields = dict(
        invoice_id=invoice_id,
        invoice_signature=signature,
        supplier_address=invoice.invoice_address,
        buyer_public_key=key.public_key,
        buyer_address=buyer_address,
        currency=invoice.currency,
        price=invoice.price,
        channel=channel,
        hash_pointer_to_previous=previous,
        sequence=sequence,
        buyer_total=buyer_total,
        invoice_type=invoice.invoice_type,
        locked_amount=locked_amount,
        locks_root=locks_root,
        kind=kind,
        terms=terms_json,
        domain=domain,
    )
    if verify:
        return SignedInvoice(**fields)
    # The signer's own output: skip re-recovering the key (half a simulator's CPU);
    # every receiver still verifies when it parses the message.
    try:
        return SignedInvoice.model_validate(fields, context={_SIGNED_HERE: (digest, buyer, parsed, terms_hash)})
    except ValidationError as err:
        raise _unwrap(err) from None


def cooperative_close_digest(
    domain: SigningDomain, channel: UUID, balance_a: int, balance_b: int, sequence: int, expiry: int
) -> bytes:
    """What both participants sign to close at once: the balances at head ``sequence``, valid until
    ``expiry`` (unix seconds, inclusive; the contract refuses it afterwards)."""
    return domain.digest(
        COOPERATIVE_CLOSE_TYPE.hash_struct(
            {
                "channelId": channel.bytes,
                "balanceA": balance_a,
                "balanceB": balance_b,
                "sequence": sequence,
                "expiry": expiry,
            }
        )
    )


def sign_cooperative_close(
    key: PrivateKey,
    domain: SigningDomain,
    channel: UUID,
    balance_a: int,
    balance_b: int,
    sequence: int,
    expiry: int,
) -> Signature:
    return key.sign_digest(cooperative_close_digest(domain, channel, balance_a, balance_b, sequence, expiry))


__all__ = [
    "COOPERATIVE_CLOSE_TYPE",
    "GENESIS",
    "GENESIS_HASH",
    "HashPointer",
    "INVOICE_TYPE",
    "Invoice",
    "InvalidSignature",
    "PAYMENT_TYPE",
    "SignedInvoice",
    "SigningDomain",
    "cooperative_close_digest",
    "payment_digest",
    "sign_cooperative_close",
    "sign_invoice",
    "signed_invoice_json",
]
