"""Gas per channel operation on the in-process chain, beside Raiden's TokenNetwork figures.

    python -m infrastructure.tools.gas_report        (or scripts/gas-report)

Prints JSON. Raiden's figures are raiden-contracts ``data/gas.json`` (an ERC20 token network),
quoted in /work/shared/design/benchmarks.md. Each Parsec figure is the ``gasUsed`` of a receipt
(after refunds), measured on fresh storage the way a first use of each operation pays it.
"""

from __future__ import annotations

import hashlib
import json
import sys
import uuid
from typing import Any

from domain.crypto import PrivateKey, keccak
from domain.locks import unpack_locks
from domain.protocol import GENESIS, Invoice, SignedInvoice, sign_cooperative_close, sign_invoice
from infrastructure.chain.artifacts import load_artifact
from infrastructure.chain.channels import ETH, ChannelContract, TestToken, locks_root, pack_lock
from infrastructure.chain.connection import advance_time, connect, fund, latest_timestamp, wallet

RAIDEN = {
    "openChannel": 104_256,
    "setTotalDeposit": 57_368,
    "closeChannel": 122_682,
    "updateNonClosingBalanceProof": 91_696,
    "settleChannel": 116_222,
}
RAIDEN_LOCKS = {
    "registerSecret": 45_597,
    "registerSecretBatch (1)": 46_059,
    "registerSecretBatch (2)": 70_119,
    "registerSecretBatch (3)": 94_179,
    "unlock (1 lock)": 38_589,
    "unlock (6 locks)": 63_070,
}
"""Raiden's SecretRegistry and TokenNetwork.unlock (raiden-contracts data/gas.json)."""
TARGET_SAVING = 30.0
PERIOD = 3600


# What each of our operations is compared with: (label, our gas key, Raiden's operations summed).
_COMPARED: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("open (ETH, deposit included)", "open", ("openChannel",)),
    ("open (BTC token, deposit included)", "open_btc", ("openChannel", "setTotalDeposit")),
    ("deposit (ETH, counterparty's first)", "deposit_first", ("setTotalDeposit",)),
    ("deposit (BTC token, counterparty's first)", "deposit_first_btc", ("setTotalDeposit",)),
    ("close (ETH)", "close", ("closeChannel",)),
    ("close (BTC token)", "close_btc", ("closeChannel",)),
    ("update (ETH)", "update", ("updateNonClosingBalanceProof",)),
    ("update (BTC token)", "update_btc", ("updateNonClosingBalanceProof",)),
    ("settle (ETH)", "settle", ("settleChannel",)),
    ("settle (BTC token)", "settle_btc", ("settleChannel",)),
)


class _Payments:
    def __init__(self, channel: uuid.UUID, contract: ChannelContract, currency: str) -> None:
        self.channel, self.domain, self.currency = channel, contract.domain, currency
        self.items: list[SignedInvoice] = []
        self.totals: dict[str, int] = {}

    def pay(
        self, buyer: PrivateKey, buyer_address: str, supplier: str, price: int, *, locks: bytes = b""
    ) -> SignedInvoice:
        """A payment of ``price``; with ``locks`` (packed), a lockedTransfer of ``price`` whose proof
        carries those pending locks (the total unchanged)."""
        total = self.totals.get(buyer_address, 0) + (0 if locks else price)
        signed = sign_invoice(
            Invoice(invoice_address=supplier, price=price, currency=self.currency, invoice_type="api-call"),
            key=buyer,
            channel=self.channel,
            invoice_id=uuid.uuid4(),
            sequence=len(self.items) + 1,
            previous=self.items[-1].pointer if self.items else GENESIS,
            buyer_total=total,
            domain=self.domain,
            locked_amount=sum(int.from_bytes(locks[o + 8 : o + 24], "big") for o in range(0, len(locks), 56)),
            locks_root=locks_root(locks),
            **(_last_lock_terms(locks, buyer_address, supplier) if locks else {}),
        )
        self.items.append(signed)
        self.totals[buyer_address] = total
        return signed


def _last_lock_terms(locks: bytes, initiator: str, target: str) -> dict[str, Any]:
    """The lockedTransfer that added the last of the packed ``locks`` (what a real proof with locks is)."""
    last = unpack_locks(locks)[-1]
    return {"kind": "lockedTransfer", "terms": {
        "amount": str(last.amount), "secretHash": "0x" + last.secret_hash.hex(), "expiry": last.expiry,
        "paymentId": str(uuid.UUID(int=len(locks))), "initiator": initiator, "target": target}}


