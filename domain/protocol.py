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
from typing import Annotated, Any
from uuid import UUID

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    PrivateAttr,
    ValidationError,
    field_validator,
)

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
    ParsecError,
    WrongSigner,
)
from domain.money import Currency, check_amount, parse_units

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


# --- field types ----------------------------------------------------------
MAX_JSON_DEPTH = 32
"""A Parsec message nests three levels deep; anything past this is refused before it is decoded
(Python's decoder recurses per level, and libraries such as py-evm raise the recursion limit)."""


def check_json_depth(raw: bytes | str) -> None:
    """Refuse JSON nested deeper than ``MAX_JSON_DEPTH``. Costs two ``count`` calls on an ordinary
    message: the string-aware scan runs only when there are many brackets at all."""
    data = raw.encode() if isinstance(raw, str) else raw
    if data.count(b"[") + data.count(b"{") <= MAX_JSON_DEPTH:
        return
    depth, in_string, escaped = 0, False, False
    for c in data:
        if in_string:
            if escaped:
                escaped = False
            elif c == 0x5C:  # backslash
                escaped = True
            elif c == 0x22:  # quote
                in_string = False
        elif c == 0x22:
            in_string = True
        elif c in (0x5B, 0x7B):
            depth += 1
            if depth > MAX_JSON_DEPTH:
                raise MalformedMessage(f"not valid JSON: nested too deeply (more than {MAX_JSON_DEPTH} levels)")
        elif c in (0x5D, 0x7D):
            depth -= 1


def _amount(value: Any) -> int:
    """Integers, or strings of the digits 0-9 (JSON consumers lose precision past 2**53)."""
    return parse_units(value)


AmountField = Annotated[int, BeforeValidator(_amount), PlainSerializer(str, return_type=str)]


def _hex_bytes(size: int | None):
    def parse(value: Any) -> bytes:
        if isinstance(value, bytes):
            raw = value
        elif isinstance(value, str):
            try:
                raw = bytes.fromhex(value.removeprefix("0x"))
            except ValueError:
                raise MalformedMessage(f"{value[:80]!r} is not hex") from None
        else:
            raise MalformedMessage(f"expected a hex string, got {type(value).__name__}")
        if size is not None and len(raw) != size:
            raise MalformedMessage(f"expected {size} bytes of hex, got {len(raw)}")
        return raw

    return parse


def _hex_out(value: bytes) -> str:
    return "0x" + value.hex()


Hash32 = Annotated[bytes, BeforeValidator(_hex_bytes(32)), PlainSerializer(_hex_out, return_type=str)]
SignatureHex = Annotated[bytes, BeforeValidator(_hex_bytes(65)), PlainSerializer(_hex_out, return_type=str)]
PublicKeyHex = Annotated[bytes, BeforeValidator(_hex_bytes(None)), PlainSerializer(_hex_out, return_type=str)]
EthAddressField = Annotated[str, BeforeValidator(lambda v: parse_eth_address(v))]


def _unwrap(err: ValidationError) -> ParsecError:
    """Surface the first domain error pydantic wrapped, else a readable MalformedMessage."""
    for item in err.errors():
        inner = (item.get("ctx") or {}).get("error")
        if isinstance(inner, ParsecError):
            return inner
    parts = []
    for item in err.errors()[:3]:
        loc = ".".join(str(p) for p in item["loc"]) or "message"
        parts.append(f"{loc}: {item['msg']}")
    return MalformedMessage("; ".join(parts))


class Message(BaseModel):
    """Base of protocol messages: frozen, strict about unknown fields, domain errors unwrapped."""

    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="forbid")

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as err:
            raise _unwrap(err) from None

    @classmethod
    def parse(cls, data: Any):
        try:
            return cls.model_validate(data)
        except ValidationError as err:
            raise _unwrap(err) from None

    @classmethod
    def from_json(cls, raw: bytes | str):
        check_json_depth(raw)
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise MalformedMessage(f"not valid JSON: {exc}") from None
        except RecursionError:  # JSON nested deeper than the decoder recurses: never a payment
            raise MalformedMessage("not valid JSON: nested too deeply") from None
        if not isinstance(data, dict):
            raise MalformedMessage(f"expected a JSON object, got {type(data).__name__}")
        return cls.parse(data)

    def to_json(self) -> bytes:
        return self.model_dump_json(by_alias=True).encode()

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)


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
    locks_root: Hash32 = Field(default=GENESIS_HASH, alias="locksRoot")
    terms: Hash32 = Field(default=GENESIS_HASH)  # raw hashStruct of the kind's terms (issue 14 interface)
    domain: SigningDomain

    _digest: bytes = PrivateAttr(default=b"")
    _buyer: str = PrivateAttr(default="")

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
        if isinstance(context, dict) and _SIGNED_HERE in context:
            self._digest, self._buyer = context[_SIGNED_HERE]
            return
        check_amount(self.price, what="price")
        if self.terms == GENESIS_HASH and self.buyer_total < self.price:  # a plain payment
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
        self._digest = digest
        self._buyer = buyer

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
            "terms": self.terms,
            "previous": self.hash_pointer_to_previous.transaction_hash,
        }

    @property
    def transaction_hash(self) -> bytes:
        """The EIP-712 digest the buyer signed; the next transaction points to it."""
        return self._digest

    @property
    def buyer(self) -> Address:
        """The buyer's Ethereum address (the on-chain participant), whatever the currency."""
        return Address(self._buyer)

    @property
    def pointer(self) -> HashPointer:
        """A HashPointer to this transaction, for the next one to carry."""
        return HashPointer(transaction_id=self.invoice_id, transaction_hash=self._digest)

    def payment_struct(self) -> dict[str, object]:
        """The EIP-712 ``Payment`` values as the contract receives them."""
        return self._struct(self._buyer)


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
                   locks_root: bytes = GENESIS_HASH, terms: bytes = GENESIS_HASH) -> bytes:
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
        "terms": terms,
        "previous": previous_hash,
    }))


