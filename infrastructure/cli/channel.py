"""``parsec channel open|deposit|set-operator|set-payee|sign-close|close|settle|withdraw|status``.

A channel's life on-chain, each transaction signed with the participant's own keystore (``--key``)
against an Ethereum node (``--eth-rpc``) and the deployed contract (``--contract``; ``parsec
contract deploy`` makes one). What the node must know follows the transaction on the control topic,
signed by the same key, as ``parsec send`` would send it: the open (by A), a deposit, an operator.
What the chain does afterwards (a close, the payouts) reaches the node through the settler, which
watches the contract. Every command prints the transaction's hash, its gas and the channel's new
state; a transaction the contract refuses is not sent, and its decoded error is printed (exit 65).
"""

from __future__ import annotations

import argparse
import uuid
from pathlib import Path
from typing import Any

from rich.table import Table

from infrastructure import bootstrap
from infrastructure.cli.console import console, err_console, print_json
from infrastructure.cli.exits import UsageError
from infrastructure.cli.options import TOPIC_FIELDS, add_command, add_key_flags, add_settings_flags, key_from
from infrastructure.cli.options import channel_id as channel_id_type
from infrastructure.settings import Settings

EPILOG = """\
Keys: --key is a keystore file or the address of one in the key directory (parsec key new);
the password comes from --password-file, PARSEC_KEY_PASSWORD_FILE, PARSEC_KEY_PASSWORD or a prompt.
The node: open, deposit and set-operator --channel also send the signed request to the control
topic (--no-node: only the chain). Exit status 65: refused (the contract's error is printed).
"""


# ---------------------------------------------------------------------- plumbing
def chain_contract(settings: Settings) -> Any:
    """The deployed contract on the configured node; refuses an unset URL or an empty address."""
    if not settings.eth_rpc:
        raise UsageError("an on-chain command needs an Ethereum node: --eth-rpc URL or PARSEC_ETH_RPC "
                         "(the in-process chain forgets everything when the command ends)")
    if not settings.contract:
        raise UsageError("which contract: --contract ADDRESS or PARSEC_CONTRACT (`parsec contract deploy` prints it)")
    return bootstrap.deployed_contract(settings)


def address_of(key: Any) -> str:
    from domain.addresses import eth_address_from_public_key

    return eth_address_from_public_key(key.public_key)


def channel_id(text: str | None, *, required: bool = True) -> uuid.UUID | None:
    if not text:
        if required:
            raise UsageError("give the channel: --channel ID")
        return None
    return uuid.UUID(text)  # the flag's type (options.channel_id) checked its form


class NodeLink:
    """The control topic, opened before any transaction so that an unreachable Kafka costs no gas."""

    def __init__(self, args: argparse.Namespace, settings: Settings) -> None:
        self.sender = None
        if getattr(args, "no_node", False):
            return
        try:
            self.sender = bootstrap.sender(settings)
        except Exception as err:  # kafka-python's NoBrokersAvailable and kin: the service, not the input
            raise ConnectionError(f"cannot reach Kafka at {settings.kafka_bootstrap} to tell the node ({err}); "
                                  "--no-node does only the on-chain part") from None

    def send(self, request: Any) -> dict[str, Any] | None:
        if self.sender is None:
            return None
        m = self.sender.control(request).get(timeout=15)
        return {"sent": request.type, "topic": m.topic, "partition": m.partition, "offset": m.offset,
                "nonce": request.nonce}

    def close(self) -> None:
        if self.sender is not None:
            self.sender.close()


def report(args: argparse.Namespace, transactions: list[tuple[str, Any]], state: Any = None,
           **extra: Any) -> None:
    """The transactions (hash, block, gas), the channel's new on-chain state, and what else happened."""
    from infrastructure.chain.lifecycle import transaction_json

    if args.json:
        out: dict[str, Any] = {"transactions": [transaction_json(op, r) for op, r in transactions]}
        if state is not None:
            out["channel"] = state.as_json()
        out.update(extra)
        print_json(out)
        return
    if transactions:
        table = Table(title="Transactions")
        for col in ("operation", "transaction", "block", "gas used"):
            table.add_column(col, justify="right" if col in ("block", "gas used") else "left", overflow="fold")
        for op, r in transactions:
            table.add_row(op, r.tx_hash, str(r.block_number), f"{r.gas_used:,}")
        console.print(table)
    if state is not None:
        console.print(state_table("On-chain state", state.rows()))
    for name, value in extra.items():
        if value is None:
            continue
        if isinstance(value, dict):
            value = ", ".join(f"{k} {v}" for k, v in value.items())
        console.print(f"{name.replace('_', ' ')}: {value}")


