"""``/readyz``: is each service the API needs reachable? Each check runs with a short timeout.

A check is a function that returns a line saying what it reached, or raises. The checks run at
once, each on its own thread, and each counts as failed when it has not answered within the
timeout (its thread is left to finish on its own: a hung connect must not hang the probe).
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

Check = Callable[[float], str]


def run_checks(checks: Mapping[str, Check], timeout: float) -> dict[str, dict[str, Any]]:
    pool = ThreadPoolExecutor(max_workers=max(1, len(checks)), thread_name_prefix="parsec-readyz")
    started = time.perf_counter()
    futures = {name: pool.submit(check, timeout) for name, check in checks.items()}
    out: dict[str, dict[str, Any]] = {}
    for name, future in futures.items():
        left = max(0.0, timeout - (time.perf_counter() - started))
        try:
            detail, ok = future.result(timeout=left), True
        except FutureTimeout:
            detail, ok = f"no answer within {timeout:g} s", False
        except Exception as err:  # any failure is a failed check, said in its detail
            detail, ok = f"{type(err).__name__}: {err}", False
        out[name] = {"ok": ok, "detail": str(detail)[:500], "seconds": round(time.perf_counter() - started, 3)}
    pool.shutdown(wait=False, cancel_futures=True)
    return out


def kafka_check(librdkafka_config: dict[str, Any], topic: str) -> Check:
    """The broker answers a metadata request (and says whether the inbound topic exists)."""

    def check(timeout: float) -> str:
        from confluent_kafka.admin import AdminClient

        admin = AdminClient({**librdkafka_config, "socket.connection.setup.timeout.ms": max(1000, int(timeout * 1000))})
        md = admin.list_topics(timeout=timeout)
        have = "exists" if topic in md.topics else "not created yet"
        return f"{len(md.brokers)} broker(s); topic {topic} {have}"

    return check


def chain_check(url: str | None) -> Check:
    """The JSON-RPC endpoint answers ``eth_chainId``."""

    def check(timeout: float) -> str:
        if not url:
            return "in-process chain (PARSEC_ETH_RPC unset)"
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}).encode()
        req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # the operator's configured URL
            answer = json.loads(resp.read())
        if "result" not in answer:
            raise ConnectionError(f"eth_chainId answered {str(answer)[:200]}")
        return f"chain id {int(answer['result'], 16)}"

    return check


def database_check(open_store: Callable[[], Any]) -> Check:
    """The read-model database answers a query (a fresh connection, closed after)."""

    def check(timeout: float) -> str:
        store = open_store()
        try:
            positions = store.all_positions()
            return f"{store.describe()}: {len(positions)} read model(s) tracked"
        finally:
            store.close()

    return check
