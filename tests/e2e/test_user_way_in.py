"""A user's way in, end to end, through the public interfaces only.

Keystore files, the ``parsec`` command line and the REST API; anvil's JSON-RPC for what a user's own
Ethereum wallet would do (fund an address, let time pass). No seeds, no imports of Parsec's code:
every step runs ``parsec`` in a subprocess or speaks HTTP.

Deploy the contract, open a channel between two keystores, pay 200 times through the API and 200
times through ``parsec pay``, read balances and history through the API, ask for a settlement with a
signed request, see it settle on-chain, and find the payouts equal to the read model.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.kafka, pytest.mark.chain, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
PASSWORD = "a keystore password"
TOKEN = "e2e-" + uuid.uuid4().hex
PERIOD = 60  # seconds of challenge period: anvil's clock is moved past it
ETHER = 10**18
PRICE = "0.001"
PRICE_WEI = ETHER // 1000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rpc(url: str, method: str, *params: Any) -> Any:
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)}).encode()
    req = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        answer = json.load(resp)
    assert "error" not in answer, answer
    return answer["result"]


class User:
    """One person at a terminal: their environment, their keystores, their commands."""

    def __init__(self, tmp: Path, env: dict[str, str]) -> None:
        self.tmp, self.env = tmp, env

    def run(self, *args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess:
        proc = subprocess.run([sys.executable, "-m", "infrastructure.cli", *args], capture_output=True, text=True,
                              env=self.env, cwd=self.tmp, timeout=timeout)
        if check:
            assert proc.returncode == 0, f"parsec {' '.join(args)}: {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
        return proc

    def json(self, *args: str) -> Any:
        out = self.run(*args, "--json").stdout
        return json.loads(out)

    def start(self, name: str, *args: str) -> subprocess.Popen:
        log = open(self.tmp / f"{name}.log", "wb")
        return subprocess.Popen([sys.executable, "-m", "infrastructure.cli", *args], stdout=log,
                                stderr=subprocess.STDOUT, env=self.env, cwd=self.tmp)

    def log_of(self, name: str) -> str:
        return (self.tmp / f"{name}.log").read_text(errors="replace")[-4000:]


def http(method: str, url: str, body: bytes | None = None, token: str | None = None) -> tuple[int, Any]:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url, body, headers, method=method)
    try:
        with urllib.request.urlopen(req, timeout=15) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"null")


def wait_for(what: str, check: Any, timeout: float, *, procs: dict[str, subprocess.Popen], user: User) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        for name, p in procs.items():
            assert p.poll() is None, f"{name} exited with {p.returncode}:\n{user.log_of(name)}"
        try:
            last = check()
        except (urllib.error.URLError, ConnectionError, OSError) as err:
            last = err
        else:
            if last:
                return last
        time.sleep(0.5)
    logs = "\n".join(f"--- {n}\n{user.log_of(n)}" for n in procs)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})\n{logs}")


def test_a_user_deploys_opens_pays_and_settles_through_the_public_interfaces(tmp_path, kafka_bootstrap):
    anvil = os.environ.get("PARSEC_ANVIL_RPC", "http://127.0.0.1:8545")
    try:
        rpc(anvil, "eth_chainId")
    except OSError:
        pytest.fail(f"no anvil at {anvil} (scripts/anvil start)")
    prefix = f"e2e.{uuid.uuid4().hex[:10]}"
    api_port = free_port()
    api = f"http://127.0.0.1:{api_port}"
    (tmp_path / "password").write_text(PASSWORD + "\n")
    (tmp_path / "token").write_text(TOKEN + "\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARSEC_")}
    env.update({
        "PYTHONPATH": str(REPO),
        "PARSEC_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "PARSEC_EVENT_STORE": "kafka",
        "PARSEC_ETH_RPC": anvil,
        "PARSEC_DATA_DIR": str(tmp_path / "data"),
        "PARSEC_KEY_DIR": str(tmp_path / "keys"),
        "PARSEC_KEY_PASSWORD_FILE": str(tmp_path / "password"),
        "PARSEC_EVENTS_TOPIC": f"{prefix}.events",
        "PARSEC_INBOUND_TOPIC": f"{prefix}.inbound",
        "PARSEC_CONTROL_TOPIC": f"{prefix}.control",
        "PARSEC_REJECTED_TOPIC": f"{prefix}.rejected",
        "PARSEC_SETTLEMENT_TOPIC": f"{prefix}.settlement",
        "PARSEC_NODE_GROUP": f"{prefix}.nodes",
        "PARSEC_MIN_CHALLENGE_PERIOD": str(PERIOD),
        "PARSEC_LOG_LEVEL": "INFO",
    })
    user = User(tmp_path, env)

    # keys: one keystore file each (a low scrypt cost keeps the test fast; real ones use the default)
    keys = {name: user.json("key", "new", "--scrypt-n", "1024") for name in ("deployer", "alice", "bob", "operator")}
    for name in keys:
        keys[name]["public_key"] = user.json("key", "show", keys[name]["address"])["public_key"]
        rpc(anvil, "anvil_setBalance", keys[name]["address"], hex(100 * ETHER))  # the user's wallet funds it

    contract = user.json("contract", "deploy", "--key", keys["deployer"]["file"], "--test-token",
                         "--min-challenge-period", str(PERIOD))["contract"]
    env["PARSEC_CONTRACT"] = contract

    procs: dict[str, subprocess.Popen] = {}
    try:
        procs["node"] = user.start("node", "node", "--node-id", "e2e-node", "--settlers", keys["operator"]["address"],
                                   "--max-wait", "5")
        procs["settler"] = user.start("settler", "settler", "--key", keys["operator"]["file"], "--interval", "0.5",
                                      "--start-block", str(int(rpc(anvil, "eth_blockNumber"), 16)))
        api_env = dict(env, PARSEC_API_TOKENS=TOKEN)
        procs["api"] = subprocess.Popen(
            [sys.executable, "-m", "infrastructure.cli", "api", "--port", str(api_port), "--follow"],
            stdout=open(tmp_path / "api.log", "wb"), stderr=subprocess.STDOUT, env=api_env, cwd=tmp_path)
        wait_for("the API", lambda: http("GET", f"{api}/healthz")[0] == 200, 60, procs=procs, user=user)

        # the channel's life starts on-chain: open with a deposit (the node learns it), both operators
        opened = user.json("channel", "open", "--key", keys["alice"]["file"],
                           "--counterparty", keys["bob"]["public_key"], "--deposit", "1",
                           "--challenge-period", str(PERIOD), "--checkpoint-interval", "100")
        channel = opened["channel"]["channel"]
        assert opened["channel"]["deposit_a"] == str(ETHER) and opened["transactions"], opened
        for who in ("alice", "bob"):
            user.json("channel", "set-operator", "--key", keys[who]["file"], "--operator", keys["operator"]["address"],
                      "--channel", channel)
        wait_for("the channel in the API's read model", lambda: http("GET", f"{api}/v1/channels/{channel}")[0] == 200,
                 60, procs=procs, user=user)

        # 200 payments through the REST API, 200 through Kafka: the same wallet record, one hash chain
        wallet = ("--wallet-path", str(tmp_path / "alice-wallet.sqlite"))
        via_api = user.json("pay", "--key", keys["alice"]["file"], *wallet, "--channel", channel, "--amount", PRICE,
                            "--count", "200", "--to-api", api, "--token-file", str(tmp_path / "token"), "--wait", "60")
        assert via_api["count"] == 200 and via_api["states"] == {"accepted": 200}, via_api["states"]
        via_kafka = user.json("pay", "--key", keys["alice"]["file"], *wallet, "--channel", channel, "--amount", PRICE,
                              "--count", "200", "--wait", "60")
        assert via_kafka["count"] == 200 and via_kafka["states"] == {"accepted": 200}, via_kafka["states"]

        def channel_row() -> Any:
            status, row = http("GET", f"{api}/v1/channels/{channel}")
            return row if status == 200 and row["sequence"] == 400 else None

        row = wait_for("400 payments in the read model", channel_row, 60, procs=procs, user=user)
        paid = 400 * PRICE_WEI
        assert row["balances"] == [str(ETHER - paid), str(paid)]

        balances = http("GET", f"{api}/v1/participants/{keys['bob']['address']}/balances")[1]
        assert any(b["received"] == str(paid) for b in balances["items"]), balances

        history, url = [], f"{api}/v1/channels/{channel}/history?limit=150"
        while url:
            status, page = http("GET", url)
            assert status == 200, page
            history += page["items"]
            url = page["next"]
        assert [h["sequence"] for h in history] == list(range(1, 401))
        for before, after in zip(history, history[1:], strict=False):
            assert after["previous_hash"] == before["transaction_hash"]  # one chain, API and Kafka payments alike

        # a settlement asked for with a request the participant signs; the settler closes and settles
        request = user.run("send", "settle", "--key", keys["alice"]["file"], "--channel", channel, "--print").stdout
        status, queued = http("POST", f"{api}/v1/channels/{channel}/settlement", request.encode(), TOKEN)
        assert status == 202, queued

        def closed_on_chain() -> bool:
            return user.json("channel", "status", "--channel", channel, "--no-read-model")["on_chain"]["status"] != "open"

        wait_for("the settler's close on-chain", closed_on_chain, 60, procs=procs, user=user)
        rpc(anvil, "evm_increaseTime", PERIOD + 5)
        rpc(anvil, "evm_mine")

        def settled() -> Any:
            st = user.json("channel", "status", "--channel", channel, "--no-read-model")["on_chain"]
            return st if st["payout_a"] is not None else None

        on_chain = wait_for("the settle on-chain", settled, 90, procs=procs, user=user)
        row = wait_for("the settle in the read model",
                       lambda: (lambda r: r if r[1]["status"] == "closed" else None)(
                           http("GET", f"{api}/v1/channels/{channel}"))[1], 60, procs=procs, user=user)
        assert [on_chain["payout_a"], on_chain["payout_b"]] == row["balances"] == [str(ETHER - paid), str(paid)]
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs.values():
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
