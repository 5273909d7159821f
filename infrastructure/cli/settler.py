"""``parsec settler``: the settlement process of a Kafka deployment (one per deployment)."""

from __future__ import annotations

import argparse
import logging
from typing import Any

from infrastructure import bootstrap
from infrastructure.cli.console import stop_on_signals
from infrastructure.cli.exits import UsageError
from infrastructure.cli.options import TOPIC_FIELDS, add_command, add_key_flags, add_settings_flags
from infrastructure.settings import Settings

log = logging.getLogger("parsec.settlement")

SETTLER_EPILOG = """\
The operator wallet's key: --key FILE|ADDRESS (a keystore; password from --password-file,
PARSEC_KEY_PASSWORD_FILE, PARSEC_KEY_PASSWORD or a prompt), else PARSEC_OPERATOR_KEY (hex), else
PARSEC_KEY_FILE; --operator-seed derives one (tests).
Every flag has a PARSEC_* variable and a config-file key (docs/configuration.md; `parsec config`);
the settler authenticates to Kafka as its own principal (docs/operations.md, "Kafka security settings").
"""


def operator_key(args: argparse.Namespace, settings: Settings) -> Any:
    """The operator's key, loaded once at start: --operator-seed (tests), --key (a keystore),
    PARSEC_OPERATOR_KEY (hex), then the configured keystore PARSEC_KEY_FILE."""
    from domain.crypto import PrivateKey
    from infrastructure.keys import signing_key

    if args.operator_seed:
        return PrivateKey.from_seed(args.operator_seed)
    if args.key:
        return signing_key(settings, args.key, password_file=args.password_file)
    if settings.operator_key is not None:
        return PrivateKey.from_hex(settings.operator_key.get_secret_value())
    if settings.key_file:
        return signing_key(settings, password_file=args.password_file)
    raise ValueError("the operator wallet: --key FILE (a keystore; or PARSEC_KEY_FILE), PARSEC_OPERATOR_KEY (hex), "
                     "or --operator-seed (tests)")


def cmd_settler(args: argparse.Namespace, settings: Settings) -> int:
    """Settle on-chain for a Kafka deployment: checkpoints, closes, settles, disputes, watchtower.

    Follow the events topic (read-only, every partition), turn checkpoint, settlement and dispute
    requests into contract transactions sent with one operator wallet, watch the contract, and send what
    the chain did back to the owning nodes on the control topic. Run one per deployment: its intents
    live on a one-partition topic whose writer is fenced, so a newer settler stops an older one.
    """
    from infrastructure.chain import ChannelContract, connect, wallet

    if not settings.eth_rpc or not settings.contract:
        raise UsageError("the settler needs an Ethereum node (--eth-rpc / PARSEC_ETH_RPC) and the contract "
                         "address (--contract / PARSEC_CONTRACT)")
    # unlocked before anything connects: a wrong password stops the settler at once, and the
    # keystore is read (and its password asked for) once, not per transaction
    operator = wallet(operator_key(args, settings))
    log.info("operator wallet %s", operator.address)
    from infrastructure.metrics import serve_configured

    serve_configured(settings, "settler")
    settler = bootstrap.settler(settings, ChannelContract(connect(settings.eth_rpc), settings.contract),
                                operator, start_block=args.start_block, interval=args.interval)
    settler.run(stop_on_signals("pass"))
    return 3 if settler.fenced else 0


def register(sub: argparse._SubParsersAction) -> None:
    p = add_command(sub, cmd_settler, epilog=SETTLER_EPILOG)
    add_settings_flags(p, *TOPIC_FIELDS, "eth_rpc", "contract", "settlement_topic")
    add_key_flags(p, default="PARSEC_OPERATOR_KEY (hex, development), then PARSEC_KEY_FILE")
    add_settings_flags(p, "metrics_port", "metrics_host")
    p.add_argument("--operator-seed", help="derive the operator key from a seed (tests, demos)")
    p.add_argument("--start-block", type=int, default=0, help="first block the watcher reads (default 0)")
    p.add_argument("--interval", type=float, default=1.0, help="seconds between passes (default 1)")
