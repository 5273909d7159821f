"""``parsec settler``: the settlement process of a Kafka deployment (one per deployment)."""

from __future__ import annotations

import argparse
import logging
from typing import Any

from infrastructure import bootstrap
from infrastructure.cli.console import stop_on_signals
from infrastructure.cli.options import TOPIC_FIELDS, add_settings_flags
from infrastructure.settings import Settings

log = logging.getLogger("parsec.settlement")

SETTLER_EPILOG = """\
environment variables (flags win over them):
  PARSEC_OPERATOR_KEY         the operator wallet's private key (hex); or --operator-seed
  PARSEC_ETH_RPC              the Ethereum node (or --eth-rpc)
  PARSEC_CONTRACT             the ParsecChannels contract address (or --contract)
  PARSEC_SETTLEMENT_TOPIC     the settler's own one-partition store (default parsec.settlement.events)
  and the node's topic variables (PARSEC_EVENTS_TOPIC, PARSEC_CONTROL_TOPIC, ...)
  PARSEC_KAFKA_SECURITY_PROTOCOL, PARSEC_KAFKA_SASL_*, PARSEC_KAFKA_SSL_*: the settler's own principal,
  PARSEC_KAFKA_REPLICATION_FACTOR, PARSEC_KAFKA_MIN_INSYNC_REPLICAS: its store topic's replication
  (parsec --help; docs/operations.md, "Kafka security settings")
"""


def _operator(args: argparse.Namespace, settings: Settings) -> Any:
    from domain.crypto import PrivateKey
    from infrastructure.chain import wallet

    if args.operator_seed:
        key = PrivateKey.from_seed(args.operator_seed)
    elif settings.operator_key is not None:
        key = PrivateKey.from_hex(settings.operator_key.get_secret_value())
    else:
        raise ValueError("the operator wallet: set PARSEC_OPERATOR_KEY or pass --operator-seed")
    return wallet(key)


def cmd_settler(args: argparse.Namespace, settings: Settings) -> int:
    from infrastructure.chain import ChannelContract, connect

    if not settings.eth_rpc or not settings.contract:
        raise ValueError("the settler needs an Ethereum node (--eth-rpc / PARSEC_ETH_RPC) and the contract "
                         "address (--contract / PARSEC_CONTRACT)")
    settler = bootstrap.settler(settings, ChannelContract(connect(settings.eth_rpc), settings.contract),
                                _operator(args, settings), start_block=args.start_block, interval=args.interval)
    settler.run(stop_on_signals("pass"))
    return 3 if settler.fenced else 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "settler",
        help="settle on-chain for a Kafka deployment: checkpoints, closes, settles, disputes, watchtower",
        description=(
            "Follow the events topic (read-only, every partition), turn checkpoint, settlement and dispute "
            "requests into contract transactions sent with one operator wallet, watch the contract, and send "
            "what the chain did back to the owning nodes on the control topic. Run one per deployment: its "
            "intents live on a one-partition topic whose writer is fenced, so a newer settler stops an older one."
        ),
        epilog=SETTLER_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_settings_flags(p, *TOPIC_FIELDS, "eth_rpc", "contract", "settlement_topic")
    p.add_argument("--operator-seed", help="derive the operator key from a seed (tests, demos)")
    p.add_argument("--start-block", type=int, default=0, help="first block the watcher reads (default 0)")
    p.add_argument("--interval", type=float, default=1.0, help="seconds between passes (default 1)")
    p.set_defaults(func=cmd_settler)
