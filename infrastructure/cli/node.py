"""``parsec node`` and ``parsec send``: run a node, produce to one."""

from __future__ import annotations

import argparse
import faulthandler
import json
import logging
import signal
import sys
import uuid
from typing import Any

from infrastructure import bootstrap
from infrastructure.cli.console import stop_on_signals
from infrastructure.cli.options import (
    TOPIC_FIELDS,
    add_command,
    add_key_flags,
    add_settings_flags,
    channel_id,
    key_from,
)
from infrastructure.settings import Settings

log = logging.getLogger("parsec.node")

DEMO_CHAIN_ID = 131277322940537
DEMO_CONTRACT = "0xF2E246BB76DF876Cef8b38ae84130F4F55De395b"

NODE_EPILOG = """\
Every flag has a PARSEC_* variable and a config-file key (docs/configuration.md; `parsec config`).

Control requests must be signed (EIP-712, docs/protocol.md): open by participant A; deposit and
set-operator by the participant; checkpoint, settle and dispute by a participant or the operator it
registered (set-operator). Expired, replayed (nonce not above the signer's last) or unsigned ones are
refused to the rejected topic with their reason.
"""


def _quiet_kafka() -> None:
    """kafka-python logs every connection at INFO: keep the node's own story readable."""
    if logging.getLogger("parsec").getEffectiveLevel() > logging.DEBUG:
        logging.getLogger("kafka").setLevel(logging.WARNING)


# --- node --------------------------------------------------------------------------
def cmd_node(args: argparse.Namespace, settings: Settings) -> int:

    """Run a Parsec node: own partitions, verify, order and apply payments exactly once.

    Join the consumer group on the inbound and control topics (Range assignor: inbound p and control p
    go to the same node). For each owned partition: verify each payment, restore each channel's order
    with a reorder window of n, apply it to its channel, checkpoint every m-th sequence and on the
    checkpoint timeout, honour control requests; commit the events, the rejected messages and the
    positions in one Kafka transaction. SIGTERM or Ctrl-C stops it cleanly; a node started in the same
    group takes half the partitions.
    """
    _quiet_kafka()
    from infrastructure.metrics import serve_configured

    serve_configured(settings, "node")  # --metrics-port: before the node starts, so a scrape sees it join
    node = bootstrap.node(settings)

    # `kill -USR1 <pid>` prints every thread's stack to stderr: what a stuck node is waiting for
    faulthandler.register(signal.SIGUSR1, all_threads=True)

    node.run(stop_on_signals("batch"))
    return 0


# --- send --------------------------------------------------------------------------
def _print_sent(what: str, future: Any, extra: dict[str, Any] | None = None) -> None:
    m = future.get(timeout=15)
    out = {"sent": what, "topic": m.topic, "partition": m.partition, "offset": m.offset, **(extra or {})}
    print(json.dumps(out))


def _party(seed: str, who: str) -> Any:
    from infrastructure.tools.workload import make_parties

    a, b = make_parties(seed, 2)
    if who.lower() in ("a", "0"):
        return a
    if who.lower() in ("b", "1"):
        return b
    raise ValueError(f"--from / --as is A or B (the seeded parties), got {who!r}")


