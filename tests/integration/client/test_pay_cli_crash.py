"""``parsec pay`` killed between recording a payment and sending it (SIGKILL), then run again: the
node accepts each payment exactly once and the channel's chain does not fork.

The pause uses the wallet's test hook (PARSEC_WALLET_TEST_HOOK=pause-after-record, docs/client.md):
the process writes a line on stderr once the payment is in its record and then waits to be killed.
Keys are real keystore files; the node runs on the real broker.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from domain.crypto import PrivateKey
from infrastructure import bootstrap
from infrastructure.keys import create_keystore
from infrastructure.node.messages import OpenChannelRequest
from infrastructure.tools.workload import DEV_DOMAIN
from tests.integration.node import harness

pytestmark = [pytest.mark.integration, pytest.mark.kafka]

REPO = Path(__file__).resolve().parents[3]
A = PrivateKey.from_seed("wallet-crash/a")
B = PrivateKey.from_seed("wallet-crash/b")
MILLI = 10**15  # 0.001 ETH in wei


def _env(config, wallet: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARSEC_")}
    env.update(PYTHONPATH=str(REPO), COLUMNS="200", PARSEC_KAFKA_BOOTSTRAP=config.kafka_bootstrap,
               PARSEC_EVENTS_TOPIC=config.events_topic, PARSEC_INBOUND_TOPIC=config.inbound_topic,
               PARSEC_CONTROL_TOPIC=config.control_topic, PARSEC_REJECTED_TOPIC=config.rejected_topic,
               PARSEC_PARTITIONS=str(config.partitions), PARSEC_WALLET_PATH=str(wallet), **extra)
    return env


def _parsec(args: list[str], env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "infrastructure.cli", *args], cwd=REPO, env=env,
                          capture_output=True, timeout=timeout)


def _paused_pay(args: list[str], env: dict[str, str], timeout: float = 120) -> tuple[subprocess.Popen, dict]:
    """Start ``parsec pay`` with the pause hook; return the process and its hook line once recorded."""
    proc = subprocess.Popen([sys.executable, "-m", "infrastructure.cli", *args], cwd=REPO,
                            env={**env, "PARSEC_WALLET_TEST_HOOK": "pause-after-record"},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    found: list[dict] = []

    def read() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            if line.startswith(b'{"testHook"'):
                found.append(json.loads(line))
                return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(timeout)
    if not found:
        proc.kill()
        raise AssertionError(f"parsec pay never reached its test hook: {proc.stdout.read() if proc.stdout else ''}")
    return proc, found[0]


def test_sigkill_between_signing_and_sending_neither_forks_nor_double_pays(node_config, tmp_path):
    config = node_config(session_timeout_ms=30000)
    channel = uuid.uuid4()
    keystore = create_keystore("correct horse", tmp_path / "keys", key=A, scrypt_n=2**10)
    password = tmp_path / "password"
    password.write_text("correct horse\n")
    wallet = tmp_path / "wallet.sqlite"
    env = _env(config, wallet)
    pay = ["pay", "--key", str(keystore.path), "--password-file", str(password), "--channel", str(channel),
           "--json", "--wait", "30"]
    request = OpenChannelRequest(channel=channel, public_key_a="0x" + A.public_key.hex(),
                                 public_key_b="0x" + B.public_key.hex(), deposit_a=10**18, deposit_b=0,
                                 chain_id=DEV_DOMAIN.chain_id, contract=DEV_DOMAIN.verifying_contract).signed(A, DEV_DOMAIN)
    with harness.running_node(config):
        sender = bootstrap.sender(config)
        sender.sent(sender.control(request))
        service = harness.reader(config)
        harness.wait_for(lambda: _sequence(service, channel) == 0, 30, "the channel opened")

        # 1. killed after the record, before the send
        proc, hook = _paused_pay([*pay, "--amount", "0.001"], env)
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(30) == -signal.SIGKILL
        assert hook["sequence"] == 1
        time.sleep(2)
        assert _sequence(service, channel) == 0  # nothing reached the node

        # 2. run again: the recorded payment goes out as it was signed, then the new one after it
        done = _parsec([*pay, "--amount", "0.002"], env)
        assert done.returncode == 0, done.stderr.decode()
        out = json.loads(done.stdout)
        assert (out["sequence"], out["state"], out["price"]) == (2, "accepted", str(2 * MILLI))

        # 3. exit right after the record (exit-after-record), then `parsec wallet sync` re-sends it
        exited = _parsec([*pay, "--amount", "0.004"], {**env, "PARSEC_WALLET_TEST_HOOK": "exit-after-record"})
        assert exited.returncode == 75, exited.stderr.decode()
        synced = _parsec(["wallet", "sync", "--key", str(keystore.path), "--password-file", str(password),
                          "--json"], env)
        assert synced.returncode == 0, synced.stderr.decode()
        assert [p["sequence"] for p in json.loads(synced.stdout)["resent"]] == [3]
        harness.wait_for(lambda: _sequence(service, channel) == 3, 30, "the re-sent payment applied")
        # a second sync finds nothing to send and everything accepted
        again = _parsec(["wallet", "sync", "--key", str(keystore.path), "--password-file", str(password),
                         "--json"], env)
        assert json.loads(again.stdout)["resent"] == []

        events = [e for e in service.events.get(channel) if type(e).__name__ == "PaymentAccepted"]
        assert [e.sequence for e in events] == [1, 2, 3]  # each exactly once
        assert events[0].transaction_hash == hook["transactionHash"]  # the bytes signed before the kill
        for before, after in zip(events, events[1:], strict=False):
            assert after.transaction["hashPointerToPrevious"]["transactionHash"] == before.transaction_hash
        assert service.get_channel(channel).sent[0] == 7 * MILLI
        assert [r for r in harness.read_rejected(config) if r.key == str(channel).encode()] == []

        listed = _parsec(["wallet", "payments", "--channel", str(channel), "--json"], env)
        rows = json.loads(listed.stdout)
        assert sorted((r["sequence"], r["state"], r["price"]) for r in rows) == [
            (1, "accepted", str(MILLI)), (2, "accepted", str(2 * MILLI)), (3, "accepted", str(4 * MILLI))]
        channels = json.loads(_parsec(["wallet", "channels", "--json"], env).stdout)
        assert [(c["sequence"], c["myTotal"], c["role"]) for c in channels] == [(3, str(7 * MILLI), "A")]
        service.close()
        sender.close()


def _sequence(service, channel) -> int:
    try:
        return service.get_channel(channel).sequence
    except Exception:
        return -1