def state_table(title: str, rows: list[tuple[str, str]]) -> Table:
    table = Table(title=title, show_header=False)
    table.add_column("field")
    table.add_column("value", overflow="fold")
    for label, value in rows:
        table.add_row(label, value)
    return table


def approve_token(contract: Any, key_wallet: Any, amount: int) -> tuple[str, Any]:
    """A BTC channel pulls the token with transferFrom: allow the contract exactly this amount first."""
    from infrastructure.chain import TestToken

    token = TestToken(contract.w3, contract.btc_token)  # any ERC-20's approve: the same ABI entry
    return "approve", token.approve(key_wallet, contract.address, amount)


def counterparty_public_key(text: str) -> bytes:
    from domain.crypto import compress_public_key
    from domain.errors import InvalidPublicKey

    raw = text.removeprefix("0x")
    if len(raw) == 40:
        raise InvalidPublicKey("--counterparty is the counterparty's public key, not its address: the node "
                               "keeps both keys of a channel (`parsec key show` prints it)")
    try:
        return compress_public_key(bytes.fromhex(raw))
    except ValueError as err:
        if isinstance(err, InvalidPublicKey):
            raise
        raise InvalidPublicKey(f"--counterparty {text[:20]!r}… is not a hex public key") from None


# ---------------------------------------------------------------------- commands
def cmd_open(args: argparse.Namespace, settings: Settings) -> int:
    """Open a channel on-chain with your deposit, then tell the node.

    You are participant A (--key); --counterparty is B's public key (`parsec key show` prints it).
    The contract takes --deposit (ETH as the transaction's value; BTC after an approve of the token);
    then the node gets the open request signed by your key for this chain and contract, with the same
    terms. B adds its deposit with `parsec channel deposit`.
    """
    from domain.addresses import eth_address_from_public_key
    from domain.money import Currency, parse_amount
    from infrastructure.chain import wallet
    from infrastructure.chain.lifecycle import onchain_state, refusals, token_for
    from infrastructure.node.messages import OpenChannelRequest

    contract = chain_contract(settings)
    key = key_from(args, settings)
    public_b = counterparty_public_key(args.counterparty)
    currency = Currency.parse(args.currency)
    deposit = parse_amount(args.deposit, currency)
    cid = channel_id(args.channel, required=False) or uuid.uuid4()
    request = OpenChannelRequest(
        channel=cid, public_key_a="0x" + key.public_key.hex(), public_key_b="0x" + public_b.hex(),
        currency=currency.value, deposit_a=deposit, deposit_b=0, challenge_period=args.challenge_period,
        checkpoint_interval=args.checkpoint_interval, checkpoint_timeout=args.checkpoint_timeout,
        chain_id=contract.w3.eth.chain_id, contract=contract.address,
    ).signed(key, contract.domain, valid_for=args.valid_for)
    node = NodeLink(args, settings)
    try:
        w = wallet(key)
        done: list[tuple[str, Any]] = []
        with refusals():
            if currency is Currency.BTC and deposit:
                done.append(approve_token(contract, w, deposit))
            done.append(("open", contract.open_channel(
                w, cid, eth_address_from_public_key(public_b), deposit=deposit,
                challenge_period=args.challenge_period, token=token_for(contract, currency))))
        try:
            sent = node.send(request)
        except Exception as err:
            err_console.print(f"[bold red]opened on-chain, but the node was not told[/]: {err}; send it again with "
                              f"`parsec send open --key {args.key or '<your key>'} --counterparty {args.counterparty} "
                              f"--channel {cid} --deposit-a {args.deposit} --currency {currency.value} "
                              f"--challenge-period {args.challenge_period} --checkpoint-interval "
                              f"{args.checkpoint_interval} --checkpoint-timeout {args.checkpoint_timeout} "
                              f"--chain-id {contract.w3.eth.chain_id} "
                              f"--contract {contract.address}`")
            raise
        report(args, done, onchain_state(contract, cid), node=sent)
        return 0
    finally:
        node.close()


