"""How Parsec reaches Kafka: where (bootstrap), as whom (security protocol, SASL, TLS) and how safely
its topics are replicated; spelled for both client libraries.

This module imports no Kafka client, so the settings (``infrastructure.settings``) import it cheaply.
``infrastructure.kafka.security`` re-exports it.

Every Kafka client Parsec creates (the node's consumer and writers, the event store, the settler,
the sender, the projection runner's source, the simulator, the bench) takes one ``KafkaSecurity``
and asks it for its library's spelling: ``librdkafka()`` for confluent-kafka, ``kafka_python()``
for kafka-python. Each process has its own principal (a node, a participants' gateway, the settler,
a reader); its settings are ``PARSEC_KAFKA_*`` values of ``infrastructure.settings.Settings``
(docs/configuration.md), and ``KAFKA_*`` ones inside an event store's environment.

A process reads these once (``infrastructure.settings.Settings``) and hands them on:
``KafkaAccess.kafka_python()`` / ``librdkafka()`` for the clients it makes, ``store_env()`` for an
event store it opens (a Parsec process it starts gets ``Settings.process_env()``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
_FIELDS = {
    "protocol": "SECURITY_PROTOCOL",
    "sasl_mechanism": "SASL_MECHANISM",
    "username": "SASL_USERNAME",
    "password": "SASL_PASSWORD",
    "password_file": "SASL_PASSWORD_FILE",
    "ssl_cafile": "SSL_CAFILE",
    "ssl_certfile": "SSL_CERTFILE",
    "ssl_keyfile": "SSL_KEYFILE",
    "ssl_check_hostname": "SSL_CHECK_HOSTNAME",
}


class KafkaSecurityError(ValueError):
    """Security settings that cannot work together (said before any connection is tried)."""


@dataclass(frozen=True)
class KafkaSecurity:
    protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    username: str | None = None
    password: str | None = None
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    ssl_check_hostname: bool = True

    def __post_init__(self) -> None:
        protocol = self.protocol.upper()
        object.__setattr__(self, "protocol", protocol)
        if protocol not in PROTOCOLS:
            raise KafkaSecurityError(f"Kafka security protocol {self.protocol!r} is unknown; use one of {PROTOCOLS}")
        if self.sasl:
            mechanism = (self.sasl_mechanism or "SCRAM-SHA-512").upper()
            object.__setattr__(self, "sasl_mechanism", mechanism)
            if mechanism not in MECHANISMS:
                raise KafkaSecurityError(f"SASL mechanism {mechanism!r} is unknown; use one of {MECHANISMS}")
            if not self.username or self.password is None:
                raise KafkaSecurityError(f"{protocol} needs a SASL username and password "
                                         "(PARSEC_KAFKA_SASL_USERNAME, PARSEC_KAFKA_SASL_PASSWORD[_FILE])")
        for name in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
            path = getattr(self, name)
            if path and not Path(path).is_file():
                raise KafkaSecurityError(f"{name} {path!r} is not a file")

    @property
    def sasl(self) -> bool:
        return self.protocol.startswith("SASL_")

    @property
    def tls(self) -> bool:
        return self.protocol in ("SSL", "SASL_SSL")

    @property
    def principal(self) -> str | None:
        """The ACL principal this client authenticates as (``User:<name>``), if any."""
        return f"User:{self.username}" if self.sasl else None

    # ------------------------------------------------------------------ reading
    @classmethod
    def from_env(cls, environ: Mapping[str, str] | Callable[[str], str | None]) -> KafkaSecurity:
        """From an event store's ``KAFKA_*`` environment (what ``store_env`` writes); ``environ`` is a mapping
        or a getter. A process's own ``PARSEC_KAFKA_*`` settings are read by ``infrastructure.settings``."""
        get = environ if callable(environ) else environ.get

        def value(suffix: str) -> str | None:
            v = get(f"KAFKA_{suffix}")
            return str(v).strip() if v is not None and str(v).strip() else None

        raw = {field: value(suffix) for field, suffix in _FIELDS.items()}
        password = raw.pop("password")
        password_file = raw.pop("password_file")
        if password is None and password_file:
            try:
                password = Path(password_file).read_text().strip()
            except OSError as exc:
                raise KafkaSecurityError(f"cannot read the SASL password file {password_file!r}: {exc}") from None
        check = raw.pop("ssl_check_hostname")
        return cls(
            protocol=raw["protocol"] or "PLAINTEXT",
            sasl_mechanism=raw["sasl_mechanism"],
            username=raw["username"],
            password=password,
            ssl_cafile=raw["ssl_cafile"],
            ssl_certfile=raw["ssl_certfile"],
            ssl_keyfile=raw["ssl_keyfile"],
            ssl_check_hostname=(check or "true").lower() not in ("0", "false", "no", "n", "off"),
        )

    def env(self) -> dict[str, str]:
        """The ``KAFKA_*`` environment that carries these settings into an eventsourcing application."""
        if self.protocol == "PLAINTEXT":
            return {}
        out = {"KAFKA_SECURITY_PROTOCOL": self.protocol}
        if self.sasl:
            out.update(KAFKA_SASL_MECHANISM=self.sasl_mechanism or "", KAFKA_SASL_USERNAME=self.username or "",
                       KAFKA_SASL_PASSWORD=self.password or "")
        for name, key in (("ssl_cafile", "KAFKA_SSL_CAFILE"), ("ssl_certfile", "KAFKA_SSL_CERTFILE"),
                          ("ssl_keyfile", "KAFKA_SSL_KEYFILE")):
            if getattr(self, name):
                out[key] = getattr(self, name)
        if self.tls and not self.ssl_check_hostname:
            out["KAFKA_SSL_CHECK_HOSTNAME"] = "false"
        return out

    def pinned_env(self) -> dict[str, str]:
        """Every ``KAFKA_*`` security variable, unset ones empty: laid over an inherited environment (an
        eventsourcing application merges ``os.environ`` under its own), it yields exactly these settings."""
        values = {
            "SECURITY_PROTOCOL": self.protocol,
            "SASL_MECHANISM": (self.sasl_mechanism or "") if self.sasl else "",
            "SASL_USERNAME": (self.username or "") if self.sasl else "",
            "SASL_PASSWORD": (self.password or "") if self.sasl else "",
            "SASL_PASSWORD_FILE": "",
            "SSL_CAFILE": self.ssl_cafile or "",
            "SSL_CERTFILE": self.ssl_certfile or "",
            "SSL_KEYFILE": self.ssl_keyfile or "",
            "SSL_CHECK_HOSTNAME": "true" if self.ssl_check_hostname else "false",
        }
        return {f"KAFKA_{suffix}": v for suffix, v in values.items()}

    # ------------------------------------------------------------------ each library's spelling
    def librdkafka(self) -> dict[str, Any]:
        """confluent-kafka (librdkafka) configuration properties."""
        conf: dict[str, Any] = {"security.protocol": self.protocol}
        if self.sasl:
            conf.update({"sasl.mechanisms": self.sasl_mechanism, "sasl.username": self.username,
                         "sasl.password": self.password})
        if self.tls:
            if self.ssl_cafile:
                conf["ssl.ca.location"] = self.ssl_cafile
            if self.ssl_certfile:
                conf["ssl.certificate.location"] = self.ssl_certfile
            if self.ssl_keyfile:
                conf["ssl.key.location"] = self.ssl_keyfile
            conf["ssl.endpoint.identification.algorithm"] = "https" if self.ssl_check_hostname else "none"
        return conf

    def kafka_python(self) -> dict[str, Any]:
        """kafka-python keyword arguments (KafkaConsumer, KafkaProducer, KafkaAdminClient)."""
        kw: dict[str, Any] = {"security_protocol": self.protocol}
        if self.sasl:
            kw.update(sasl_mechanism=self.sasl_mechanism, sasl_plain_username=self.username,
                      sasl_plain_password=self.password)
        if self.tls:
            kw.update(ssl_cafile=self.ssl_cafile, ssl_certfile=self.ssl_certfile, ssl_keyfile=self.ssl_keyfile,
                      ssl_check_hostname=self.ssl_check_hostname)
        return kw

    def __repr__(self) -> str:  # never print the password
        who = f", {self.sasl_mechanism} as {self.username!r}" if self.sasl else ""
        return f"KafkaSecurity({self.protocol}{who})"


