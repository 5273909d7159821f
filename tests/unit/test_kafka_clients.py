"""Every Kafka client Parsec makes takes the security and replication settings read once from its
configuration; a producer always writes with acks=all; no password is ever printed."""

import argparse
import logging

import pytest
from eventsourcing.utils import Environment

from infrastructure.kafka.admin import TopicSpec
from infrastructure.kafka.settings import KafkaSettings
from infrastructure.kafka_access import KafkaAccess, KafkaSecurity, KafkaSecurityError
from infrastructure.settings import Settings, SettingsError

SECRET = "s3cret-do-not-print"
SASL_ENV = {
    "PARSEC_KAFKA_BOOTSTRAP": "b1:9093,b2:9093",
    "PARSEC_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
    "PARSEC_KAFKA_SASL_MECHANISM": "SCRAM-SHA-256",
    "PARSEC_KAFKA_SASL_USERNAME": "node",
    "PARSEC_KAFKA_SASL_PASSWORD": SECRET,
    "PARSEC_KAFKA_REPLICATION_FACTOR": "3",
    "PARSEC_KAFKA_MIN_INSYNC_REPLICAS": "2",
}
KAFKA_PYTHON_SASL = {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "SCRAM-SHA-256",
                     "sasl_plain_username": "node", "sasl_plain_password": SECRET}
LIBRDKAFKA_SASL = {"security.protocol": "SASL_PLAINTEXT", "sasl.mechanisms": "SCRAM-SHA-256",
                   "sasl.username": "node", "sasl.password": SECRET}


@pytest.fixture
def config() -> Settings:
    return Settings.from_env(dict(SASL_ENV))


def _contains(conf: dict, part: dict) -> bool:
    return all(conf.get(k) == v for k, v in part.items())


def test_the_node_config_reads_security_and_replication_once(config):
    assert config.kafka_security.principal == "User:node"
    assert (config.kafka_replication_factor, config.kafka_min_insync_replicas) == (3, 2)
    k = config.kafka
    assert (k.bootstrap, k.security, k.replication_factor, k.min_insync_replicas) == ("b1:9093,b2:9093",
                                                                                       config.kafka_security, 3, 2)


def test_sender_producer_carries_security_and_acks_all(config):
    from infrastructure.node.send import producer_config

    conf = producer_config(config)
    assert _contains(conf, KAFKA_PYTHON_SASL)
    assert conf["bootstrap_servers"] == ["b1:9093", "b2:9093"] and conf["acks"] == "all"
    assert conf["client_id"] == "parsec-send"


def test_a_producer_cannot_be_built_without_acks_all():
    k = KafkaAccess()
    assert k.kafka_python_producer(acks=1)["acks"] == "all"
    assert k.librdkafka_producer(acks="1")["acks"] == "all"


def test_the_nodes_topics_are_created_with_its_security_and_replication(config):
    from infrastructure.node.topics import node_topic_specs, store_settings

    s = store_settings(config)
    assert s.security == config.kafka_security and _contains(s.client_kwargs(), KAFKA_PYTHON_SASL)
    assert (s.replication_factor, s.min_insync_replicas) == (3, 2)
    for spec in node_topic_specs(config):
        configs = s.topic_configs(spec.configs)
        assert configs["min.insync.replicas"] == "2"
        assert {k: configs[k] for k in spec.configs} == spec.configs  # the topic's own configs kept


def test_min_insync_replicas_unset_leaves_the_broker_default():
    s = KafkaSettings()
    assert s.min_insync_replicas is None and s.replication_factor == -1
    spec = TopicSpec("t", 1, {"cleanup.policy": "compact"})
    assert s.topic_configs(spec.configs) == {"cleanup.policy": "compact"}
    # a spec that names its own min.insync.replicas keeps it
    assert KafkaSettings(min_insync_replicas=2).topic_configs({"min.insync.replicas": "1"}) == {
        "min.insync.replicas": "1"}


