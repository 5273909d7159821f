"""The node's group consumer configuration (pure: no broker)."""

from __future__ import annotations

from infrastructure.node.runner import consumer_config
from infrastructure.settings import Settings


def test_range_assignor_read_committed_no_auto_commit():
    config = consumer_config(Settings(kafka_bootstrap="127.0.0.1:1", node_group="g"))
    assert config["partition.assignment.strategy"] == "range"  # inbound p and control p to one member
    assert config["isolation.level"] == "read_committed"
    assert config["enable.auto.commit"] is False  # offsets are committed in the batches' transactions
    assert "group.instance.id" not in config  # a dynamic member unless the node has a stable id


def test_a_node_with_a_stable_id_is_a_static_member():
    c = Settings.from_env({"PARSEC_NODE_ID": "eu-1", "PARSEC_KAFKA_BOOTSTRAP": "127.0.0.1:1"})
    assert consumer_config(c)["group.instance.id"] == "parsec-node-eu-1"
    assert consumer_config(Settings.from_env({}, node_id="eu-2"))["group.instance.id"] == "parsec-node-eu-2"
    explicit = Settings.from_env({"PARSEC_GROUP_INSTANCE_ID": "rack-a"}, node_id="eu-3")
    assert consumer_config(explicit)["group.instance.id"] == "rack-a"
    assert "group.instance.id" not in consumer_config(Settings.from_env({}))


def test_the_consumer_takes_the_security_settings(tmp_path):
    secret = tmp_path / "pw"
    secret.write_text("s3cret\n")
    c = Settings.from_env({"PARSEC_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
                             "PARSEC_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
                             "PARSEC_KAFKA_SASL_USERNAME": "node",
                             "PARSEC_KAFKA_SASL_PASSWORD_FILE": str(secret)})
    config = consumer_config(c)
    assert config["security.protocol"] == "SASL_PLAINTEXT"
    assert config["sasl.mechanisms"] == "SCRAM-SHA-512"
    assert (config["sasl.username"], config["sasl.password"]) == ("node", "s3cret")