def _buyer_signature(invoice: Invoice, key: PrivateKey, signer: PrivateKey, previous: HashPointer,
                     **position: Any) -> tuple[str, bytes, bytes]:
    """The buyer's checksum address (from ``key``), the payment digest at ``position`` (channel,
    invoice_id, sequence, buyer_total, domain) after ``previous``, and ``signer``'s signature of it."""
    buyer = to_checksum_address(eth_address_bytes(key.public_key))
    digest = payment_digest(invoice, buyer=buyer, previous_hash=previous.transaction_hash, **position)
    return buyer, digest, signer.sign_digest(digest)


def signed_invoice_json(invoice: Invoice, *, key: PrivateKey, channel: UUID, invoice_id: UUID, sequence: int,
                        previous: HashPointer, buyer_total: int, domain: SigningDomain,
                        signer: PrivateKey | None = None, locked_amount: int = 0, locks_root: bytes = GENESIS_HASH,
                        terms: bytes = GENESIS_HASH) -> tuple[bytes, HashPointer]:
    """The wire form of ``sign_invoice(...).to_json()`` and the new head, without building the model.

    For load generators (the simulator): a third of ``sign_invoice``'s cost. ``signer`` signs in
    the buyer's name (a forged variant: the receiver refuses it). Every receiver verifies what it
    parses, so nothing here is trusted; a unit test keeps this equal to ``SignedInvoice.to_json``."""
    buyer_key = key.public_key
    buyer, digest, signature = _buyer_signature(invoice, key, signer or key, previous, channel=channel,
                                                invoice_id=invoice_id, sequence=sequence,
                                                buyer_total=buyer_total, domain=domain,
                                                locked_amount=locked_amount, locks_root=locks_root, terms=terms)
    doc = {
        "invoiceID": str(invoice_id), "invoiceSignature": "0x" + signature.hex(),
        "supplierAddress": invoice.invoice_address, "buyerPublicKey": "0x" + buyer_key.hex(),
        "buyerAddress": buyer if invoice.currency is Currency.ETH else btc_p2pkh_address(buyer_key),
        "currency": invoice.currency.value, "price": str(invoice.price), "channel": str(channel),
        "hashPointerToPrevious": {"transactionID": str(previous.transaction_id),
                                  "transactionHash": "0x" + previous.transaction_hash.hex()},
        "sequence": sequence, "buyerTotal": str(buyer_total), "invoiceType": invoice.invoice_type,
        "lockedAmount": str(locked_amount), "locksRoot": "0x" + locks_root.hex(), "terms": "0x" + terms.hex(),
        "domain": {"chainId": domain.chain_id, "verifyingContract": domain.verifying_contract},
    }
    return json.dumps(doc, separators=(",", ":")).encode(), HashPointer(transaction_id=invoice_id,
                                                                        transaction_hash=digest)


def sign_invoice(invoice: Invoice, *, key: PrivateKey, channel: UUID, invoice_id: UUID, sequence: int,
                 previous: HashPointer, buyer_total: int, domain: SigningDomain,
                 buyer_address: str | None = None, verify: bool = True, locked_amount: int = 0,
                 locks_root: bytes = GENESIS_HASH, terms: bytes = GENESIS_HASH) -> SignedInvoice:
    """The buyer's side: sign ``invoice`` as transaction ``sequence`` of ``channel``."""
    buyer, digest, signature = _buyer_signature(invoice, key, key, previous, channel=channel,
                                                invoice_id=invoice_id, sequence=sequence,
                                                buyer_total=buyer_total, domain=domain,
                                                locked_amount=locked_amount, locks_root=locks_root, terms=terms)
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
        terms=terms,
        domain=domain,
    )
    if verify:
        return SignedInvoice(**fields)
    # The signer's own output: skip re-recovering the key (half a simulator's CPU);
    # every receiver still verifies when it parses the message.
    try:
        return SignedInvoice.model_validate(fields, context={_SIGNED_HERE: (digest, buyer)})
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