def cmd_deposit(args: argparse.Namespace, settings: Settings) -> int:
    """Add to your deposit in a channel on-chain, then tell the node.

    Either participant (--key) tops up its own deposit by --amount (decimal, in the channel's
    currency); the node gets the deposit request signed by the same key.
    """
    from domain.money import Currency, parse_amount
    from infrastructure.chain import wallet
    from infrastructure.chain.lifecycle import currency_of, onchain_state, refusals
    from infrastructure.node.messages import DepositRequest

    contract = chain_contract(settings)
    cid = channel_id(args.channel)
    key = key_from(args, settings)
    with refusals():
        params = contract.params(cid)
    currency = currency_of(params.token)
    amount = parse_amount(args.amount, currency)
    me = address_of(key)
    request = DepositRequest(channel=cid, participant=me, amount=amount).signed(key, contract.domain,
                                                                                valid_for=args.valid_for)
    node = NodeLink(args, settings)
    try:
        w = wallet(key)
        done: list[tuple[str, Any]] = []
        with refusals():
            if currency is Currency.BTC:
                done.append(approve_token(contract, w, amount))
            done.append(("deposit", contract.deposit(w, cid, amount)))
        report(args, done, onchain_state(contract, cid), node=node.send(request))
        return 0
    finally:
        node.close()


def cmd_set_operator(args: argparse.Namespace, settings: Settings) -> int:
    """Name the operator (a node's settler, a watchtower) that may close and record proofs for you.

    On-chain the operator is yours for every channel of the contract; each --channel also gets the
    set-operator request signed by your key, so that the node takes that operator's checkpoint,
    settlement and dispute requests for you. --operator 0x0000000000000000000000000000000000000000
    names none.
    """
    from domain.addresses import parse_eth_address
    from infrastructure.chain import wallet
    from infrastructure.chain.lifecycle import refusals
    from infrastructure.node.messages import SetOperatorRequest

    contract = chain_contract(settings)
    key = key_from(args, settings)
    operator = parse_eth_address(args.operator)
    channels = [channel_id(c) for c in args.channel or ()]
    me = address_of(key)
    requests = [SetOperatorRequest(channel=c, participant=me, operator=operator).signed(
        key, contract.domain, valid_for=args.valid_for) for c in channels]
    if not channels:
        args.no_node = True
    node = NodeLink(args, settings)
    try:
        with refusals():
            receipt = contract.set_operator(wallet(key), operator)
        sent = [node.send(r) for r in requests]
        report(args, [("setOperator", receipt)], None, participant=me, operator=contract.operator_of(me),
               node=sent or None)
        return 0
    finally:
        node.close()


def cmd_set_payee(args: argparse.Namespace, settings: Settings) -> int:
    """Name where all your payouts go (the zero address: to you).

    Only you, never your operator, may redirect your money. An ETH payout the payee refuses waits
    as your credit until `parsec channel withdraw` sends it on.
    """
    from domain.addresses import parse_eth_address
    from infrastructure.chain import wallet
    from infrastructure.chain.lifecycle import refusals

    contract = chain_contract(settings)
    key = key_from(args, settings)
    with refusals():
        receipt = contract.set_payee(wallet(key), parse_eth_address(args.payee))
    me = address_of(key)
    report(args, [("setPayee", receipt)], None, participant=me, payee=contract.payee_of(me))
    return 0


