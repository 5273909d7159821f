"""Keys, signatures and addresses against published vectors and an independent implementation."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from py_ecc.secp256k1 import secp256k1 as ref

from domain.addresses import (
    address_for_currency,
    b58check_decode,
    btc_p2pkh_address,
    eth_address_from_public_key,
    parse_btc_address,
    parse_eth_address,
    to_checksum_address,
)
from domain.crypto import (
    SECP256K1_N,
    PrivateKey,
    decompress_public_key,
    keccak,
    recover_public_key,
    split_signature,
)
from domain.errors import HighSSignature, InvalidAddress, InvalidPublicKey, InvalidSignature
from domain.money import Currency

ONE = PrivateKey((1).to_bytes(32, "big"))


# --- published vectors --------------------------------------------------------------
def test_keccak_known_answers():
    assert keccak(b"").hex() == "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"
    assert keccak(b"abc").hex() == "4e03657aea45a94fc7d47ba826c8d667c0d1e6e33a64a036ec44f58fa12d6c45"


@pytest.mark.parametrize(
    "secret,address",
    [
        # the private key 1 (the generator point G)
        ("0000000000000000000000000000000000000000000000000000000000000001",
         "0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf"),
        # web3.py / eth-account documentation's example key
        ("4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318",
         "0x2c7536E3605D9C16a7a3D7b1898e529396a65c23"),
    ],
)
def test_ethereum_address_from_key_matches_published_vectors(secret, address):
    key = PrivateKey.from_hex(secret)
    assert eth_address_from_public_key(key.public_key) == address


@pytest.mark.parametrize(
    "address",
    [  # EIP-55's own test cases
        "0x52908400098527886E0F7030069857D2E4169EE7",
        "0x8617E340B3D01FA5F11F306F4090FD50E238070D",
        "0xde709f2102306220921060314715629080e2fb77",
        "0x27b1fdb04752bbc536007a920d24acb045561c26",
        "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
        "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359",
        "0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB",
        "0xD1220A0cf47c7B9Be7A2E6BA89F429762e7b9aDb",
    ],
)
def test_eip55_checksums(address):
    assert to_checksum_address(address.lower()) == address or address in (
        # all-caps / all-lower vectors are valid as given and checksum to themselves
        "0x52908400098527886E0F7030069857D2E4169EE7",
        "0x8617E340B3D01FA5F11F306F4090FD50E238070D",
        "0xde709f2102306220921060314715629080e2fb77",
        "0x27b1fdb04752bbc536007a920d24acb045561c26",
    )
    assert parse_eth_address(address) == to_checksum_address(address.lower())


def test_a_wrong_eip55_checksum_is_refused():
    bad = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAeD"  # last letter's case flipped
    with pytest.raises(InvalidAddress, match="checksum"):
        parse_eth_address(bad)
    with pytest.raises(InvalidAddress, match="40 hex"):
        parse_eth_address("0x1234")


def test_bitcoin_p2pkh_matches_published_vectors():
    # the private key 1: compressed and uncompressed P2PKH addresses
    assert btc_p2pkh_address(ONE.public_key) == "1BgGZ9tcN4rm9KBzDn7KprQz87SZ26SAMH"
    assert btc_p2pkh_address(ONE.public_key, compressed=False) == "1EHNa6Q4Jz2uvNExL497mE43ikXhwF6kZm"
    # Bitcoin wiki, "Technical background of version 1 Bitcoin addresses"
    wiki_key = bytes.fromhex("0250863ad64a87ae8a2fe83c1af1a8403cb53f53e486d8511dad8a04887e5b2352")
    assert btc_p2pkh_address(wiki_key) == "1PMycacnJaSqwwJqjawXBErnLsZ7RkXUAs"
    version, payload = b58check_decode("1PMycacnJaSqwwJqjawXBErnLsZ7RkXUAs")
    assert version == 0 and payload.hex() == "f54a5851e9372b87810a8e60cdd2e7cfd80b6e31"


def test_bad_bitcoin_addresses_are_refused():
    with pytest.raises(InvalidAddress, match="checksum"):
        parse_btc_address("1PMycacnJaSqwwJqjawXBErnLsZ7RkXUAt")
    with pytest.raises(InvalidAddress, match="base58"):
        parse_btc_address("1PMycacnJaSqwwJqjawXBErnLsZ7RkXU0s")  # '0' is not base58
    with pytest.raises(InvalidAddress, match="P2PKH"):
        parse_btc_address("3J98t1WpEZ73CNmQviecrnyiWrnqRhWNLy")  # P2SH, version 5


def test_address_for_currency():
    assert address_for_currency(ONE.public_key, Currency.ETH).startswith("0x")
    assert address_for_currency(ONE.public_key, Currency.BTC).startswith("1")


def test_public_key_forms():
    full = decompress_public_key(ONE.public_key)
    assert len(full) == 65 and full[0] == 4
    assert decompress_public_key(full[1:]) == full
    with pytest.raises(InvalidPublicKey):
        decompress_public_key(b"\x02" + b"\xff" * 32)  # x beyond the field: not on the curve
    with pytest.raises(InvalidPublicKey):
        decompress_public_key(b"\x04" * 10)


# --- signatures ----------------------------------------------------------------------
def test_signatures_are_low_s_and_recover():
    digest = keccak(b"parsec")
    sig = ONE.sign_digest(digest)
    r, s, v = split_signature(sig)
    assert s <= SECP256K1_N // 2 and v in (27, 28)
    assert recover_public_key(digest, sig) == decompress_public_key(ONE.public_key)


def test_high_s_form_of_a_valid_signature_is_refused():
    digest = keccak(b"parsec")
    sig = ONE.sign_digest(digest)
    r, s, v = split_signature(sig)
    malleable = r.to_bytes(32, "big") + (SECP256K1_N - s).to_bytes(32, "big") + bytes([55 - v])
    # the flipped form is mathematically valid (py-ecc recovers the same key) ...
    x, y = ref.ecdsa_raw_recover(digest, (55 - v, r, SECP256K1_N - s))
    assert b"\x04" + x.to_bytes(32, "big") + y.to_bytes(32, "big") == decompress_public_key(ONE.public_key)
    # ... but Parsec accepts one encoding only
    with pytest.raises(HighSSignature, match="low-s"):
        recover_public_key(digest, malleable)


@pytest.mark.parametrize(
    "sig,match",
    [
        (b"\x01" * 64, "65 bytes"),
        (b"\x01" * 64 + b"\x1d", "v must be 27 or 28"),
        (b"\x00" * 32 + b"\x01" * 32 + b"\x1b", r"r and s"),
    ],
)
def test_malformed_signatures(sig, match):
    with pytest.raises(InvalidSignature, match=match):
        recover_public_key(keccak(b"x"), sig)


@settings(max_examples=25, deadline=None)
@given(
    secret=st.integers(min_value=1, max_value=SECP256K1_N - 1),
    message=st.binary(min_size=0, max_size=64),
)
def test_coincurve_agrees_with_py_ecc(secret, message):
    """The hot-path library and py-ecc's pure-Python secp256k1 agree on keys and signatures."""
    priv = secret.to_bytes(32, "big")
    digest = keccak(message)
    key = PrivateKey(priv)
    x, y = ref.privtopub(priv)
    ref_pub = b"\x04" + x.to_bytes(32, "big") + y.to_bytes(32, "big")
    assert decompress_public_key(key.public_key) == ref_pub

    # our signature verifies under py-ecc
    sig = key.sign_digest(digest)
    r, s, v = split_signature(sig)
    rx, ry = ref.ecdsa_raw_recover(digest, (v, r, s))
    assert b"\x04" + rx.to_bytes(32, "big") + ry.to_bytes(32, "big") == ref_pub

    # py-ecc's signature, normalised to low s, recovers to the same key with coincurve
    v2, r2, s2 = ref.ecdsa_raw_sign(digest, priv)
    if s2 > SECP256K1_N // 2:
        s2, v2 = SECP256K1_N - s2, 55 - v2
    ref_sig = r2.to_bytes(32, "big") + s2.to_bytes(32, "big") + bytes([v2])
    assert recover_public_key(digest, ref_sig) == ref_pub
