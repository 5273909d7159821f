"""Typed-data hashing and the protocol messages' validation."""

import json
import uuid

import pytest
from eth_account import Account

from domain.crypto import PrivateKey, keccak
from domain.eip712 import StructType, domain_separator, encode_value, typed_data_digest
from domain.errors import (
    AddressMismatch,
    AmountOutOfRange,
    CurrencyNotAllowed,
    HighSSignature,
    InvalidAddress,
    InvalidAmount,
    MalformedMessage,
    WrongSigner,
)
from domain.money import Currency
from domain.protocol import (
    COOPERATIVE_CLOSE_TYPE,
    GENESIS,
    PAYMENT_TYPE,
    HashPointer,
    Invoice,
    SignedInvoice,
    SigningDomain,
    cooperative_close_digest,
    sign_cooperative_close,
)
from tests.builders import ALICE, BOB, CAROL, DOMAIN, Ledger, addr, eth_account_signable, signable_digest


# --- EIP-712 -------------------------------------------------------------------------
def test_eip712_reproduces_the_eips_mail_example():
    """EIP-712's own example: domain 'Ether Mail', Cow mails Bob."""
    sep = domain_separator("Ether Mail", "1", 1, "0xCcCCccccCCCCcCCCCCCcCcCccCcCCCcCcccccccC")
    assert sep.hex() == "f2cee375fa42b42143804025fc449deafd50cc031ca257e0b194a650a912090f"
    person = StructType.parse("Person(string name,address wallet)")
    mail_type = "Mail(Person from,Person to,string contents)" + person.encode_type
    cow = person.hash_struct({"name": "Cow", "wallet": "0xCD2a3d9F938E13CD947Ec05AbC7FE734Df8DD826"})
    bob = person.hash_struct({"name": "Bob", "wallet": "0xbBbBBBBbbBBBbbbBbbBbbbbBBbBbbbbBbBbbBBbB"})
    mail = keccak(keccak(mail_type.encode()) + cow + bob + encode_value("string", "Hello, Bob!"))
    assert mail.hex() == "c52c0ee5d84264471806290a3f2c4cecfc5490626bf912d01f240d7a274b371e"
    digest = typed_data_digest(sep, mail)
    assert digest.hex() == "be609aee343fb3c4b28e1df9e632fca64fcfaede20f02e86244efddf30957bd2"
    sig = PrivateKey(keccak(b"cow")).sign_digest(digest)
    assert sig[64] == 28
    assert sig[:32].hex() == "4355c47d63924e8a72e509b65029052eb6c299d53a04e167c5775fd466751c9d"
    assert sig[32:64].hex() == "07299936d304c153f6443dfa05f40ff007d72911b6f72307f996231605b91562"


def _eth_account_payment_digest(tx: SignedInvoice) -> bytes:
    signable = eth_account_signable(PAYMENT_TYPE, dict(tx.payment_struct()), tx.domain)
    return signable_digest(signable), signable


def test_payment_digest_and_signature_agree_with_eth_account():
    tx = Ledger(uuid.uuid4()).pay(ALICE, 42)
    digest, signable = _eth_account_payment_digest(tx)
    assert digest == tx.transaction_hash
    assert Account.recover_message(signable, signature=tx.invoice_signature) == addr(ALICE)


# --- messages ------------------------------------------------------------------------
def test_a_signed_invoice_round_trips_through_json_with_the_papers_field_names():
    tx = Ledger(uuid.uuid4()).pay(ALICE, 10**18)
    data = json.loads(tx.to_json())
    for name in ("invoiceID", "invoiceSignature", "supplierAddress", "buyerPublicKey", "buyerAddress",
                 "currency", "price", "channel", "hashPointerToPrevious"):
        assert name in data
    assert data["hashPointerToPrevious"] == {
        "transactionID": "00000000-0000-0000-0000-000000000000",
        "transactionHash": "0x" + "00" * 32,
    }
    assert data["price"] == str(10**18)  # amounts as digit strings: no float can creep in
    again = SignedInvoice.from_json(tx.to_json())
    assert again == tx and again.transaction_hash == tx.transaction_hash


