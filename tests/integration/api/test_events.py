"""GET /v1/events on a real server: the log's events as SSE, and Last-Event-ID resuming with no gap and no
repeat, across the events topic and the rejected topic."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest

from tests.builders import ALICE
from tests.integration.api.harness import Served
from tests.integration.api.harness import reject as _reject

pytestmark = [pytest.mark.integration, pytest.mark.kafka]


def _events(base: str, count: int, headers: dict[str, str] | None = None, query: str = "from=start",
            timeout: float = 30) -> tuple[str, list[dict[str, Any]]]:
    """The first message's id and the next ``count`` events of a stream (then the connection is closed)."""
    out: list[dict[str, Any]] = []
    first_id = None
    current: dict[str, Any] = {}
    deadline = time.monotonic() + timeout
    with httpx.stream("GET", f"{base}/v1/events?{query}", headers=headers or {}, timeout=timeout) as resp:
        assert resp.status_code == 200, resp.read()
        assert resp.headers["content-type"].startswith("text/event-stream")
        for line in resp.iter_lines():
            assert time.monotonic() < deadline, f"only {len(out)} of {count} events arrived"
            if line.startswith("id: "):
                current["id"] = line[4:]
            elif line.startswith("event: "):
                current["event"] = line[7:]
            elif line.startswith("data: "):
                current["data"] = json.loads(line[6:])
            elif line == "":
                if first_id is None and "id" in current:
                    first_id = current["id"]
                if "event" in current:
                    out.append(current)
                current = {}
                if len(out) == count:
                    break
    return first_id or "", out


def _where(ev: dict[str, Any]) -> tuple[str, int, int]:
    d = ev["data"]
    return d["log"], d["partition"], d["position"]


def test_the_stream_resumes_from_any_id_without_gap_or_repeat(dep):
    ledgers = [dep.open(), dep.open()]
    for ledger in ledgers:
        for _ in range(3):
            dep.pay(ledger, 5)
    _reject(dep, str(ledgers[0].channel_id), "WrongSigner")
    with Served(dep.app()) as base:
        # 2 opens, 6 payments (no checkpoint yet: m = 5), 1 rejection
        _, everything = _events(base, 9)
        kinds = [e["event"] for e in everything]
        assert kinds.count("channel.opened") == 2 and kinds.count("payment.accepted") == 6
        (rejected,) = [e for e in everything if e["event"] == "payment.rejected"]
        assert rejected["data"]["reason"] == "WrongSigner" and rejected["data"]["channel"] == str(ledgers[0].channel_id)
        paid = [e for e in everything if e["event"] == "payment.accepted"]
        assert all(isinstance(e["data"]["price"], str) for e in paid)
        assert len({_where(e) for e in everything}) == 9  # no repeat
        for i in (0, 3, 7):
            _, rest = _events(base, 8 - i, {"Last-Event-ID": everything[i]["id"]})
            assert sorted(map(_where, rest)) == sorted(map(_where, everything[i + 1:]))
        # new events after the last id: exactly them, as they arrive
        last = everything[-1]["id"]
        for _ in range(2):
            dep.pay(ledgers[1], 5)
        _reject(dep, str(ledgers[1].channel_id), "SequenceGap")
        _, new = _events(base, 4, {"Last-Event-ID": last})  # sequence 5 requests a checkpoint (m = 5)
        assert sorted(e["event"] for e in new) == ["checkpoint.requested", "payment.accepted", "payment.accepted",
                                                   "payment.rejected"]
        assert {e["data"]["sequence"] for e in new if e["event"] == "payment.accepted"} == {4, 5}


def test_a_live_stream_starts_at_the_heads_and_filters_by_channel_and_type(dep):
    ledger, other = dep.open(), dep.open()
    dep.pay(ledger, 5)
    with Served(dep.app()) as base:
        import threading

        got: dict[str, Any] = {}

        def listen() -> None:
            got["first"], got["events"] = _events(
                base, 2, query=f"channel={ledger.channel_id}&types=payment.accepted,checkpoint.requested")

        t = threading.Thread(target=listen)
        t.start()
        time.sleep(1.5)  # the stream is at the heads
        dep.pay(other, 5)  # filtered out
        for _ in range(4):  # sequences 2..5: the 5th requests a checkpoint (m = 5)
            dep.pay(ledger, 5)
        t.join(30)
        kinds = [(e["event"], e["data"].get("sequence")) for e in got["events"]]
        assert kinds == [("payment.accepted", 2), ("payment.accepted", 3)]
        assert got["first"].startswith("events:")  # the heads' cursor, before any event
        # from that first id, unfiltered: everything since, the other channel's payment included
        _, since = _events(base, 6, {"Last-Event-ID": got["first"]})
        assert sorted(e["data"]["channel"] for e in since if e["event"] == "payment.accepted") == sorted(
            [str(other.channel_id)] + [str(ledger.channel_id)] * 4)
        assert [e["event"] for e in since].count("checkpoint.requested") == 1


def test_a_bad_last_event_id_is_a_problem(dep):
    with Served(dep.app()) as base:
        resp = httpx.get(f"{base}/v1/events", headers={"Last-Event-ID": "ledger:0:1"})
        assert resp.status_code == 400 and resp.json()["reason"] == "InvalidEventId"
        resp = httpx.get(f"{base}/v1/events?types=payment.sent")
        assert resp.status_code == 422 and resp.json()["reason"] == "InvalidParameter"
    _ = ALICE
