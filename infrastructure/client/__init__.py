"""The payer's client (SDK): a wallet that keeps its own record of its channels and payments.

* :mod:`~infrastructure.client.record`: the SQLite record and its locks (one live signature per sequence);
* :mod:`~infrastructure.client.wallet`: :class:`Wallet` (track, pay, resend, reconcile) and :class:`ChannelTerms`;
* :mod:`~infrastructure.client.transport`: Kafka directly, or the REST API (``POST /v1/payments``);
* :mod:`~infrastructure.client.acks`: what the node decided (its events and rejected topics).

A wallet is built by the composition root (``infrastructure.bootstrap.wallet``) or by hand from these
parts; docs/client.md has a complete example.
"""

from infrastructure.client.acks import Acknowledgements, KafkaAcknowledgements
from infrastructure.client.record import ChannelState, PaymentRecord, PaymentState, WalletRecord
from infrastructure.client.transport import (
    Delivery,
    DeliveryUnknown,
    HttpTransport,
    KafkaTransport,
    PaymentRefused,
    Transport,
)
from infrastructure.client.wallet import ChannelTerms, Reconciled, UntrackedChannel, Wallet

__all__ = [
    "Acknowledgements",
    "ChannelState",
    "ChannelTerms",
    "Delivery",
    "DeliveryUnknown",
    "HttpTransport",
    "KafkaAcknowledgements",
    "KafkaTransport",
    "PaymentRecord",
    "PaymentRefused",
    "PaymentState",
    "Reconciled",
    "Transport",
    "UntrackedChannel",
    "Wallet",
    "WalletRecord",
]