def _close_terms(args: argparse.Namespace, settings: Settings, contract: Any, cid: uuid.UUID) -> Any:
    """New terms: the balances and sequence given, else the node's view of the channel's head."""
    from domain.money import parse_amount
    from infrastructure.chain.lifecycle import BadCloseTerms, CloseTerms, currency_of, refusals

    with refusals():
        params = contract.params(cid)
    onchain = contract.channel(cid)
    currency = currency_of(params.token)
    if (args.balance_a is None) != (args.balance_b is None):
        raise UsageError("give both --balance-a and --balance-b, or neither (then the node's balances are used)")
    if args.balance_a is not None:
        balances = (parse_amount(args.balance_a, currency), parse_amount(args.balance_b, currency))
        sequence = args.sequence if args.sequence is not None else onchain.head_sequence
    else:
        reader = bootstrap.channel_reader(settings)
        try:
            view = reader.get_channel(cid)
        finally:
            reader.close()
        balances, sequence = tuple(view.balances), view.sequence
        if any(view.locked):
            # spendable balances leave the pending locks out: they would not add up to the deposits, and
            # signing them away would take a lock from whoever can still claim it with the secret
            raise BadCloseTerms(
                f"channel {cid} has pending locks ({view.locked[0]} locked by A, {view.locked[1]} by B): wait until "
                "they are unlocked or expired (the agents do it), or give --balance-a and --balance-b both "
                "parties agree on")
        if args.sequence is not None and args.sequence != sequence:
            raise ValueError(f"--sequence {args.sequence} is not the node's head {sequence}: give the balances too")
    # the contract judges expiry by its block time, which a development chain may have moved ahead
    expiry = args.expiry if args.expiry is not None else contract.latest_timestamp() + args.valid_for
    return CloseTerms(channel=cid, chain_id=contract.w3.eth.chain_id, contract=contract.address,
                      balance_a=balances[0], balance_b=balances[1], sequence=sequence, expiry=expiry)


def cmd_sign_close(args: argparse.Namespace, settings: Settings) -> int:
    """Sign the terms of a cooperative close into a file for the counterparty.

    New terms: --balance-a and --balance-b (decimal; they must add up to the deposits) at head
    --sequence (default the chain's recorded head), or, without them, the node's balances and head;
    valid until --expiry (unix seconds) or for --valid-for seconds of chain time. With --file, the terms of that
    file are signed instead (the counterparty's file: you add your signature). The file is written to
    --out (default: --file, or close-<channel>.json). Then either participant closes with
    `parsec channel close --cosigned FILE`. Nothing is sent to the chain.
    """
    from infrastructure.chain.lifecycle import BadCloseTerms, CloseTerms, NotAParticipantKey, refusals

    contract = chain_contract(settings)
    key = key_from(args, settings)
    if args.file:
        terms = CloseTerms.from_json(Path(args.file).read_bytes())
        if args.channel and channel_id(args.channel) != terms.channel:
            raise BadCloseTerms(f"{args.file} closes channel {terms.channel}, not {args.channel}")
        terms.check_signatures()
    else:
        terms = _close_terms(args, settings, contract, channel_id(args.channel))
    if (terms.chain_id, terms.contract) != (contract.w3.eth.chain_id, contract.address):
        raise BadCloseTerms(f"the terms are for contract {terms.contract} on chain {terms.chain_id}, "
                            f"not {contract.address} on chain {contract.w3.eth.chain_id}")
    with refusals():
        params = contract.params(terms.channel)
    me = address_of(key)
    if me not in (params.a, params.b):
        raise NotAParticipantKey(f"{me} is not a participant of channel {terms.channel}")
    terms = terms.signed_by(key)
    out = Path(args.out or args.file or f"close-{terms.channel}.json")
    out.write_text(terms.to_json())
    if args.json:
        print_json({"file": str(out), "signer": me, "terms": _terms_json(terms)})
    else:
        console.print(state_table(f"Signed cooperative close → {out}", [
            ("channel", str(terms.channel)), ("balance A", str(terms.balance_a)), ("balance B", str(terms.balance_b)),
            ("sequence", str(terms.sequence)), ("expiry", str(terms.expiry)),
            ("signed by", ", ".join(sorted(terms.signatures)))]))
    return 0


def _terms_json(terms: Any) -> dict[str, Any]:
    import json

    return json.loads(terms.to_json())


