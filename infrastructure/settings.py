"""Every setting a Parsec process reads, in one object: flags over environment over a TOML file over defaults.

``Settings`` is the composition root's input (``infrastructure.bootstrap``). Each field is a
``PARSEC_<NAME>`` environment variable (``node_group`` is ``PARSEC_NODE_GROUP``, ...), a key of the
config file (``--config FILE`` or ``PARSEC_CONFIG``; keys are the field names, e.g. ``window = 64``)
and, for most, a flag. No other module reads ``os.environ`` for a ``PARSEC_*`` value: the adapters take
what they need from this object (the Kafka event store gets its ``KAFKA_*`` environment from
``application_env`` / ``store_env``). ``parsec config`` prints the values in force and where each came
from; docs/configuration.md lists them all (a unit test keeps the two in step).

A bad value is refused before anything starts, naming its variable and what it accepts:
``PARSEC_WINDOW=abc`` → ``PARSEC_WINDOW must be a positive integer, got 'abc'``.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Any, Literal

from annotated_types import Ge, Gt, Le
from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from domain.addresses import parse_eth_address
from infrastructure.kafka_access import KafkaAccess, KafkaSecurity, KafkaSecurityError, check_replication
from infrastructure.transcoder import TOPIC as TRANSCODER_TOPIC

ENV_PREFIX = "PARSEC_"
EVENT_STORES = ("sqlite", "kafka", "memory")
DEFAULT_KAFKA_BOOTSTRAP = "127.0.0.1:9092"
# the Kafka event store's topic for the application named "parsec" (``<app>.<name>.events``): what
# ``PARSEC_EVENT_STORE=kafka`` reads and a node writes, so read models follow a node by default
DEFAULT_EVENTS_TOPIC = "parsec.parsec.events"
DEFAULT_SETTLEMENT_TOPIC = "parsec.settlement.events"
DEFAULT_MIN_CHALLENGE_PERIOD = 3600
# the eventsourcing aggregate cache of a channel writer: the only writer of its channels may cache them
WRITER_CACHE_ENV = {
    "AGGREGATE_CACHE_MAXSIZE": "20000",
    "AGGREGATE_CACHE_FASTFORWARD": "n",
    "DEEPCOPY_FROM_AGGREGATE_CACHE": "n",
}

PositiveInt = Annotated[int, Gt(0)]
NonNegativeInt = Annotated[int, Ge(0)]
Seconds = Annotated[float, Ge(0)]
PositiveSeconds = Annotated[float, Gt(0)]
Port = Annotated[int, Ge(0), Le(65535)]

# the config file of this load (``Settings.load``); a context variable so that sources stay per call
_CONFIG_FILE: ContextVar[Path | None] = ContextVar("parsec_config_file", default=None)

# the environment of this load when it is not ``os.environ`` (``Settings.load(environ=...)``)
_ENVIRON: ContextVar[Mapping[str, str] | None] = ContextVar("parsec_environ", default=None)


class _MappingEnvSource(EnvSettingsSource):
    """The environment source over a given mapping instead of ``os.environ``."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        self._environ = environ
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return {k.lower(): v for k, v in self._environ.items() if not (self.env_ignore_empty and v == "")}


class SettingsError(ValueError):
    """A setting with a value it cannot take; the message names the variable and what it accepts."""


def _default_data_dir() -> Path:
    xdg = os.environ.get("XDG_DATA_HOME")  # the XDG base directory convention, not a Parsec setting
    return (Path(xdg) if xdg else Path.home() / ".local" / "share") / "parsec"