def test_the_hash_changes_when_any_signed_field_changes():
    ledger = Ledger(uuid.uuid4())
    base = ledger.pay(ALICE, 10, advance=False)
    variants = [
        ledger.pay(ALICE, 11, advance=False, invoice_id=base.invoice_id),
        ledger.pay(ALICE, 10, advance=False, invoice_id=uuid.uuid4()),
        ledger.pay(ALICE, 10, advance=False, invoice_id=base.invoice_id, sequence=2,
                   previous=HashPointer(transaction_id=uuid.uuid4(), transaction_hash=b"\1" * 32)),
        ledger.pay(ALICE, 10, advance=False, invoice_id=base.invoice_id, buyer_total=20),
        ledger.pay(ALICE, 10, advance=False, invoice_id=base.invoice_id, channel=uuid.uuid4()),
        ledger.pay(ALICE, 10, advance=False, invoice_id=base.invoice_id,
                   domain=SigningDomain(chain_id=1, verifying_contract=DOMAIN.verifying_contract)),
        ledger.pay(ALICE, 10, advance=False, invoice_id=base.invoice_id,
                   domain=SigningDomain(chain_id=DOMAIN.chain_id, verifying_contract="0x" + "11" * 20)),
        ledger.pay(BOB, 10, advance=False, invoice_id=base.invoice_id),  # other buyer and supplier
    ]
    btc = Ledger(ledger.channel_id, currency=Currency.BTC)
    btc.n = ledger.n
    variants.append(btc.pay(ALICE, 10, advance=False, invoice_id=base.invoice_id))
    hashes = {v.transaction_hash for v in variants} | {base.transaction_hash}
    assert len(hashes) == len(variants) + 1


def test_invoice_hash_is_keccak_of_its_fields():
    inv = Invoice(invoice_address=addr(BOB), price=5, currency="ETH", invoice_type="coffee")
    other = Invoice(invoice_address=addr(BOB), price=6, currency="ETH", invoice_type="coffee")
    assert len(inv.invoice_hash) == 32 and inv.invoice_hash != other.invoice_hash
    assert Invoice.from_json(inv.to_json()) == inv


def _tamper(tx: SignedInvoice, **changes) -> bytes:
    data = tx.to_dict()
    data.update(changes)
    return json.dumps(data).encode()


@pytest.mark.parametrize(
    "changes,error,match",
    [
        ({"currency": "DOGE"}, CurrencyNotAllowed, "use ETH or BTC"),
        ({"price": "-5"}, InvalidAmount, "integer"),
        ({"price": 1.5}, InvalidAmount, "integer"),
        ({"price": str(2**130)}, AmountOutOfRange, "exceeds"),
        ({"price": "9"}, WrongSigner, "not made by the buyer"),
        ({"buyerTotal": "5"}, AmountOutOfRange, "less than"),
        ({"supplierAddress": "0x1234"}, InvalidAddress, "40 hex"),
        ({"buyerAddress": addr(CAROL)}, AddressMismatch, "not the Ethereum address of buyerPublicKey"),
        ({"buyerPublicKey": "0x" + CAROL.public_key.hex()}, AddressMismatch, "buyerPublicKey"),
        ({"invoiceSignature": "0x1234"}, MalformedMessage, "65 bytes"),
        ({"domain": {"chainId": 1, "verifyingContract": DOMAIN.verifying_contract}}, WrongSigner, "another chain"),
        ({"sequence": "1"}, MalformedMessage, "sequence must be an integer"),
        ({"channel": "not-a-uuid"}, MalformedMessage, "channel"),
        ({"extra": 1}, MalformedMessage, "extra"),
    ],
)
def test_every_invalid_message_gets_its_own_error(changes, error, match):
    tx = Ledger(uuid.uuid4()).pay(ALICE, 10)
    with pytest.raises(error, match=match):
        SignedInvoice.from_json(_tamper(tx, **changes))


def test_malformed_json_and_non_objects():
    with pytest.raises(MalformedMessage, match="not valid JSON"):
        SignedInvoice.from_json(b'{"invoiceID": ')
    with pytest.raises(MalformedMessage, match="JSON object"):
        SignedInvoice.from_json(b"[1, 2]")
    with pytest.raises(MalformedMessage, match="not valid JSON"):
        SignedInvoice.from_json(b"\xff\xfe")


