"""``parsec contract deploy``: put the ParsecChannels contract on an Ethereum node, signed with your key."""

from __future__ import annotations

import argparse
from typing import Any

from infrastructure.cli.channel import report, state_table
from infrastructure.cli.console import console
from infrastructure.cli.exits import UsageError
from infrastructure.cli.options import add_command, add_key_flags, add_settings_flags, key_from
from infrastructure.settings import Settings


def cmd_deploy(args: argparse.Namespace, settings: Settings) -> int:
    """Deploy the ParsecChannels contract (the deployer pays the gas, --key signs).

    BTC channels hold an ERC-20 token: --btc-token ADDRESS names it, or --test-token deploys the
    open-mint TestToken first (development chains only). --min-challenge-period is the shortest
    challenge period a channel may have (seconds, default 3600). Prints the contract's address: give
    it to the other commands as --contract or PARSEC_CONTRACT.
    """
    from eth_utils import to_checksum_address

    from infrastructure.chain import ChannelContract, TestToken, connect, wallet
    from infrastructure.chain.lifecycle import refusals

    if not settings.eth_rpc:
        raise UsageError("deploy to which node: --eth-rpc URL or PARSEC_ETH_RPC "
                         "(the in-process chain forgets the contract when the command ends)")
    if bool(args.btc_token) == bool(args.test_token):
        raise UsageError("name the BTC token: --btc-token ADDRESS, or --test-token to deploy a test one")
    if args.min_challenge_period < 1 or args.min_challenge_period >= 2**32:
        raise ValueError("--min-challenge-period is 1 to 2**32-1 seconds")
    w3 = connect(settings.eth_rpc)
    key = key_from(args, settings)
    deployer = wallet(key)
    done: list[tuple[str, Any]] = []
    with refusals():
        if args.test_token:
            token = TestToken.deploy(w3, deployer)
            done.append(("deploy TestToken", token.deployment))
            btc_token = token.address
        else:
            try:
                btc_token = to_checksum_address(args.btc_token)
            except ValueError:
                raise ValueError(f"--btc-token {args.btc_token!r} is not an address") from None
        contract = ChannelContract.deploy(w3, deployer, btc_token, min_challenge_period=args.min_challenge_period)
        done.append(("deploy ParsecChannels", contract.deployment))
    facts = {"contract": contract.address, "chain_id": w3.eth.chain_id, "btc_token": btc_token,
             "min_challenge_period": args.min_challenge_period, "deployer": deployer.address}
    if args.json:
        report(args, done, None, **facts)
        return 0
    report(args, done, None)
    console.print(state_table("ParsecChannels", [(k.replace("_", " "), str(v)) for k, v in facts.items()]))
    console.print(f"export PARSEC_CONTRACT={contract.address}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    group = sub.add_parser("contract", help="the ParsecChannels contract: deploy",
                           description="The channel contract on an Ethereum node (--eth-rpc).")
    commands = group.add_subparsers(dest="contract_command", metavar="COMMAND", required=True)
    p = add_command(commands, cmd_deploy)
    add_settings_flags(p, "eth_rpc")
    add_key_flags(p)
    p.add_argument("--btc-token", metavar="ADDRESS", help="the ERC-20 that BTC channels hold")
    p.add_argument("--test-token", action="store_true", help="deploy the open-mint TestToken as the BTC token")
    p.add_argument("--min-challenge-period", type=int, default=3600,
                   help="the shortest challenge period a channel may have, seconds (default 3600)")
    p.add_argument("--json", action="store_true", help="one JSON document")