def _default_node_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, extra="forbid", validate_assignment=True, validate_default=True,
        populate_by_name=True, env_ignore_empty=True,
    )

    # -------------------------------------------------------------- where things live
    data_dir: Path = Field(default_factory=_default_data_dir,
                           description="where the embedded SQLite stores live (default ~/.local/share/parsec)")
    event_store: Literal["sqlite", "kafka", "memory"] = Field(
        "sqlite", description="the event store of `parsec balances`, `projections` and the demo's readers")
    postgres_dsn: str | None = Field(None, description="PostgreSQL for read models (unset: SQLite in the data dir)")
    eth_rpc: str | None = Field(None, description="Ethereum JSON-RPC URL (unset: the in-process py-evm chain)")
    contract: str | None = Field(None, description="the ParsecChannels contract address (the settler's)")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", description="DEBUG | INFO | WARNING | ERROR")
    log_format: Literal["text", "json"] = Field(
        "text", description="text (for a terminal) | json (one JSON object per line: time, level, logger, message, "
                            "extra fields; for daemons and log collectors)")
    projection_plugins: str = Field("", description="comma-separated modules with read models of your own "
                                                    "(docs/projections.md)")
    kind_plugins: str = Field("", description="comma-separated modules with transaction kinds of your own "
                                              "(TRANSACTION_KINDS; docs/protocol.md \"Kinds of transaction\"), "
                                              "e.g. domain.examples.metered")

    # -------------------------------------------------------------- Kafka: where, as whom, how replicated
    kafka_bootstrap: str = Field(DEFAULT_KAFKA_BOOTSTRAP, description="Kafka bootstrap servers")
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="PLAINTEXT | SSL | SASL_PLAINTEXT | SASL_SSL")
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = Field(
        None, description="SCRAM-SHA-512 (default with SASL) | SCRAM-SHA-256 | PLAIN")
    kafka_sasl_username: str | None = Field(None, description="the SASL principal's name (User:<name> in ACLs)")
    kafka_sasl_password: SecretStr | None = Field(None, description="its password (never printed)")
    kafka_sasl_password_file: Path | None = Field(None, description="a file holding the password (wins over "
                                                                    "PARSEC_KAFKA_SASL_PASSWORD)")
    kafka_ssl_cafile: Path | None = Field(None, description="PEM file of the CA that signed the brokers' certificates")
    kafka_ssl_certfile: Path | None = Field(None, description="PEM client certificate (mutual TLS)")
    kafka_ssl_keyfile: Path | None = Field(None, description="PEM key of that certificate")
    kafka_ssl_check_hostname: bool = Field(True, description="the broker's certificate must name its host")
    kafka_replication_factor: int = Field(-1, description="replicas of each topic Parsec creates (-1: the broker's "
                                                          "default.replication.factor)")
    kafka_min_insync_replicas: NonNegativeInt = Field(0, description="their min.insync.replicas (0: the broker's "
                                                                     "default); every write uses acks=all")
    kafka_timeout: PositiveSeconds = Field(12.0, description="seconds a Kafka request may take before it fails")

    # -------------------------------------------------------------- topics
    events_topic: str = Field(DEFAULT_EVENTS_TOPIC, description="the Channel events (the nodes write it)")
    inbound_topic: str = Field("parsec.inbound", description="signed payments")
    control_topic: str = Field("parsec.control", description="signed control requests and settler notices")
    rejected_topic: str = Field("parsec.rejected", description="refused messages with their reasons")
    settlement_topic: str = Field(DEFAULT_SETTLEMENT_TOPIC, description="the settler's own one-partition store")
    partitions: PositiveInt = Field(4, description="partitions of the topics a node creates")

    # -------------------------------------------------------------- a node
    node_group: str = Field("parsec-node", description="the nodes' consumer group")
    node_id: str = Field(default_factory=_default_node_id, description="this member's name in logs (default host-pid)")
    group_instance_id: str = Field(
        "", description="static membership (KIP-345): a node restarted under the same id takes its partitions "
                        "back without a rebalance (default parsec-node-<node id> when PARSEC_NODE_ID is given)")
    window: PositiveInt = Field(64, description="n: transactions held per channel to restore order")
    max_wait: NonNegativeInt = Field(30, description="seconds a held transaction waits for its predecessors")
    tick_interval: PositiveSeconds = Field(1.0, description="seconds between window-expiry passes per partition")
    timeout_check_interval: PositiveSeconds = Field(5.0, description="seconds between checkpoint-timeout passes")
    max_poll_records: PositiveInt = Field(2000, description="records per poll, i.e. per transaction at most")
    batch_linger_ms: NonNegativeInt = Field(
        0, description="milliseconds the node waits, once a record has arrived, for more to put in the same "
                       "transaction (0: a batch is what has arrived by then; more: fewer, bigger transactions and "
                       "that much more latency)")
    session_timeout_ms: PositiveInt = Field(10000, description="the consumer group's session timeout")
    rejoin_unowned_after: Seconds = Field(
        5.0, description="seconds partitions may have no owner while this node owns fewer than it could before it "
                         "rejoins the group (0: off)")
    stall_report_after: Seconds = Field(
        60.0, description="seconds the node's loop may go without coming back before every thread's stack is written "
                          "to stderr, once per stall (0: off)")
    settlers: str = Field("", description="comma-separated addresses of the settlers whose signed notices this node "
                                          "accepts (unset: every notice is refused)")
    min_challenge_period: NonNegativeInt = Field(
        DEFAULT_MIN_CHALLENGE_PERIOD, description="seconds: an open with a shorter challenge period is refused")

    # -------------------------------------------------------------- keys
    key_file: str | None = Field(
        None, description="the keystore file (or the address of one in the key directory) that signing commands "
                          "use when --key is not given")
    key_dir: Path = Field(default_factory=lambda: Path.home() / ".parsec" / "keys",
                          description="where `parsec key new` and `import` write keystore files and addresses are looked up")
    key_password_file: Path | None = Field(None, description="a file holding the keystore's password (one trailing "
                                                             "newline is ignored)")
    key_password: SecretStr | None = Field(None, description="the keystore's password (never printed; a file or the "
                                                             "prompt is safer)")

    # -------------------------------------------------------------- the wallet (a payer's client, docs/client.md)
    wallet_path: Path = Field(default_factory=lambda: Path.home() / ".parsec" / "wallet.sqlite",
                              description="the wallet's record of its channels and of every payment it signed "
                                          "(`parsec pay`, `parsec wallet`)")
    wallet_api_url: str | None = Field(None, description="the REST API `parsec pay` sends to (unset: Kafka "
                                                         "directly)")
    wallet_api_token_file: Path | None = Field(None, description="a file holding the API's bearer token (wins over "
                                                                 "PARSEC_WALLET_API_TOKEN)")
    wallet_api_token: SecretStr | None = Field(None, description="the API's bearer token (never printed; a file is "
                                                                 "safer)")
    wallet_test_hook: Literal["", "pause-after-record", "exit-after-record"] = Field(
        "", description="tests only: make `parsec pay` pause (until killed) or exit right after recording a "
                        "payment and before sending it")

    # -------------------------------------------------------------- multi-hop payments (`parsec mediate`, `parsec pay --to`)
    hops_topic: str = Field("parsec.hops", description="the signed hop messages of multi-hop payments (secret "
                                                       "requests, reveals, failed locks)")
    mediation_dir: Path = Field(default_factory=lambda: Path.home() / ".parsec" / "mediation",
                                description="where a party's mediation agent keeps its state (one file per address)")
    mediation_reveal_timeout: PositiveInt = Field(
        60, description="seconds before an incoming lock's expiry at which a party that knows the secret stops "
                        "waiting for its payer's unlock and registers the secret on-chain")
    mediation_expiry_delta: PositiveInt = Field(
        600, description="seconds a forwarded lock expires before the incoming one (must exceed the reveal timeout)")
    mediation_fee_base: NonNegativeInt = Field(0, description="the forwarding fee's base (smallest unit)")
    mediation_fee_ppm: NonNegativeInt = Field(1000, description="the forwarding fee's proportional part, per million")
    mediation_final_expiry: PositiveInt = Field(1200, description="seconds the payee's lock lasts")
    mediation_max_attempts: PositiveInt = Field(3, description="routes a payment tries before it fails")

    # -------------------------------------------------------------- the settler
    operator_key: SecretStr | None = Field(None, description="the operator wallet's private key as hex, for "
                                                             "development only (never printed; use --key)")

    # -------------------------------------------------------------- metrics
    metrics_port: Port = Field(0, description="the TCP port of this process's Prometheus /metrics (0: not served)")
    metrics_host: str = Field("127.0.0.1", description="the address /metrics listens on (loopback unless a "
                                                       "scraper elsewhere must reach it: 0.0.0.0 for every interface)")
    # -------------------------------------------------------------- the REST API (`parsec api`)
    api_host: str = Field("127.0.0.1", description="the address `parsec api` listens on")
    api_port: PositiveInt = Field(8080, description="the port `parsec api` listens on")
    api_tokens: SecretStr | None = Field(
        None, description="comma-separated bearer tokens that may call the write endpoints (never printed)")
    api_token_file: Path | None = Field(
        None, description="a file of bearer tokens, one a line (# comments); added to PARSEC_API_TOKENS")
    api_max_body_bytes: PositiveInt = Field(
        65536, description="the largest request body the API reads (bytes); a larger one is refused with 413")
    api_rate: Seconds = Field(
        20.0, description="requests per second each client (bearer token, else address) may make on /v1 "
                          "(0: no limit)")
    api_burst: PositiveInt = Field(40, description="requests a client may make at once before the rate applies")
    api_ready_timeout: PositiveSeconds = Field(
        2.0, description="seconds each /readyz check (broker, database, chain) may take before it counts as down")
    # -------------------------------------------------------------- the dashboard (served with the API)
    audit_report: Path | None = Field(
        None, description="the JSON report `parsec audit --report` writes: the dashboard's Audit page shows it "
                          "(unset: the page says how to make one)")
    node_metrics: str | None = Field(
        None, description="comma-separated /metrics URLs of the nodes: the dashboard samples them for its "
                          "latency chart (unset: no latency chart)")
    node_metrics_interval: PositiveSeconds = Field(
        5.0, description="seconds between the dashboard's samples of the nodes' /metrics")

    # ------------------------------------------------------------------ loading
    @classmethod
    def settings_customise_sources(
        cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        environ = _ENVIRON.get()
        if environ is not None:
            env_settings = _MappingEnvSource(settings_cls, environ)
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        path = _CONFIG_FILE.get()
        if path is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
        return tuple(sources)

    @classmethod
    def load(cls, flags: Mapping[str, Any] | None = None, *, config_file: str | Path | None = None,
             environ: Mapping[str, str] | None = None) -> Settings:
        """Flags (the non-None ones) over the environment over the config file over the defaults.

        ``config_file``: a TOML file (else ``PARSEC_CONFIG``); ``environ``: instead of ``os.environ``
        (tests). Raises ``SettingsError`` naming the variable of the first bad values."""
        env = os.environ if environ is None else environ
        path = config_file or env.get("PARSEC_CONFIG") or None
        if path is not None:
            path = Path(path).expanduser()
            if not path.is_file():
                raise SettingsError(f"the config file {str(path)!r} does not exist")
        given = {k: v for k, v in (flags or {}).items() if v is not None}
        file_token, env_token = _CONFIG_FILE.set(path), _ENVIRON.set(environ)
        try:
            return cls(**given)
        except ValidationError as exc:
            raise SettingsError(describe_errors(exc)) from None
        finally:
            _CONFIG_FILE.reset(file_token)
            _ENVIRON.reset(env_token)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **flags: Any) -> Settings:
        """``load`` with the flags as keywords: ``Settings.from_env({"PARSEC_WINDOW": "8"}, node_id="eu-1")``."""
        return cls.load(flags, environ=environ)

    # ------------------------------------------------------------------ checks across fields
    @field_validator("kafka_security_protocol", "kafka_sasl_mechanism", "log_level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("settlers")
    @classmethod
    def _settlers_are_addresses(cls, value: str) -> str:
        for item in value.split(","):
            if item.strip():
                parse_eth_address(item.strip())
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        topics = [self.events_topic, self.inbound_topic, self.control_topic, self.rejected_topic]
        if len(set(topics)) != len(topics):
            raise ValueError(f"the node's topics must be four different topics, got {topics}")
        if not self.group_instance_id and "node_id" in self.model_fields_set:
            # a node named by its operator is a static member under a stable name
            object.__setattr__(self, "group_instance_id", f"parsec-node-{self.node_id}")
        try:
            check_replication(self.kafka_replication_factor, self.kafka_min_insync_replicas or None)
            self.kafka_security  # noqa: B018 - the security settings must work together
        except KafkaSecurityError as exc:
            raise ValueError(str(exc)) from None
        return self

    # ------------------------------------------------------------------ derived values
    @property
    def kafka_security(self) -> KafkaSecurity:
        password = self.kafka_sasl_password.get_secret_value() if self.kafka_sasl_password else None
        if self.kafka_sasl_password_file is not None:
            try:
                password = self.kafka_sasl_password_file.read_text().strip()
            except OSError as exc:
                raise KafkaSecurityError(f"cannot read the SASL password file "
                                         f"{str(self.kafka_sasl_password_file)!r}: {exc}") from None
        return KafkaSecurity(
            protocol=self.kafka_security_protocol, sasl_mechanism=self.kafka_sasl_mechanism,
            username=self.kafka_sasl_username, password=password,
            ssl_cafile=str(self.kafka_ssl_cafile) if self.kafka_ssl_cafile else None,
            ssl_certfile=str(self.kafka_ssl_certfile) if self.kafka_ssl_certfile else None,
            ssl_keyfile=str(self.kafka_ssl_keyfile) if self.kafka_ssl_keyfile else None,
            ssl_check_hostname=self.kafka_ssl_check_hostname,
        )

    def with_kafka_security(self, security: KafkaSecurity) -> Settings:
        """These settings for another principal (a process that authenticates otherwise)."""
        return self.model_copy(update={
            "kafka_security_protocol": security.protocol, "kafka_sasl_mechanism": security.sasl_mechanism,
            "kafka_sasl_username": security.username,
            "kafka_sasl_password": SecretStr(security.password) if security.password is not None else None,
            "kafka_sasl_password_file": None,
            "kafka_ssl_cafile": Path(security.ssl_cafile) if security.ssl_cafile else None,
            "kafka_ssl_certfile": Path(security.ssl_certfile) if security.ssl_certfile else None,
            "kafka_ssl_keyfile": Path(security.ssl_keyfile) if security.ssl_keyfile else None,
            "kafka_ssl_check_hostname": security.ssl_check_hostname,
        })

    @property
    def kafka(self) -> KafkaAccess:
        """Where and as whom this process's Kafka clients connect; how the topics it creates are replicated."""
        return KafkaAccess(bootstrap=self.kafka_bootstrap, security=self.kafka_security,
                           replication_factor=self.kafka_replication_factor,
                           min_insync_replicas=self.kafka_min_insync_replicas or None)

    @property
    def trusted_settlers(self) -> frozenset[str]:
        """The settlers' addresses (EIP-55); a notice signed by anyone else is refused."""
        return frozenset(parse_eth_address(a.strip()) for a in self.settlers.split(",") if a.strip())

    @property
    def plugin_modules(self) -> list[str]:
        return [m.strip() for m in self.projection_plugins.split(",") if m.strip()]

    @property
    def kind_plugin_modules(self) -> list[str]:
        return [m.strip() for m in self.kind_plugins.split(",") if m.strip()]

    def application_env(self, *, sqlite_path: Path | None = None) -> dict[str, str]:
        """The eventsourcing environment of a ChannelService on the chosen event store.

        The aggregate cache is not fast-forwarded: Parsec runs one writer per channel (per Kafka
        partition), and the service evicts a cached channel whose save failed."""
        env = {**WRITER_CACHE_ENV, "TRANSCODER_TOPIC": TRANSCODER_TOPIC}
        if self.event_store == "sqlite":
            path = sqlite_path or self.data_dir / "events.sqlite"
            path.parent.mkdir(parents=True, exist_ok=True)
            env.update(PERSISTENCE_MODULE="eventsourcing.sqlite", SQLITE_DBNAME=str(path), SQLITE_LOCK_TIMEOUT="10")
        elif self.event_store == "kafka":
            env.update(PERSISTENCE_MODULE="infrastructure.kafka", **self.kafka.store_env(),
                       KAFKA_EVENTS_TOPIC=self.events_topic, KAFKA_PARTITIONS=str(self.partitions),
                       KAFKA_TIMEOUT=str(self.kafka_timeout))
        else:
            env.update(PERSISTENCE_MODULE="eventsourcing.popo")
        return env

    def store_env(self, partition: int | None) -> dict[str, str]:
        """The Kafka event store environment of the writer of ``partition`` (None: a reader of all)."""
        env = {
            "PERSISTENCE_MODULE": "infrastructure.kafka",
            **self.kafka.store_env(),  # bootstrap, security, replication
            "KAFKA_EVENTS_TOPIC": self.events_topic,
            "KAFKA_PARTITIONS": str(self.partitions),
            "KAFKA_TIMEOUT": str(self.kafka_timeout),
            "TRANSCODER_TOPIC": TRANSCODER_TOPIC,
        }
        if partition is not None:
            env.update(WRITER_CACHE_ENV)
            env["KAFKA_OWNED_PARTITIONS"] = str(partition)
            env["KAFKA_READ_OWNED_ONLY"] = "y"
            # the process recorder: it also answers max_tracking_id (the positions)
            env["APPLICATION_RECORDER_TOPIC"] = "infrastructure.kafka.recorders:KafkaProcessRecorder"
        return env

    def process_env(self) -> dict[str, str]:
        """The environment that tells a Parsec process started from this one the same settings
        (every field given, so an inherited variable cannot change it)."""
        out: dict[str, str] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if name == "node_id" or value is None:
                continue
            if isinstance(value, SecretStr):
                value = value.get_secret_value()
            out[variable(name)] = ("true" if value else "false") if isinstance(value, bool) else str(value)
        return out

    def sources(self) -> dict[str, str]:
        """Per field: what set it (flag or file, environment, default) — for ``parsec config``."""
        return {name: ("environment" if variable(name) in os.environ else
                       "flag or file" if name in self.model_fields_set else "default")
                for name in type(self).model_fields}


# ---------------------------------------------------------------------- errors and documentation
def variable(field: str) -> str:
    """The environment variable of a field."""
    return ENV_PREFIX + field.upper()


def accepts(field: str) -> str:
    """What a field accepts, in words (for errors and the docs)."""
    info = Settings.model_fields[field]
    annotation = info.annotation
    args = getattr(annotation, "__args__", ())
    literal = annotation if getattr(annotation, "__origin__", None) is Literal else next(
        (a for a in args if getattr(a, "__origin__", None) is Literal), None)
    if literal is not None:
        return "one of " + ", ".join(str(c) for c in literal.__args__)
    base = next((a for a in (args or (annotation,)) if a is not type(None)), annotation)
    bounds = {type(m).__name__: m for m in info.metadata}
    if base is int:
        if "Ge" in bounds and "Le" in bounds:
            return f"an integer from {bounds['Ge'].ge} to {bounds['Le'].le}"
        if "Gt" in bounds and bounds["Gt"].gt == 0:
            return "a positive integer"
        return "an integer >= 0" if "Ge" in bounds else "an integer"
    if base is float:
        return "a positive number of seconds" if "Gt" in bounds else "a number of seconds >= 0"
    if base is bool:
        return "true or false"
    if base is Path:
        return "a path"
    return "a string"


def describe_errors(exc: ValidationError) -> str:
    lines = []
    for error in exc.errors():
        field = str(error["loc"][0]) if error["loc"] else ""
        given = error.get("input")
        if field in Settings.model_fields and error["type"] == "value_error":
            reason = str(error["msg"]).removeprefix("Value error, ")
            lines.append(f"{variable(field)}: {reason}")
        elif field in Settings.model_fields:
            shown = "(hidden)" if "password" in field or field in ("operator_key", "api_tokens") else repr(given)
            lines.append(f"{variable(field)} must be {accepts(field)}, got {shown}")
        elif error["type"] == "extra_forbidden":
            lines.append(f"unknown setting {field!r} (see `parsec config` for the known ones)")
        else:
            lines.append(str(error["msg"]).removeprefix("Value error, "))
    return "; ".join(lines)
