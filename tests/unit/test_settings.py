"""The one settings object: sources in order, refusals that name the variable, docs in step."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from infrastructure.settings import Settings, SettingsError, variable

DOCS = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def test_flags_win_over_the_environment_which_wins_over_the_file(tmp_path):
    config = tmp_path / "parsec.toml"
    config.write_text('window = 8\nmax_wait = 7\nnode_group = "from-file"\n')
    s = Settings.load({"window": 16}, config_file=config, environ={"PARSEC_MAX_WAIT": "9"})
    assert (s.window, s.max_wait, s.node_group) == (16, 9, "from-file")
    s = Settings.load({}, environ={"PARSEC_CONFIG": str(config)})
    assert (s.window, s.max_wait) == (8, 7)


@pytest.mark.parametrize(("variable_name", "value", "message"), [
    ("PARSEC_WINDOW", "abc", "PARSEC_WINDOW must be a positive integer, got 'abc'"),
    ("PARSEC_WINDOW", "0", "PARSEC_WINDOW must be a positive integer, got '0'"),
    ("PARSEC_EVENT_STORE", "oracle", "PARSEC_EVENT_STORE must be one of sqlite, kafka, memory, got 'oracle'"),
    ("PARSEC_TICK_INTERVAL", "soon", "PARSEC_TICK_INTERVAL must be a positive number of seconds, got 'soon'"),
    ("PARSEC_KAFKA_SSL_CHECK_HOSTNAME", "maybe", "PARSEC_KAFKA_SSL_CHECK_HOSTNAME must be true or false"),
    ("PARSEC_SETTLERS", "0x12", "PARSEC_SETTLERS: '0x12' is not an Ethereum address"),
    ("PARSEC_KAFKA_SASL_PASSWORD", "", None),  # empty is unset
])
def test_a_bad_value_names_its_variable_and_what_it_accepts(variable_name, value, message):
    if message is None:
        assert Settings.from_env({variable_name: value}).kafka_sasl_password is None
        return
    with pytest.raises(SettingsError, match=re.escape(message)):
        Settings.from_env({variable_name: value})


def test_a_bad_password_is_never_echoed():
    with pytest.raises(SettingsError) as err:
        Settings.from_env({"PARSEC_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "PARSEC_KAFKA_SASL_USERNAME": "u"})
    assert "SASL username and password" in str(err.value)
    s = Settings.from_env({"PARSEC_OPERATOR_KEY": "0x" + "11" * 32})
    assert "11" * 32 not in repr(s) and "11" * 32 not in str(s.process_env().get("PARSEC_LOG_LEVEL"))


def test_topics_must_differ_and_a_named_node_is_a_static_member():
    with pytest.raises(SettingsError, match="four different topics"):
        Settings.from_env({"PARSEC_INBOUND_TOPIC": "t", "PARSEC_CONTROL_TOPIC": "t"})
    assert Settings.from_env({"PARSEC_NODE_ID": "eu-1"}).group_instance_id == "parsec-node-eu-1"
    assert Settings.from_env({}).group_instance_id == ""


def test_a_spawned_process_gets_the_same_settings():
    s = Settings.from_env({"PARSEC_WINDOW": "9", "PARSEC_EVENTS_TOPIC": "x.events", "PARSEC_SETTLERS": ""})
    again = Settings.from_env(s.process_env())
    assert again.model_dump(exclude={"node_id"}) == s.model_dump(exclude={"node_id"})


def test_every_setting_is_documented_once():
    text = DOCS.read_text()
    documented = re.findall(r"^\| `(PARSEC_[A-Z0-9_]+)` \|", text, flags=re.M)
    assert sorted(documented) == sorted(variable(name) for name in Settings.model_fields)