def cmd_close(args: argparse.Namespace, settings: Settings) -> int:
    """Close a channel: at once with the counterparty's co-signature, else unilaterally.

    --cosigned FILE (from `parsec channel sign-close`): the co-signed balances are paid out now; your
    signature is added if the file lacks it. Without it: a unilateral close that starts the challenge
    period, carrying the counterparty's latest signed payment to you as evidence (--proof FILE, a
    signed payment JSON, repeatable; default: the one the node holds; --no-node: none); `parsec
    channel settle` pays out after the period. The settler tells the node what the chain did.
    """
    from domain.protocol import SignedInvoice
    from infrastructure.chain import wallet
    from infrastructure.chain.lifecycle import (
        BadCloseTerms,
        CloseTerms,
        NotAParticipantKey,
        onchain_state,
        refusals,
    )

    contract = chain_contract(settings)
    key = key_from(args, settings)
    me = address_of(key)
    if args.cosigned:
        terms = CloseTerms.from_json(Path(args.cosigned).read_bytes())
        cid = channel_id(args.channel, required=False) or terms.channel
        if cid != terms.channel:
            raise BadCloseTerms(f"{args.cosigned} closes channel {terms.channel}, not {cid}")
    else:
        cid = channel_id(args.channel)
    with refusals():
        params = contract.params(cid)
    if me not in (params.a, params.b) and args.cosigned is None:
        raise NotAParticipantKey(f"{me} is not a participant of channel {cid}: only they (or their operator's "
                                 "settler) close")
    if args.cosigned:
        if (terms.chain_id, terms.contract) != (contract.w3.eth.chain_id, contract.address):
            raise BadCloseTerms(f"the terms are for contract {terms.contract} on chain {terms.chain_id}")
        if me in (params.a, params.b) and me not in terms.signatures:
            terms = terms.signed_by(key)
        sig_a, sig_b = terms.signatures_of(params.a, params.b)
        with refusals():
            receipt = contract.cooperative_close(
                wallet(key), cid, balance_a=terms.balance_a, balance_b=terms.balance_b, sequence=terms.sequence,
                expiry=terms.expiry, signature_a=sig_a, signature_b=sig_b)
        report(args, [("cooperativeClose", receipt)], onchain_state(contract, cid), close="cooperative")
        return 0
    proofs = [SignedInvoice.from_json(Path(p).read_bytes()) for p in args.proof or ()]
    if not proofs and not args.no_node:
        proofs = _node_evidence(settings, cid, params.other(me))
    with refusals():
        receipt = contract.close(wallet(key), cid, proofs)
    report(args, [("close", receipt)], onchain_state(contract, cid), close="unilateral",
           proofs=[f"sequence {p.sequence} by {p.buyer}" for p in proofs] or None)
    return 0


def _node_evidence(settings: Settings, cid: uuid.UUID, counterparty: str) -> list[Any]:
    """The counterparty's latest signed payment as the node holds it: what pays the closer."""
    from domain.protocol import SignedInvoice

    try:
        reader = bootstrap.channel_reader(settings)
    except Exception as err:
        raise ConnectionError(f"cannot read the node's event store for the counterparty's latest payment ({err}); "
                              "give it with --proof FILE, or --no-node to close without evidence") from None
    try:
        latest = reader.get_channel_aggregate(cid).latest.get(counterparty)
    finally:
        reader.close()
    return [SignedInvoice.parse(latest)] if latest else []


def cmd_settle(args: argparse.Namespace, settings: Settings) -> int:
    """Pay out a closed channel once its challenge period is over (anyone may send it).

    The contract pays A deposit A + sent by B - sent by A (clamped to the deposits) and B the rest.
    Before the period ends it refuses with ChallengePeriodNotOver.
    """
    from infrastructure.chain import wallet
    from infrastructure.chain.lifecycle import onchain_state, refusals

    contract = chain_contract(settings)
    cid = channel_id(args.channel)
    key = key_from(args, settings)
    with refusals():
        receipt = contract.settle(wallet(key), cid)
    report(args, [("settle", receipt)], onchain_state(contract, cid))
    return 0


def cmd_withdraw(args: argparse.Namespace, settings: Settings) -> int:
    """Send a refused ETH payout (an owner's credit) on to its payee (anyone may send it).

    --owner defaults to your own address. Refused with NothingToWithdraw when there is no credit.
    """
    from domain.addresses import parse_eth_address
    from infrastructure.chain import wallet
    from infrastructure.chain.events import Withdrawn
    from infrastructure.chain.lifecycle import refusals

    contract = chain_contract(settings)
    key = key_from(args, settings)
    owner = parse_eth_address(args.owner) if args.owner else address_of(key)
    with refusals():
        receipt = contract.withdraw(wallet(key), owner)
    sent = [e for e in receipt.events if isinstance(e, Withdrawn)]
    report(args, [("withdraw", receipt)], None, owner=owner, paid_to=sent[0].to if sent else None,
           amount=str(sent[0].amount) if sent else None)
    return 0


def cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    """A channel's on-chain state beside the node's read model of it.

    On-chain: the contract's record (status, deposits, recorded proofs, what settle would pay, the
    payouts once paid). Read model: the balances read model (`parsec balances`), caught up with the
    event store first unless --no-catch-up; --no-read-model shows the chain only.
    """
    from infrastructure.chain.lifecycle import onchain_state

    contract = chain_contract(settings)
    cid = channel_id(args.channel)
    state = onchain_state(contract, cid)
    model, problem = (None, "not asked (--no-read-model)") if args.no_read_model else _read_model(args, settings, cid)
    if args.json:
        print_json({"channel": str(cid), "on_chain": state.as_json(),
                    "read_model": _model_json(model) if model else None,
                    **({"read_model_error": problem} if problem else {})})
        return 0
    console.print(state_table("On-chain", state.rows()))
    if model is None:
        console.print(f"read model: {problem}")
    else:
        console.print(_comparison(state, model))
    return 0


def _read_model(args: argparse.Namespace, settings: Settings, cid: uuid.UUID) -> tuple[Any, str | None]:
    """The channel's row of the balances read model, or why there is none (the chain is shown anyway)."""
    from projections import registry
    from projections.balances import channel_balances

    try:
        store = bootstrap.read_model_store(settings, args.backend, db=args.db, events_db=args.events_db)
        try:
            if not args.no_catch_up:
                runner = bootstrap.projection_runner(bootstrap.event_source(settings, args.events_db), store,
                                                     [registry.get("balances")])
                runner.catch_up()
            rows = channel_balances(store, str(cid))
        finally:
            store.close()
    except Exception as err:  # the read model is a second opinion: say why it is missing, show the chain
        return None, f"unavailable ({type(err).__name__}: {err})"
    if not rows:
        return None, f"no channel {cid} in the balances read model (has the node seen it open?)"
    return rows[0], None


def _model_json(row: Any) -> dict[str, Any]:
    return {"status": row.status, "currency": row.currency, "participant_a": row.participants[0],
            "participant_b": row.participants[1], "deposit_a": str(row.deposits[0]),
            "deposit_b": str(row.deposits[1]), "sent_a": str(row.sent[0]), "sent_b": str(row.sent[1]),
            "balance_a": str(row.balances[0]), "balance_b": str(row.balances[1]), "sequence": row.sequence,
            "checkpoint_sequence": row.checkpoint_sequence, "confirmed_sequence": row.confirmed_sequence}


def _comparison(state: Any, row: Any) -> Table:
    from domain.money import format_amount

    cur = state.currency

    def pair(values: Any) -> str:
        return f"{format_amount(values[0], cur)} / {format_amount(values[1], cur)}"

    table = Table(title="On-chain beside the read model")
    for col in ("", "on-chain", "read model"):
        table.add_column(col, overflow="fold")
    table.add_row("status", state.status, row.status)
    table.add_row("deposits A / B", pair(state.deposits), pair(row.deposits))
    table.add_row("sent A / B", pair(state.sent), pair(row.sent))
    table.add_row("balances A / B", pair(state.payouts or state.balances), pair(row.balances))
    table.add_row("sequence", f"{max(state.sequences)} recorded", f"{row.sequence} (checkpoint "
                  f"{row.checkpoint_sequence}, confirmed {row.confirmed_sequence})")
    return table


