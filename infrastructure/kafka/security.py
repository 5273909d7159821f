"""How a Kafka client proves who it is: the standard security settings, for both client libraries.

Every Kafka client Parsec creates (the node's consumer and writers, the event store, the settler,
the sender, the projection runner's source, the simulator, the bench) takes one ``KafkaSecurity``
and asks it for its library's spelling: ``librdkafka()`` for confluent-kafka, ``kafka_python()``
for kafka-python. Read from the environment (each process has its own principal: a node, a
participants' gateway, the settler, a reader):

=================================  ==============================================================
``PARSEC_KAFKA_SECURITY_PROTOCOL``  ``PLAINTEXT`` (default), ``SSL``, ``SASL_PLAINTEXT``, ``SASL_SSL``
``PARSEC_KAFKA_SASL_MECHANISM``     ``SCRAM-SHA-512`` (default with SASL), ``SCRAM-SHA-256``, ``PLAIN``
``PARSEC_KAFKA_SASL_USERNAME``      the principal's name (``User:<name>`` in ACLs)
``PARSEC_KAFKA_SASL_PASSWORD``      its password (or ``PARSEC_KAFKA_SASL_PASSWORD_FILE``: a file holding it)
``PARSEC_KAFKA_SSL_CAFILE``         PEM file of the CA that signed the brokers' certificates
``PARSEC_KAFKA_SSL_CERTFILE``       PEM client certificate (mutual TLS)
``PARSEC_KAFKA_SSL_KEYFILE``        PEM key of that certificate
``PARSEC_KAFKA_SSL_CHECK_HOSTNAME`` ``true`` (default): the broker's certificate must name its host
=================================  ==============================================================

The event store reads the same names without the ``PARSEC_`` prefix too (``KAFKA_SECURITY_PROTOCOL``,
...), so that an eventsourcing application's own environment can carry them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
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
        """From ``PARSEC_KAFKA_*`` (or ``KAFKA_*``) names; ``environ`` is a mapping or a getter."""
        get = environ if callable(environ) else environ.get

        def value(suffix: str) -> str | None:
            for name in (f"PARSEC_KAFKA_{suffix}", f"KAFKA_{suffix}"):
                v = get(name)
                if v is not None and str(v).strip():
                    return str(v).strip()
            return None

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