PLAINTEXT = KafkaSecurity()

DEFAULT_BOOTSTRAP = "127.0.0.1:9092"


def check_replication(factor: int, insync: int | None) -> None:
    if factor == 0 or factor < -1:
        raise KafkaSecurityError(f"the replication factor must be -1 (the broker's default) or >= 1, got {factor}")
    if insync is not None and insync < 1:
        raise KafkaSecurityError(f"min.insync.replicas must be >= 1 (or unset: the broker's default), got {insync}")
    if insync is not None and factor != -1 and insync > factor:
        raise KafkaSecurityError(f"min.insync.replicas {insync} is above the replication factor {factor}: "
                                 "every acks=all write would be refused")


def topic_configs(configs: Mapping[str, str] | None, min_insync_replicas: int | None) -> dict[str, str]:
    """A topic's configs as Parsec creates it: its own, plus ``min.insync.replicas`` when one is set
    (a topic spec that names its own keeps it)."""
    out = dict(configs or {})
    if min_insync_replicas is not None:
        out.setdefault("min.insync.replicas", str(min_insync_replicas))
    return out


# The longest wait between two attempts to reach a broker. The clients' defaults (kafka-python 30 s,
# librdkafka 10 s) back off exponentially while a broker is away, so after a 20 s outage a gateway
# or a node's consumer went on waiting up to that long with the broker back (measured: the gateway
# drained 11-35 s after the broker returned). One attempt a second per broker costs nothing.
RECONNECT_BACKOFF_MAX_MS = 1000