def cmd_send(args: argparse.Namespace, settings: Settings) -> int:
    """Produce a signed payment or a control request to the cluster.

    pay: a signed payment from a JSON file (or - for stdin), or signed here with your keystore's key
    (--key) as the next transaction of the channel's head in the event store. open, deposit,
    set-operator, checkpoint, settle, dispute: a control request, signed (EIP-712) with --key (open:
    participant A's, with --counterparty B's public key; deposit and set-operator: the participant's;
    checkpoint, settle and dispute: a participant's or the operator's it registered with set-operator).
    Simulations and tests sign with seeded parties instead: --seed with --from/--as A or B, and
    --operator-seed. Nonce: milliseconds since the epoch; expiry: now + --valid-for. Prints topic,
    partition, offset, signer and nonce.
    """
    from domain.addresses import eth_address_from_public_key
    from domain.money import Currency, parse_amount
    from domain.protocol import SignedInvoice
    from infrastructure.node import messages as m
    from infrastructure.node.send import next_payment
    from infrastructure.tools.workload import make_parties

    _quiet_kafka()
    config = settings
    # a keystore signs: --key, or the configured default (PARSEC_KEY_FILE) unless a seed is given
    # (a payment from a file is signed already)
    keyed = bool(args.key or (settings.key_file and not args.seed and not args.operator_seed)) and not (
        args.kind == "pay" and args.file)
    own_key = key_from(args, settings) if keyed else None  # unlocked first: a wrong password costs no connection
    # --print: sign here, write the signed message to stdout for another channel (the REST API,
    # a file a counterparty keeps); nothing is produced, so no broker is needed
    sender = _Printer() if args.print_signed else bootstrap.sender(settings)
    try:
        kind = args.kind
        if kind == "pay":
            if args.file:
                if args.print_signed:
                    raise ValueError("send pay --file sends a payment signed already: --print is for one signed here")
                raw = sys.stdin.buffer.read() if args.file == "-" else open(args.file, "rb").read()
                tx = SignedInvoice.from_json(raw)  # refuse locally what the node would refuse
                _print_sent("payment", sender.payment(raw, tx.channel),
                            {"channel": str(tx.channel), "sequence": tx.sequence})
                return 0
            if not ((keyed or args.seed) and args.channel and args.amount):
                raise ValueError("send pay needs --file, or --key (or --seed and --from), --channel and --amount")
            payer = own_key if keyed else _party(args.seed, args.sender).key
            reader = bootstrap.channel_reader(settings)
            try:
                tx = next_payment(reader, uuid.UUID(args.channel), payer, args.amount)
            finally:
                reader.close()
            if args.print_signed:
                sys.stdout.buffer.write(tx.to_json() + b"\n")
                return 0
            _print_sent("payment", sender.payment(tx),
                        {"channel": str(tx.channel), "sequence": tx.sequence, "price": str(tx.price)})
            return 0
        channel = uuid.UUID(args.channel) if args.channel else None
        if kind == "open":
            if keyed:
                if not args.counterparty:
                    raise ValueError("send open --key needs --counterparty (participant B's public key)")
                from infrastructure.cli.channel import counterparty_public_key

                key_a, public_b = own_key, counterparty_public_key(args.counterparty)
            elif args.seed:
                if args.signer.upper() != "A":
                    raise ValueError("an open is signed by participant A, the opener (--as A)")
                a, b = make_parties(args.seed, 2)
                key_a, public_b = a.key, b.public_key
            else:
                raise ValueError("send open needs --key (participant A's keystore) and --counterparty, "
                                 "or --seed (the two seeded parties' keys)")
            cur = Currency.parse(args.currency)
            req = m.OpenChannelRequest(
                channel=channel or uuid.uuid4(),
                public_key_a="0x" + key_a.public_key.hex(),
                public_key_b="0x" + public_b.hex(),
                currency=cur.value,
                deposit_a=parse_amount(args.deposit_a, cur),
                deposit_b=parse_amount(args.deposit_b, cur),
                challenge_period=args.challenge_period,
                checkpoint_interval=args.checkpoint_interval,
                checkpoint_timeout=args.checkpoint_timeout,
                chain_id=args.chain_id or DEMO_CHAIN_ID,
                contract=args.contract or DEMO_CONTRACT,
            )
            key, domain = key_a, req.signing_domain
        else:
            if channel is None:
                raise ValueError(f"send {kind} needs --channel")
            domain = _channel_domain(args, config, channel)
            if kind == "deposit":
                if not args.amount:
                    raise ValueError("send deposit needs --amount (decimal, in the channel's currency)")
                key = own_key if keyed else _party(_need_seed(args, kind), args.sender).key
                req = m.DepositRequest(channel=channel, participant=eth_address_from_public_key(key.public_key),
                                       amount=parse_amount(args.amount, Currency.parse(args.currency)))
            elif kind == "set-operator":
                if not args.operator:
                    raise ValueError("send set-operator needs --operator (the address that may act for the party)")
                key = own_key if keyed else _party(_need_seed(args, kind), args.signer).key
                req = m.SetOperatorRequest(channel=channel, participant=eth_address_from_public_key(key.public_key),
                                           operator=args.operator)
            else:
                if keyed:
                    key = own_key  # a participant's, or the operator's it registered
                elif args.operator_seed:
                    from domain.crypto import PrivateKey

                    key = PrivateKey.from_seed(args.operator_seed)
                else:
                    key = _party(_need_seed(args, kind), args.signer).key
                req = {"checkpoint": m.CheckpointRequest, "settle": m.SettlementRequest,
                       "dispute": m.DisputeRequest}[kind](channel=channel)
        req = req.signed(key, domain, valid_for=args.valid_for)
        if args.print_signed:
            sys.stdout.buffer.write(m.encode_control(req) + b"\n")
            return 0
        _print_sent(kind, sender.control(req), {"channel": str(req.channel),
                                                "signer": eth_address_from_public_key(key.public_key),
                                                "nonce": req.nonce, "expiry": req.expiry})
        return 0
    finally:
        sender.close()


