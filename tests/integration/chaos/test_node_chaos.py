"""Node chaos in CI, bounded: 30 SIGKILLs and 4 evictions of node processes under load (issue 11).

Given two node processes in one group and signed payments streaming in (reordered, repeated, some
malformed), when nodes are SIGKILLed and restarted 30 times and evicted 4 times (SIGSTOP past the
session timeout, then SIGCONT), then every payment is applied exactly once, every malformed
message is refused exactly once, every partition drains, and the figures are printed.
``scripts/chaos`` runs the same harness for longer (100 kills).
"""

from __future__ import annotations

import pytest

from tests.integration.chaos.harness import ChaosPlan, ChaosRun, fresh_config

pytestmark = [pytest.mark.integration, pytest.mark.kafka, pytest.mark.slow]


def test_30_node_kills_and_4_evictions_under_load_lose_and_double_nothing(kafka_bootstrap, tmp_path):
    plan = ChaosPlan(nodes=2, channels=24, rate=150.0, kills=30, evictions=4, pause=2.0)
    config = fresh_config(kafka_bootstrap, session_timeout_ms=plan.session_timeout_ms)
    report = ChaosRun(config, plan, tmp_path).run()
    print("\nchaos:", report.summary())
    assert report.problems == []
    assert report.exactly_once and report.refusals_once
    assert (report.kills, report.evictions) == (30, 4)