def measure() -> dict[str, Any]:
    w3 = connect(None)
    keys = {name: PrivateKey.from_seed(f"parsec-gas-report/{name}") for name in ("deployer", "a", "b", "c")}
    wallets = {name: wallet(k) for name, k in keys.items()}
    for w in wallets.values():
        fund(w3, w.address, 10**22)
    dep, A, B, C = wallets["deployer"], wallets["a"], wallets["b"], wallets["c"]
    token = TestToken.deploy(w3, dep)
    channels = ChannelContract.deploy(w3, dep, token.address, min_challenge_period=PERIOD)
    for w in (A, B):
        token.mint(dep, w.address, 10**12)
        token.approve(w, channels.address, 2**256 - 1)
    gas: dict[str, int] = {}

    def lifecycle(currency: str, token_address: str, unit: int) -> None:
        cid = uuid.uuid4()
        suffix = "" if currency == "ETH" else "_btc"
        gas[f"open{suffix}"] = channels.open_channel(
            A, cid, B.address, deposit=10 * unit, challenge_period=PERIOD, token=token_address
        ).gas_used
        gas[f"deposit_first{suffix}"] = channels.deposit(B, cid, 5 * unit).gas_used
        gas[f"deposit_topup{suffix}"] = channels.deposit(A, cid, unit).gas_used
        p = _Payments(cid, channels, currency)
        for _ in range(3):
            p.pay(keys["a"], A.address, B.address, unit // 100)
            p.pay(keys["b"], B.address, A.address, unit // 300)
        last_a = p.pay(keys["a"], A.address, B.address, unit // 50)
        last_b = p.items[-2]
        # A closes with B's latest proof (first record of B's side: fresh slot)
        gas[f"close{suffix}"] = channels.close(A, cid, [last_b]).gas_used
        # B answers with A's latest proof (first record of A's side: fresh slot)
        gas[f"update{suffix}"] = channels.update(B, cid, [last_a]).gas_used
        advance_time(w3, PERIOD)
        gas[f"settle{suffix}"] = channels.settle(C, cid).gas_used

    lifecycle("ETH", ETH, 10**18)
    lifecycle("BTC", token.address, 10**8)

    # checkpoints while open (first record of each side, then a later one)
    cid = uuid.uuid4()
    channels.open_channel(A, cid, B.address, deposit=10**18, challenge_period=PERIOD)
    channels.deposit(B, cid, 10**18)
    p = _Payments(cid, channels, "ETH")
    p.pay(keys["a"], A.address, B.address, 1000)
    gas["checkpoint_first"] = channels.checkpoint(B, cid, [p.items[-1]]).gas_used
    p.pay(keys["a"], A.address, B.address, 1000)
    gas["checkpoint_next"] = channels.checkpoint(B, cid, [p.items[-1]]).gas_used
    domain = channels.domain
    balance_a, balance_b = 10**18 - 2000, 10**18 + 2000
    expiry = latest_timestamp(w3) + PERIOD
    gas["cooperative_close"] = channels.cooperative_close(
        C,
        cid,
        balance_a=balance_a,
        balance_b=balance_b,
        sequence=2,
        expiry=expiry,
        signature_a=sign_cooperative_close(keys["a"], domain, cid, balance_a, balance_b, 2, expiry),
        signature_b=sign_cooperative_close(keys["b"], domain, cid, balance_a, balance_b, 2, expiry),
    ).gas_used

    # the paper's disputed settlement: n payments after a recorded head
    dispute: dict[str, int] = {}
    for n in (1, 10, 50):
        cid = uuid.uuid4()
        channels.open_channel(A, cid, B.address, deposit=10**18, challenge_period=PERIOD)
        channels.deposit(B, cid, 10**18)
        p = _Payments(cid, channels, "ETH")
        p.pay(keys["b"], B.address, A.address, 10)
        p.pay(keys["a"], A.address, B.address, 10)
        channels.checkpoint(A, cid, [p.items[0]])
        channels.checkpoint(B, cid, [p.items[1]])
        head = p.items[-1]
        for i in range(n):
            if i % 2 == 0:
                p.pay(keys["b"], B.address, A.address, 7)
            else:
                p.pay(keys["a"], A.address, B.address, 5)
        last = p.items[-1]
        submitter = A if last.supplier_address == A.address else B
        dispute[str(n)] = channels.dispute(submitter, cid, p.items[2:], head=head).gas_used

    # hashed timelocks (issue 14): the registry, evidence with locks, settle deciding them, unlock
    locks_gas: dict[str, int] = {}
    secret_no = iter(range(10**6))

    def secrets(n: int) -> list[bytes]:
        return [keccak(b"parsec-gas-report/secret/%d" % next(secret_no)) for _ in range(n)]

    locks_gas["registerSecret"] = channels.register_secret(C, secrets(1)[0]).gas_used
    for n in (1, 2, 3):
        locks_gas[f"registerSecrets ({n})"] = channels.register_secrets(C, secrets(n)).gas_used

    def locked_channel(n_a: int, b_lock: bool) -> tuple[uuid.UUID, bytes, bytes, dict[str, int]]:
        """A channel closed by A with B's latest proof and updated by B with A's: A's proof has
        ``n_a`` locks to B (secrets registered: they pay B), B's one lock to A if ``b_lock``."""
        cid = uuid.uuid4()
        channels.open_channel(A, cid, B.address, deposit=10**18, challenge_period=PERIOD)
        channels.deposit(B, cid, 10**18)
        p = _Payments(cid, channels, "ETH")
        expiry = latest_timestamp(w3) + PERIOD // 2
        p.pay(keys["a"], A.address, B.address, 1000)
        p.pay(keys["b"], B.address, A.address, 700)
        mine = secrets(n_a)
        blob_a = b"".join(pack_lock(expiry, 10**15 + i, hashlib.sha256(x).digest()) for i, x in enumerate(mine))
        last_a = p.pay(keys["a"], A.address, B.address, 10**15 + n_a - 1, locks=blob_a)
        blob_b = pack_lock(expiry, 5 * 10**14, keccak(b"never revealed")) if b_lock else b""
        last_b = p.pay(keys["b"], B.address, A.address, 5 * 10**14, locks=blob_b) if b_lock else p.items[1]
        used = {
            "close": channels.close(A, cid, [last_b]).gas_used,
            "update": channels.update(B, cid, [last_a]).gas_used,
        }
        channels.register_secrets(B, mine)
        advance_time(w3, PERIOD)
        return cid, blob_a, blob_b, used

    cid, blob_a, blob_b, used = locked_channel(1, True)
    locks_gas["close (a lock in the proof)"] = used["close"]
    locks_gas["update (a lock in the proof)"] = used["update"]
    locks_gas["settleWithLocks (1 + 1 locks)"] = channels.settle_with_locks(C, cid, blob_a, blob_b).gas_used
    for n in (1, 6):
        cid, blob_a, _, _ = locked_channel(n, False)
        locks_gas[f"settleWithLocks ({n} lock{'s' if n > 1 else ''})"] = channels.settle_with_locks(
            C, cid, blob_a, b""
        ).gas_used
    for n in (1, 6):
        cid, blob_a, _, _ = locked_channel(n, False)
        plural = "s" if n > 1 else ""
        locks_gas[f"settleHoldingLocks ({n} lock{plural})"] = channels.settle_holding_locks(
            C, cid, locked_a=sum(10**15 + i for i in range(n)), root_a=locks_root(blob_a)
        ).gas_used
        locks_gas[f"unlock ({n} lock{plural})"] = channels.unlock(
            C, cid, base=10**18 + 700 - 1000, total=2 * 10**18, locks_a=blob_a
        ).gas_used
    per_lock = round((locks_gas["settleWithLocks (6 locks)"] - locks_gas["settleWithLocks (1 lock)"]) / 5)
    # deciding n locks inside settle costs over a lock-free settle (ETH)
    inside = {n: locks_gas[f"settleWithLocks ({n} lock{'s' if n > 1 else ''})"] - gas["settle"] for n in (1, 6)}

    def compare(ours: int, raiden: int) -> dict[str, Any]:
        saving = round(100 * (raiden - ours) / raiden, 1)
        return {
            "parsec": ours,
            "raiden": raiden,
            "saving_pct": saving,
            "meets_30pct": saving >= TARGET_SAVING,
        }

    return {
        "backend": "eth-tester (py-evm), evm prague",
        "compiler": load_artifact("ParsecChannels").compiler,
        "raiden_source": "raiden-contracts data/gas.json (TokenNetwork, ERC20), per docs/benchmarks.md",
        "comparison": {
            f"{label} vs {' + '.join(theirs)}": compare(gas[ours], sum(RAIDEN[name] for name in theirs))
            for label, ours, theirs in _COMPARED
        },
        "operations": dict(sorted(gas.items())),
        "disputed_settlement": {
            "gas_by_payments": dispute,
            "marginal_gas_per_payment": round((dispute["50"] - dispute["10"]) / 40),
            "note": "payments after a checkpointed head; the head is re-supplied and verified once",
        },
        "hashed_timelocks": {
            "operations": locks_gas,
            "settle_marginal_gas_per_lock": per_lock,
            "comparison": {
                "registerSecret vs registerSecret": compare(locks_gas["registerSecret"], RAIDEN_LOCKS["registerSecret"]),
                **{
                    f"registerSecrets ({n}) vs registerSecretBatch ({n})": compare(
                        locks_gas[f"registerSecrets ({n})"], RAIDEN_LOCKS[f"registerSecretBatch ({n})"]
                    )
                    for n in (1, 2, 3)
                },
                **{
                    f"unlock ({n} lock{'s' if n > 1 else ''}) vs unlock": compare(
                        locks_gas[f"unlock ({n} lock{'s' if n > 1 else ''})"],
                        RAIDEN_LOCKS[f"unlock ({n} lock{'s' if n > 1 else ''})"],
                    )
                    for n in (1, 6)
                },
                **{
                    f"locks decided inside settleWithLocks ({n}), marginal over settle, vs unlock": compare(
                        inside[n], RAIDEN_LOCKS[f"unlock ({n} lock{'s' if n > 1 else ''})"]
                    )
                    for n in (1, 6)
                },
            },
            "note": "A's locks registered by B before settle; unlock follows settleHoldingLocks, "
            "pays ETH to both sides (Raiden's unlock: one ERC20 transfer)",
        },
    }


def main() -> int:
    json.dump(measure(), sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