# ---------------------------------------------------------------------- flags
def register(sub: argparse._SubParsersAction) -> None:
    group = sub.add_parser("channel", help="a channel's life on-chain: open, deposit, close, settle, status",
                           description="A channel's transactions on an Ethereum node, each signed with your "
                                       "keystore (--key), and what the node must know of them.",
                           epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = group.add_subparsers(dest="channel_command", metavar="COMMAND", required=True)

    def command(func: Any, *, signs: bool = True, node: bool = False) -> argparse.ArgumentParser:
        p = add_command(commands, func, epilog=EPILOG)
        add_settings_flags(p, "eth_rpc", "contract", *(TOPIC_FIELDS if node else ()))
        if signs:
            add_key_flags(p)
        p.add_argument("--json", action="store_true", help="one JSON document (amounts as strings)")
        return p

    def valid_for(p: argparse.ArgumentParser) -> None:
        p.add_argument("--valid-for", type=int, default=300,
                       help="seconds the signed node request stays valid (default 300)")

    p = command(cmd_open, node=True)
    p.add_argument("--counterparty", required=True, metavar="PUBLIC_KEY",
                   help="participant B's public key, hex (`parsec key show` prints it)")
    p.add_argument("--deposit", required=True, help="your deposit, decimal in --currency (e.g. 1.5)")
    p.add_argument("--currency", default="ETH", help="ETH or BTC (the contract's token; default ETH)")
    p.add_argument("--channel", type=channel_id_type, help="the channel id (default: a new random one)")
    p.add_argument("--challenge-period", type=int, default=3600,
                   help="seconds a unilateral close waits for evidence (default 3600; the contract has a minimum)")
    p.add_argument("--checkpoint-interval", type=int, default=100, help="the node checkpoints every m-th payment")
    p.add_argument("--checkpoint-timeout", type=int, default=3600, help="or after this many seconds")
    p.add_argument("--no-node", action="store_true", help="only the on-chain open")
    valid_for(p)

    p = command(cmd_deposit, node=True)
    p.add_argument("--channel", type=channel_id_type, required=True, help="the channel id")
    p.add_argument("--amount", required=True, help="decimal, in the channel's currency")
    p.add_argument("--no-node", action="store_true", help="only the on-chain deposit")
    valid_for(p)

    p = command(cmd_set_operator, node=True)
    p.add_argument("--operator", required=True, help="the operator's address (0x00…00: none)")
    p.add_argument("--channel", type=channel_id_type, action="append", help="also tell the node, for this channel (repeatable)")
    p.add_argument("--no-node", action="store_true", help="only the on-chain registration")
    valid_for(p)

    p = command(cmd_set_payee)
    p.add_argument("--payee", required=True, help="where your payouts go (0x00…00: to you)")

    p = command(cmd_sign_close, node=True)
    p.add_argument("--channel", type=channel_id_type, help="the channel id (new terms; with --file: a check)")
    p.add_argument("--file", help="sign the terms of this cooperative-close file (the counterparty's)")
    p.add_argument("--out", help="where to write the signed file (default --file, or close-<channel>.json)")
    p.add_argument("--balance-a", help="A's payout, decimal (with --balance-b; default: the node's balances)")
    p.add_argument("--balance-b", help="B's payout, decimal")
    p.add_argument("--sequence", type=int, help="the head the balances are at (default: the chain's recorded head)")
    p.add_argument("--expiry", type=int, help="unix seconds after which the contract refuses the close")
    p.add_argument("--valid-for", type=int, default=3600, help="else valid for this many seconds (default 3600)")

    p = command(cmd_close, node=True)
    p.add_argument("--channel", type=channel_id_type, help="the channel id (with --cosigned: the file's)")
    p.add_argument("--cosigned", metavar="FILE", help="a cooperative-close file with the counterparty's signature")
    p.add_argument("--proof", action="append", metavar="FILE",
                   help="unilateral: a signed payment (JSON) paying you, as evidence (repeatable)")
    p.add_argument("--no-node", action="store_true", help="unilateral: do not ask the node for the evidence")

    p = command(cmd_settle)
    p.add_argument("--channel", type=channel_id_type, required=True, help="the channel id")

    p = command(cmd_withdraw)
    p.add_argument("--owner", help="whose credit to send on (default: yours)")

    p = command(cmd_status, signs=False, node=True)
    add_settings_flags(p, "settlement_topic")
    p.add_argument("--channel", type=channel_id_type, required=True, help="the channel id")
    p.add_argument("--no-read-model", action="store_true", help="the chain only")
    p.add_argument("--no-catch-up", action="store_true", help="read the read model as it is")
    p.add_argument("--backend", choices=("sqlite", "postgres"), help="read-model database (default: postgres "
                   "when a DSN is set, else SQLite next to the event store)")
    p.add_argument("--db", help="SQLite read-model file")
    p.add_argument("--events-db", help="SQLite event store file (default <data dir>/events.sqlite)")