def test_a_high_s_signature_is_refused_in_a_message():
    from domain.crypto import SECP256K1_N

    tx = Ledger(uuid.uuid4()).pay(ALICE, 10)
    sig = tx.invoice_signature
    s = int.from_bytes(sig[32:64], "big")
    flipped = sig[:32] + (SECP256K1_N - s).to_bytes(32, "big") + bytes([55 - sig[64]])
    with pytest.raises(HighSSignature):
        SignedInvoice.from_json(_tamper(tx, invoiceSignature="0x" + flipped.hex()))


def test_a_signature_by_someone_else_is_refused():
    tx = Ledger(uuid.uuid4()).pay(ALICE, 10)
    forged = BOB.sign_digest(tx.transaction_hash)
    with pytest.raises(WrongSigner):
        SignedInvoice.from_json(_tamper(tx, invoiceSignature="0x" + forged.hex()))


def test_btc_invoices_name_the_buyer_by_p2pkh_address():
    from domain.addresses import btc_p2pkh_address

    ledger = Ledger(uuid.uuid4(), currency=Currency.BTC)
    tx = ledger.pay(ALICE, 12_345)
    assert tx.buyer_address == btc_p2pkh_address(ALICE.public_key)
    assert tx.buyer == addr(ALICE)  # the on-chain participant
    uncompressed = btc_p2pkh_address(ALICE.public_key, compressed=False)
    assert SignedInvoice.from_json(_tamper(tx, buyerAddress=uncompressed)).buyer == addr(ALICE)
    with pytest.raises(AddressMismatch, match="P2PKH"):
        SignedInvoice.from_json(_tamper(tx, buyerAddress=btc_p2pkh_address(BOB.public_key)))
    with pytest.raises(InvalidAddress):
        SignedInvoice.from_json(_tamper(tx, buyerAddress=addr(ALICE)))


def test_first_transaction_points_to_genesis():
    ledger = Ledger(uuid.uuid4())
    first = ledger.pay(ALICE, 1)
    assert first.hash_pointer_to_previous == GENESIS and GENESIS.is_genesis
    second = ledger.pay(BOB, 1)
    assert second.hash_pointer_to_previous == first.pointer
    with pytest.raises(MalformedMessage, match="genesis"):
        Ledger(uuid.uuid4()).pay(ALICE, 1, previous=first.pointer)


def test_cooperative_close_signatures_bind_the_balances_sequence_and_expiry():
    cid = uuid.uuid4()
    sig = sign_cooperative_close(ALICE, DOMAIN, cid, 10, 20, 3, 1_900_000_000)
    from domain.crypto import decompress_public_key, recover_public_key

    digest = cooperative_close_digest(DOMAIN, cid, 10, 20, 3, 1_900_000_000)
    assert recover_public_key(digest, sig) == decompress_public_key(ALICE.public_key)
    assert digest != cooperative_close_digest(DOMAIN, cid, 11, 19, 3, 1_900_000_000)
    assert digest != cooperative_close_digest(DOMAIN, cid, 10, 20, 4, 1_900_000_000)
    assert digest != cooperative_close_digest(DOMAIN, cid, 10, 20, 3, 1_900_000_001)
    assert COOPERATIVE_CLOSE_TYPE.encode_type == (
        "CooperativeClose(bytes16 channelId,uint256 balanceA,uint256 balanceB,uint64 sequence,uint64 expiry)"
    )


def test_signing_without_self_verification_gives_the_same_message():
    from domain.protocol import sign_invoice

    cid, iid = uuid.uuid4(), uuid.uuid4()
    inv = Invoice(invoice_address=addr(BOB), price=7, currency="ETH")
    kw = dict(key=ALICE, channel=cid, invoice_id=iid, sequence=1, previous=GENESIS, buyer_total=7, domain=DOMAIN)
    fast, checked = sign_invoice(inv, verify=False, **kw), sign_invoice(inv, **kw)
    assert fast == checked and fast.transaction_hash == checked.transaction_hash and fast.buyer == checked.buyer
    assert SignedInvoice.from_json(fast.to_json()).transaction_hash == fast.transaction_hash