def test_the_event_store_reads_only_its_own_kafka_environment():
    s = KafkaSettings.from_env(Environment("app", {"KAFKA_REPLICATION_FACTOR": "3", "KAFKA_MIN_INSYNC_REPLICAS": "2",
                                                    "PARSEC_KAFKA_REPLICATION_FACTOR": "5"}))
    assert (s.replication_factor, s.min_insync_replicas) == (3, 2)  # PARSEC_* is the process's, not the store's
    s = KafkaSettings.from_env(Environment("app", {"KAFKA_REPLICATION_FACTOR": "2", "KAFKA_MIN_INSYNC_REPLICAS": "0",
                                                    "PARSEC_KAFKA_MIN_INSYNC_REPLICAS": "2"}))
    assert (s.replication_factor, s.min_insync_replicas) == (2, None)  # an explicit 0 pins the broker default
    with pytest.raises(OSError, match="above the replication factor"):
        KafkaSettings.from_env(Environment("app", {"KAFKA_REPLICATION_FACTOR": "1", "KAFKA_MIN_INSYNC_REPLICAS": "2"}))


def test_replication_settings_that_cannot_work_are_refused():
    with pytest.raises(SettingsError, match="above the replication factor"):
        Settings.from_env({"PARSEC_KAFKA_REPLICATION_FACTOR": "2", "PARSEC_KAFKA_MIN_INSYNC_REPLICAS": "3"})
    with pytest.raises(KafkaSecurityError, match="replication factor must be"):
        KafkaAccess(replication_factor=0)
    with pytest.raises(SettingsError, match="PARSEC_KAFKA_MIN_INSYNC_REPLICAS must be an integer >= 0, got 'two'"):
        Settings.from_env({"PARSEC_KAFKA_MIN_INSYNC_REPLICAS": "two"})


def test_store_env_pins_the_configs_settings_over_an_inherited_environment(config):
    """An eventsourcing application merges os.environ under its env: the config's settings must win."""
    inherited = {"PARSEC_KAFKA_SECURITY_PROTOCOL": "SSL", "PARSEC_KAFKA_SASL_PASSWORD_FILE": "/nonexistent",
                 "KAFKA_SASL_USERNAME": "someone-else", "PARSEC_KAFKA_MIN_INSYNC_REPLICAS": "1"}
    env = config.store_env(None)
    merged = Environment("ChannelService", {**inherited, **env})
    s = KafkaSettings.from_env(merged)
    assert s.security == config.kafka_security and s.bootstrap_servers == config.kafka_bootstrap
    assert (s.replication_factor, s.min_insync_replicas) == (3, 2)
    # and a plaintext config is pinned plaintext, whatever the process inherited
    plain = Settings(kafka_bootstrap="127.0.0.1:9092")
    hostile = {**SASL_ENV, "PARSEC_KAFKA_SSL_CAFILE": "/nonexistent.pem"}
    s = KafkaSettings.from_env(Environment("ChannelService", {**hostile, **plain.store_env(None)}))
    assert s.security == KafkaSecurity() and s.replication_factor == -1 and s.min_insync_replicas is None


def test_settler_store_carries_the_settlers_principal(config):
    from infrastructure.settlement.settler import settler_store_env

    env = settler_store_env(config, "parsec.settlement.events")
    s = KafkaSettings.from_env(Environment("settler", env))
    assert s.security == config.kafka_security and s.events_topic == "parsec.settlement.events"
    assert (s.replication_factor, s.min_insync_replicas) == (3, 2)
    assert _contains(s.client_kwargs(), KAFKA_PYTHON_SASL)


def test_projection_sources_and_the_cli_event_store_carry_security():
    """``parsec projections run`` on Kafka opens ChannelService (and the settler's log) with
    ``Settings.application_env()``."""
    settings = Settings.from_env({**SASL_ENV, "PARSEC_EVENT_STORE": "kafka"})
    env = settings.application_env()
    assert env["PERSISTENCE_MODULE"] == "infrastructure.kafka"
    s = KafkaSettings.from_env(Environment("ChannelService", env))
    assert s.bootstrap_servers == "b1:9093,b2:9093" and s.security == settings.kafka_security
    assert (s.replication_factor, s.min_insync_replicas) == (3, 2)
    assert _contains(settings.kafka.librdkafka(), LIBRDKAFKA_SASL)