@dataclass(frozen=True)
class KafkaAccess:
    """Where and as whom a process reaches Kafka, and how the topics it creates are replicated.

    The one place a Kafka client's connection settings are built from: every client Parsec makes
    takes ``kafka_python(...)`` or ``librdkafka(...)`` (producers: ``*_producer(...)``, always
    ``acks=all``). Its repr never shows the password."""

    bootstrap: str = DEFAULT_BOOTSTRAP
    security: KafkaSecurity = field(default=PLAINTEXT)
    replication_factor: int = -1  # -1: the broker's default.replication.factor
    min_insync_replicas: int | None = None  # None: the broker's min.insync.replicas

    def __post_init__(self) -> None:
        check_replication(self.replication_factor, self.min_insync_replicas)

    # ------------------------------------------------------------------ clients
    def kafka_python(self, **extra: Any) -> dict[str, Any]:
        """Keyword arguments of a kafka-python KafkaConsumer / KafkaAdminClient (``extra`` added)."""
        return {"bootstrap_servers": self.bootstrap.split(","), "reconnect_backoff_max_ms": RECONNECT_BACKOFF_MAX_MS,
                **self.security.kafka_python(), **extra}

    def kafka_python_producer(self, **extra: Any) -> dict[str, Any]:
        """A kafka-python KafkaProducer's: every write waits for all in-sync replicas."""
        return {**self.kafka_python(**extra), "acks": "all"}

    def librdkafka(self, **extra: Any) -> dict[str, Any]:
        """A confluent-kafka Consumer / AdminClient configuration (``extra`` added)."""
        return {"bootstrap.servers": self.bootstrap, "reconnect.backoff.max.ms": RECONNECT_BACKOFF_MAX_MS,
                **self.security.librdkafka(), **extra}

    def librdkafka_producer(self, **extra: Any) -> dict[str, Any]:
        """A confluent-kafka Producer's: every write waits for all in-sync replicas."""
        return {**self.librdkafka(**extra), "acks": "all"}

    def topic_configs(self, configs: Mapping[str, str] | None = None) -> dict[str, str]:
        return topic_configs(configs, self.min_insync_replicas)

    # ------------------------------------------------------------------ handing on
    def store_env(self) -> dict[str, str]:
        """The part of an eventsourcing application's environment (the Kafka event store) that says how
        to reach Kafka; overrides whatever the process inherited."""
        return {
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
            "KAFKA_REPLICATION_FACTOR": str(self.replication_factor),
            "KAFKA_MIN_INSYNC_REPLICAS": str(self.min_insync_replicas or 0),
            **self.security.pinned_env(),
        }
