"""secp256k1 keys and recoverable signatures, keccak-256, hash160.

The hot path uses libsecp256k1 through coincurve (public-key recovery is the
node's per-payment cost); ``tests/unit/test_crypto.py`` cross-checks it against
py-ecc's pure-Python secp256k1. Only low-s signatures (EIP-2) are produced or
accepted, so a signature has exactly one valid encoding.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from typing import NewType

import coincurve

from domain.errors import HighSSignature, InvalidPublicKey, InvalidSignature

try:  # safe-pysha3: C keccak with little call overhead (~4x pycryptodome per call)
    from sha3 import keccak_256 as _keccak_256

    def keccak(data: bytes) -> bytes:
        return _keccak_256(data).digest()

except ImportError:  # pragma: no cover - exercised only without safe-pysha3
    from Crypto.Hash import keccak as _cd_keccak

    def keccak(data: bytes) -> bytes:
        return _cd_keccak.new(digest_bits=256, data=data).digest()


Signature = NewType("Signature", bytes)
"""65 bytes: r (32) ‖ s (32) ‖ v (1, 27 or 28)."""

SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
SECP256K1_HALF_N = SECP256K1_N // 2


def ripemd160(data: bytes) -> bytes:
    try:
        return hashlib.new("ripemd160", data).digest()
    except ValueError:  # OpenSSL 3 builds without the legacy provider
        from Crypto.Hash import RIPEMD160

        return RIPEMD160.new(data).digest()


def hash160(data: bytes) -> bytes:
    return ripemd160(hashlib.sha256(data).digest())


class PrivateKey:
    """A secp256k1 signing key. ``secret`` is 32 bytes, 1 <= k < n."""

    __slots__ = ("_key",)

    def __init__(self, secret: bytes) -> None:
        if len(secret) != 32 or not 0 < int.from_bytes(secret, "big") < SECP256K1_N:
            raise InvalidPublicKey("a private key is 32 bytes with 0 < k < n")
        self._key = coincurve.PrivateKey(secret)

    @classmethod
    def from_hex(cls, text: str) -> PrivateKey:
        return cls(bytes.fromhex(text.removeprefix("0x")))

    @classmethod
    def from_seed(cls, seed: str) -> PrivateKey:
        """A deterministic key for simulations and tests: keccak(seed)."""
        return cls(keccak(seed.encode()))

    @property
    def secret(self) -> bytes:
        return self._key.secret

    @property
    def public_key(self) -> bytes:
        """The 33-byte compressed public key."""
        return self._key.public_key.format(compressed=True)

    def sign_digest(self, digest: bytes) -> Signature:
        """Sign a 32-byte digest; returns r‖s‖v with v in {27, 28} and low s."""
        if len(digest) != 32:
            raise ValueError("digest must be 32 bytes")
        raw = self._key.sign_recoverable(digest, hasher=None)  # libsecp256k1 emits low-s
        return Signature(raw[:64] + bytes([raw[64] + 27]))

    def __repr__(self) -> str:  # never print the secret
        return f"PrivateKey(public_key={self.public_key.hex()})"


def split_signature(sig: bytes) -> tuple[int, int, int]:
    """Check a 65-byte signature's form and return (r, s, v)."""
    if len(sig) != 65:
        raise InvalidSignature(f"a signature is 65 bytes (r‖s‖v), got {len(sig)}")
    r = int.from_bytes(sig[:32], "big")
    s = int.from_bytes(sig[32:64], "big")
    v = sig[64]
    if v not in (27, 28):
        raise InvalidSignature(f"signature v must be 27 or 28, got {v}")
    if not (0 < r < SECP256K1_N and 0 < s < SECP256K1_N):
        raise InvalidSignature("signature r and s must be in [1, n-1]")
    if s > SECP256K1_HALF_N:
        raise HighSSignature(
            "signature has a high s value (malleable form); only low-s signatures (EIP-2) are accepted"
        )
    return r, s, v


def recover_public_key(digest: bytes, sig: bytes) -> bytes:
    """The 65-byte uncompressed public key that made ``sig`` over ``digest``."""
    _, _, v = split_signature(sig)
    try:
        pub = coincurve.PublicKey.from_signature_and_message(
            sig[:64] + bytes([v - 27]), digest, hasher=None
        )
    except Exception as exc:  # coincurve raises plain Exception on failure
        raise InvalidSignature(f"signature does not recover to a public key: {exc}") from None
    return pub.format(compressed=False)


@lru_cache(maxsize=65536)
def decompress_public_key(key: bytes) -> bytes:
    """Accept a 33-byte compressed or 65-byte uncompressed key; return the 65-byte form."""
    if len(key) == 64:  # raw x‖y without the 0x04 prefix, as Ethereum tooling often prints
        key = b"\x04" + key
    if len(key) not in (33, 65):
        raise InvalidPublicKey(
            f"a public key is 33 bytes (compressed) or 65 bytes (uncompressed), got {len(key)}"
        )
    try:
        return coincurve.PublicKey(key).format(compressed=False)
    except Exception:
        raise InvalidPublicKey("bytes are not a point on secp256k1") from None


def compress_public_key(key: bytes) -> bytes:
    try:
        return coincurve.PublicKey(decompress_public_key(key)).format(compressed=True)
    except InvalidPublicKey:
        raise
    except Exception:  # pragma: no cover
        raise InvalidPublicKey("bytes are not a point on secp256k1") from None