class _Printer:
    """What ``send --print`` has instead of a producer: nothing to close, nothing sent."""

    def close(self) -> None:
        pass


def _need_seed(args: argparse.Namespace, kind: str) -> str:
    if not args.seed:
        raise ValueError(f"send {kind} is signed: give --key (your keystore), or --seed (the seeded parties' "
                         "keys) and --as/--from A or B"
                         + (", or --operator-seed" if kind in ("checkpoint", "settle", "dispute") else ""))
    return args.seed


def _channel_domain(args: argparse.Namespace, config: Any, channel: uuid.UUID) -> Any:
    """What a request about an existing channel is signed for: --chain-id/--contract, else the
    channel's own deployment as the event store has it."""
    from domain.protocol import SigningDomain

    if args.chain_id or args.contract:
        if not (args.chain_id and args.contract):
            raise ValueError("give both --chain-id and --contract, or neither (the channel's own are read)")
        return SigningDomain(chain_id=args.chain_id, verifying_contract=args.contract)
    reader = bootstrap.channel_reader(config)
    try:
        return reader.get_channel_aggregate(channel).domain
    finally:
        reader.close()


def register(sub: argparse._SubParsersAction) -> None:
    node = add_command(sub, cmd_node, epilog=NODE_EPILOG)
    add_settings_flags(node, *TOPIC_FIELDS)
    add_settings_flags(node, "node_group", "node_id", "group_instance_id", "window", "max_wait", "tick_interval",
                       "timeout_check_interval", "max_poll_records", "batch_linger_ms", "session_timeout_ms",
                       "rejoin_unowned_after", "stall_report_after",
                       "settlers", "min_challenge_period")
    add_settings_flags(node, "metrics_port", "metrics_host")

    send = add_command(sub, cmd_send)
    send.add_argument("kind", choices=("pay", "open", "deposit", "set-operator", "checkpoint", "settle", "dispute"))
    add_settings_flags(send, *TOPIC_FIELDS)
    send.add_argument("--channel", type=channel_id, help="channel id (open: generated when omitted)")
    send.add_argument("--file", help="pay: a signed invoice JSON file, or - for stdin")
    add_key_flags(send, default="PARSEC_KEY_FILE when no seed is given")
    send.add_argument("--counterparty", metavar="PUBLIC_KEY",
                      help="open --key: participant B's public key, hex (`parsec key show` prints it)")
    send.add_argument("--seed", help="simulations and tests: seed of the two parties' keys (A = party 0, B = party 1)")
    send.add_argument("--from", dest="sender", default="A", help="pay/deposit: A or B (default A)")
    send.add_argument("--amount", help="pay/deposit: decimal amount, e.g. 0.01")
    send.add_argument("--currency", default="ETH", help="open/deposit: ETH or BTC (default ETH)")
    send.add_argument("--deposit-a", default="1", help="open: A's deposit (decimal, default 1)")
    send.add_argument("--deposit-b", default="0", help="open: B's deposit (decimal, default 0)")
    send.add_argument("--checkpoint-interval", type=int, default=100, help="open: m (default 100)")
    send.add_argument("--checkpoint-timeout", type=int, default=3600, help="open: seconds (default 3600)")
    send.add_argument("--challenge-period", type=int, default=3600, help="open: seconds (default 3600)")
    send.add_argument("--chain-id", type=int,
                      help="chain id signed for (open: default the demo's; others: default the channel's)")
    send.add_argument("--contract", help="channel contract signed for (open: default the demo's; others: the channel's)")
    send.add_argument("--as", dest="signer", default="A",
                      help="set-operator/checkpoint/settle/dispute: the party that signs, A or B (default A)")
    send.add_argument("--operator", help="set-operator: the address that may act for the party (0x00…00: none)")
    send.add_argument("--operator-seed", help="checkpoint/settle/dispute: sign as the operator with this seed's key")
    send.add_argument("--print", dest="print_signed", action="store_true",
                      help="write the signed message (JSON) to standard output instead of producing it: the body "
                           "for the REST API (POST /v1/payments, /v1/channels/ID/checkpoint|settlement|dispute)")
    send.add_argument("--valid-for", type=int, default=300,
                      help="seconds the signed request stays valid (default 300)")
