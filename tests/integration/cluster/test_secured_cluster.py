"""A node on a secured cluster (issue 11): SASL_PLAINTEXT with SCRAM-SHA-512, the StandardAuthorizer,
ACLs per principal (``scripts/kafka start --sasl``).

Given a private single-node cluster with the principals node, gateway, settler and reader, when a
node process authenticated as ``node`` runs and a gateway authenticated as ``gateway`` sends signed
opens and payments to the control and inbound topics, then the node applies every payment exactly
once (a full read of the events topic as ``reader``); and a principal without the ACL is refused:
``gateway`` (or ``settler``, or ``reader``) writing the events topic gets a topic-authorization
error, ``reader`` writing the inbound topic too, and a client with a wrong password is refused
authentication.

Every Parsec process is configured through the environment only (infrastructure/kafka/security.py):
PARSEC_KAFKA_BOOTSTRAP, PARSEC_KAFKA_SECURITY_PROTOCOL=SASL_PLAINTEXT,
PARSEC_KAFKA_SASL_MECHANISM=SCRAM-SHA-512, PARSEC_KAFKA_SASL_USERNAME, PARSEC_KAFKA_SASL_PASSWORD,
as scripts/kafka writes them to <data>/credentials/<principal>.env.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import KafkaError

from domain.application import ChannelService
from infrastructure.kafka.admin import ensure_topics
from infrastructure.node.topics import node_topic_specs, store_settings
from infrastructure.settings import Settings
from infrastructure.tools.workload import make_channels
from tests.integration.cluster.harness import (
    Cluster,
    Gateway,
    exactly_once,
    read_events,
    secured_node_process,
)
from tests.integration.node.harness import make_payments, replay, sequences, stop_process

pytestmark = [pytest.mark.integration, pytest.mark.kafka, pytest.mark.slow]

PORT = int(os.environ.get("PARSEC_TEST_SASL_KAFKA_PORT", "19492"))

# The ACLs of scripts/kafka name Parsec's default topics (prefix "parsec"): the node's defaults.
EVENTS, INBOUND, CONTROL, REJECTED, GROUP = ("parsec.parsec.events", "parsec.inbound", "parsec.control",
                                             "parsec.rejected", "parsec-node")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = Cluster(tmp_path_factory.mktemp("sasl") / "kafka", PORT, sasl=True)
    c.start()
    try:
        # The node's four topics, made by admin up front so that each test stands alone (the node
        # may create them too: it has the Create ACL; the gateway does not).
        admin = config_for(c).with_kafka_security(c.security("admin"))
        ensure_topics(store_settings(admin), node_topic_specs(admin))
        ChannelService(env=admin.store_env(None)).close()  # and the store's: events, tracking
        yield c
    finally:
        c.stop()


def config_for(c: Cluster, principal: str = "gateway") -> Settings:
    return Settings(kafka_bootstrap=c.bootstrap, events_topic=EVENTS, inbound_topic=INBOUND, control_topic=CONTROL,
                    rejected_topic=REJECTED, node_group=GROUP, partitions=4,
                    session_timeout_ms=6000).with_kafka_security(c.security(principal))


def test_the_credentials_are_the_security_env_interface(cluster: Cluster) -> None:
    for who in ("admin", "node", "gateway", "settler", "reader"):
        env = cluster.credentials(who)
        assert env["PARSEC_KAFKA_BOOTSTRAP"] == cluster.bootstrap
        assert env["PARSEC_KAFKA_SECURITY_PROTOCOL"] == "SASL_PLAINTEXT"
        assert env["PARSEC_KAFKA_SASL_MECHANISM"] == "SCRAM-SHA-512"
        assert env["PARSEC_KAFKA_SASL_USERNAME"] == who
        assert len(env["PARSEC_KAFKA_SASL_PASSWORD"]) >= 16
        assert cluster.security(who).principal == f"User:{who}"
    assert "export PARSEC_KAFKA_SASL_USERNAME=node" in cluster.run("credentials", "node")


@pytest.mark.parametrize("principal", ["gateway", "settler", "reader"])
def test_only_the_node_may_write_the_events_topic(cluster: Cluster, principal: str) -> None:
    producer = Gateway(config_for(cluster), cluster.security(principal))
    d = producer.send(EVENTS, b"forged", b"{}", partition=0)
    producer.flush(30)
    assert d.event.is_set(), "no delivery report"
    assert d.error is not None and d.error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, d.error


def test_the_reader_may_not_write_the_inbound_topic(cluster: Cluster) -> None:
    producer = Gateway(config_for(cluster), cluster.security("reader"))
    d = producer.send(INBOUND, b"forged", b"{}", partition=0)
    producer.flush(30)
    assert d.error is not None and d.error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, d.error


def test_a_wrong_password_is_refused_authentication(cluster: Cluster) -> None:
    producer = Gateway(config_for(cluster), cluster.security("gateway", password="not-the-password"),
                       **{"message.timeout.ms": 8000})
    d = producer.send(INBOUND, b"x", b"{}", partition=0)
    producer.flush(15)
    assert d.error is not None, "a client with a wrong password got a message delivered"
    codes = {e.code() for e in producer.errors}
    assert KafkaError._AUTHENTICATION in codes, [str(e) for e in producer.errors]


def test_a_node_applies_the_gateways_payments_exactly_once(cluster: Cluster, tmp_path: Path) -> None:
    config = config_for(cluster, "gateway")
    plans = make_channels("secured-cluster", 6)
    payments = make_payments(plans, 240, "secured-cluster")
    log_path = tmp_path / "node.log"
    node = secured_node_process(config, "secured-node", log_path, cluster.credentials("node"))
    gateway = Gateway(config, cluster.security("gateway"))
    reader = ChannelService(env=config.with_kafka_security(cluster.security("reader")).store_env(None))
    try:
        opens = [gateway.control(p.open_request()) for p in plans]
        assert gateway.flush() == 0
        assert [d.error for d in opens] == [None] * len(opens), "the gateway may write the control topic"
        sent = [gateway.payment(tx) for tx in payments]
        assert gateway.flush() == 0
        assert [d.error for d in sent] == [None] * len(sent), "the gateway may write the inbound topic"

        want = {p.channel_id: len(p.txs) for p in plans}
        deadline = time.monotonic() + 90
        while sequences(reader, plans) != want:
            if node.poll() is not None or time.monotonic() > deadline:
                tail = log_path.read_text(errors="replace")[-3000:]
                raise AssertionError(
                    f"the node (exit code {node.poll()}) did not apply the payments: applied "
                    f"{sorted(sequences(reader, plans).values())} of {sorted(want.values())}; its log ends:\n{tail}")
            time.sleep(0.5)
        assert node.poll() is None
    finally:
        stop_process(node)
        reader.close()
    records = read_events(cluster.bootstrap, EVENTS, config.partitions, security=cluster.security("reader"))
    assert exactly_once(records, plans) == []
    replayer = ChannelService(env=config.with_kafka_security(cluster.security("reader")).store_env(None))
    try:
        for p in plans:
            channel, _ = replay(replayer, p.channel_id)
            assert (channel.balance_of(p.a.address), channel.balance_of(p.b.address)) == p.expected_balances()
    finally:
        replayer.close()
