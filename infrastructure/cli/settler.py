"""``parsec settler``: the settlement process of a Kafka deployment (one per deployment)."""

from __future__ import annotations

import argparse
import logging
from typing import Any

from infrastructure import bootstrap
from infrastructure.cli.console import stop_on_signals
from infrastructure.cli.options import TOPIC_FIELDS, add_command, add_settings_flags
from infrastructure.settings import Settings

log = logging.getLogger("parsec.settlement")

SETTLER_EPILOG = """\
PARSEC_OPERATOR_KEY holds the operator wallet's private key (hex), or pass --operator-seed (tests).
Every flag has a PARSEC_* variable and a config-file key (docs/configuration.md; `parsec config`);
the settler authenticates to Kafka as its own principal (docs/operations.md, "Kafka security settings").
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
    """Settle on-chain for a Kafka deployment: checkpoints, closes, settles, disputes, watchtower.

    Follow the events topic (read-only, every partition), turn checkpoint, settlement and dispute
    requests into contract transactions sent with one operator wallet, watch the contract, and send what
    the chain did back to the owning nodes on the control topic. Run one per deployment: its intents
    live on a one-partition topic whose writer is fenced, so a newer settler stops an older one.
    """
    from infrastructure.chain import ChannelContract, connect

    if not settings.eth_rpc or not settings.contract:
        raise ValueError("the settler needs an Ethereum node (--eth-rpc / PARSEC_ETH_RPC) and the contract "
                         "address (--contract / PARSEC_CONTRACT)")
    from infrastructure.metrics import serve_configured

    serve_configured(settings, "settler")
    settler = bootstrap.settler(settings, ChannelContract(connect(settings.eth_rpc), settings.contract),
                                _operator(args, settings), start_block=args.start_block, interval=args.interval)
    settler.run(stop_on_signals("pass"))
    return 3 if settler.fenced else 0


def register(sub: argparse._SubParsersAction) -> None:
    p = add_command(sub, cmd_settler, epilog=SETTLER_EPILOG)
    add_settings_flags(p, *TOPIC_FIELDS, "eth_rpc", "contract", "settlement_topic")
    add_settings_flags(p, "metrics_port", "metrics_host")
    p.add_argument("--operator-seed", help="derive the operator key from a seed (tests, demos)")
    p.add_argument("--start-block", type=int, default=0, help="first block the watcher reads (default 0)")
    p.add_argument("--interval", type=float, default=1.0, help="seconds between passes (default 1)")