def test_simulator_collector_and_spawned_nodes(config):
    from infrastructure.tools import simulate

    conf = simulate.collector_config(config)
    assert _contains(conf, LIBRDKAFKA_SASL) and not conf["enable.auto.commit"]
    assert conf["isolation.level"] == "read_committed"
    env = simulate.node_process_env(config, {"PARSEC_KAFKA_SECURITY_PROTOCOL": "SSL", "HOME": "/h"})
    assert env["HOME"] == "/h" and env["PARSEC_LOG_LEVEL"] == "WARNING"
    assert Settings.from_env(env).kafka == config.kafka  # the spawned node authenticates as told


def test_simulate_kafka_config_takes_the_settings_kafka():
    from infrastructure.tools import simulate

    settings = Settings.from_env(dict(SASL_ENV))
    c = simulate.kafka_config(settings, prefix="sim.x", partitions=2)
    assert c.kafka == settings.kafka and c.events_topic == "sim.x.events"
    c = simulate.kafka_config(settings, partitions=2)
    assert c.kafka == settings.kafka
    assert simulate.kafka_config("h:1", prefix="p").kafka_security == KafkaSecurity()  # a bare address: plaintext


def test_bench_clients_of_both_libraries():
    from infrastructure.tools import bench

    conf = bench.raw_clients_config(Settings.from_env(dict(SASL_ENV)).kafka)
    for name in ("admin", "producer", "consumer"):
        assert _contains(conf[name], KAFKA_PYTHON_SASL), name
        assert conf[name]["bootstrap_servers"] == ["b1:9093", "b2:9093"]
    for name in ("ck_admin", "ck_producer", "ck_consumer"):
        assert _contains(conf[name], LIBRDKAFKA_SASL), name
        assert conf[name]["bootstrap.servers"] == "b1:9093,b2:9093"
    assert conf["producer"]["acks"] == "all" and conf["ck_producer"]["acks"] == "all"


def test_tls_files_reach_both_libraries(tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    k = Settings.from_env({"PARSEC_KAFKA_SECURITY_PROTOCOL": "SSL", "PARSEC_KAFKA_SSL_CAFILE": str(ca),
                           "PARSEC_KAFKA_SSL_CHECK_HOSTNAME": "false"}).kafka
    assert _contains(k.kafka_python(), {"security_protocol": "SSL", "ssl_cafile": str(ca), "ssl_check_hostname": False})
    assert _contains(k.librdkafka(), {"security.protocol": "SSL", "ssl.ca.location": str(ca),
                                      "ssl.endpoint.identification.algorithm": "none"})
    assert KafkaSecurity.from_env(k.security.pinned_env()) == k.security


def test_cli_flags_win_over_the_environment(tmp_path, monkeypatch):
    from infrastructure import cli

    secret = tmp_path / "password"
    secret.write_text("from-the-file\n")
    for k, v in SASL_ENV.items():
        monkeypatch.setenv(k, v)
    args = cli.build_parser().parse_args(["--kafka-security-protocol", "sasl_ssl", "--kafka-sasl-username", "gateway",
                                          "--kafka-sasl-password-file", str(secret), "send", "pay"])
    settings = cli.settings_from(args)
    sec = settings.kafka_security
    assert (sec.protocol, sec.sasl_mechanism, sec.username, sec.password) == ("SASL_SSL", "SCRAM-SHA-256", "gateway",
                                                                              "from-the-file")


def test_passwords_are_never_printed(config, caplog, monkeypatch):
    from infrastructure import cli

    for value in (config, config.kafka_security, config.kafka, Settings.from_env(dict(SASL_ENV)),
                  KafkaSettings(security=config.kafka_security)):
        assert SECRET not in repr(value) and SECRET not in str(value)
    with caplog.at_level(logging.INFO):
        logging.getLogger("parsec.test").info("config %s, %r", config, config.kafka)
    assert "node" in caplog.text and SECRET not in caplog.text
    for k, v in SASL_ENV.items():
        monkeypatch.setenv(k, v)
    parser = cli.build_parser()
    helps = [parser.format_help()] + [p.format_help() for a in parser._actions
                                      if isinstance(a, argparse._SubParsersAction) for p in a.choices.values()]
    assert all(SECRET not in h for h in helps)
    assert "--kafka-sasl-password-file" in helps[0] and "PARSEC_KAFKA_SECURITY_PROTOCOL" in helps[0]
