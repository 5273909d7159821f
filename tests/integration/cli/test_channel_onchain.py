"""``parsec contract deploy`` and ``parsec channel …`` on anvil, each transaction signed with a keystore file:
open with a deposit, deposit, set-operator, a unilateral close with evidence, a refused settle inside
the challenge period, settle after it, a refused payout withdrawn; payouts checked to the wei."""

from __future__ import annotations

import uuid

import pytest

from domain.protocol import GENESIS, Invoice, SigningDomain, sign_invoice
from infrastructure.chain import ChannelContract, advance_time, wallet
from infrastructure.chain.artifacts import load_artifact
from infrastructure.chain.channels import _transact
from infrastructure.cli.exits import Exit
from tests.integration.cli.conftest import PERIOD
from tests.integration.contract.chain import ETHER

pytestmark = [pytest.mark.integration, pytest.mark.chain]


def test_deploy_prints_the_contract_and_its_gas(cli, contract, anvil):
    assert anvil.eth.get_code(contract)
    assert ChannelContract(anvil, contract).min_challenge_period == PERIOD


def test_unilateral_close_settle_and_withdraw(cli, contract, keystores, anvil, tmp_path):
    alice, bob, carol = keystores("alice"), keystores("bob"), keystores("carol")
    on = ("--contract", contract)
    opened = cli.json("channel", "open", *on, *cli.signed(alice), "--counterparty", bob.public_key,
                      "--deposit", "1", "--challenge-period", str(PERIOD), "--no-node")
    (tx,) = opened["transactions"]
    assert tx["operation"] == "open" and tx["gas_used"] > 0 and tx["tx_hash"].startswith("0x")
    state = opened["channel"]
    cid = uuid.UUID(state["channel"])
    assert (state["status"], state["participant_a"], state["participant_b"]) == ("open", alice.address, bob.address)
    assert (state["deposit_a"], state["deposit_b"]) == (str(ETHER), "0")

    deposited = cli.json("channel", "deposit", *on, *cli.signed(bob), "--channel", str(cid), "--amount", "0.5",
                         "--no-node")
    assert deposited["channel"]["deposit_b"] == str(ETHER // 2)
    assert deposited["transactions"][0]["operation"] == "deposit"

    set_op = cli.json("channel", "set-operator", *on, *cli.signed(bob), "--operator", carol.address)
    assert set_op["operator"] == carol.address
    assert ChannelContract(anvil, contract).operator_of(bob.address) == carol.address

    # A's payout goes to a receiver that refuses ETH: it waits as A's credit until withdrawn
    refusing = _refusing_receiver(anvil, carol, contract)
    assert cli.json("channel", "set-payee", *on, *cli.signed(alice), "--payee", refusing)["payee"] == refusing

    # Alice paid Bob 0.3: Bob closes with that signed payment as evidence
    domain = SigningDomain(chain_id=anvil.eth.chain_id, verifying_contract=contract)
    payment = sign_invoice(Invoice(invoice_address=bob.address, price=3 * ETHER // 10, currency="ETH"),
                           key=alice.key, channel=cid, invoice_id=uuid.uuid4(), sequence=1, previous=GENESIS,
                           buyer_total=3 * ETHER // 10, domain=domain)
    proof = tmp_path / "payment.json"
    proof.write_bytes(payment.to_json())
    closed = cli.json("channel", "close", *on, *cli.signed(bob), "--channel", str(cid), "--proof", str(proof))
    assert closed["close"] == "unilateral"
    assert (closed["channel"]["status"], closed["channel"]["sent_a"]) == ("closed-by-b", str(3 * ETHER // 10))
    assert (closed["channel"]["balance_a"], closed["channel"]["balance_b"]) == (str(7 * ETHER // 10),
                                                                               str(8 * ETHER // 10))

    # inside the challenge period the contract refuses: its decoded error, exit status 65, nothing sent
    status, out, err = cli.run("channel", "settle", *on, *cli.signed(carol), "--channel", str(cid))
    assert status == Exit.REFUSED and out == ""
    assert "TransactionRefused" in err and "ChallengePeriodNotOver" in err and "settleAt=" in err

    advance_time(anvil, PERIOD + 1)
    bob_before = anvil.eth.get_balance(bob.address)
    settled = cli.json("channel", "settle", *on, *cli.signed(carol), "--channel", str(cid))  # a third party sends it
    assert settled["channel"]["status"] == "settled"
    assert (settled["channel"]["payout_a"], settled["channel"]["payout_b"]) == (str(7 * ETHER // 10),
                                                                               str(8 * ETHER // 10))
    assert anvil.eth.get_balance(bob.address) - bob_before == 8 * ETHER // 10
    channels = ChannelContract(anvil, contract)
    assert channels.withdrawable(alice.address) == 7 * ETHER // 10

    # the credit goes to the payee; Alice points it back at herself, and a third party sends it on
    cli.json("channel", "set-payee", *on, *cli.signed(alice), "--payee", "0x" + "00" * 20)
    alice_before = anvil.eth.get_balance(alice.address)
    withdrawn = cli.json("channel", "withdraw", *on, *cli.signed(carol), "--owner", alice.address)
    assert (withdrawn["paid_to"], withdrawn["amount"]) == (alice.address, str(7 * ETHER // 10))
    assert anvil.eth.get_balance(alice.address) - alice_before == 7 * ETHER // 10
    assert channels.withdrawable(alice.address) == 0
    # nothing left: refused with the contract's reason
    status, _, err = cli.run("channel", "withdraw", *on, *cli.signed(carol), "--owner", alice.address)
    assert status == Exit.REFUSED and "NothingToWithdraw" in err

    status_out = cli.json("channel", "status", *on, "--channel", str(cid), "--no-read-model")
    assert status_out["on_chain"]["status"] == "settled" and status_out["read_model"] is None


def test_cooperative_close_pays_out_at_once(cli, contract, keystores, anvil, tmp_path):
    alice, bob = keystores("alice"), keystores("bob")
    on = ("--contract", contract)
    cid = uuid.uuid4()
    cli.json("channel", "open", *on, *cli.signed(alice), "--counterparty", bob.public_key, "--deposit", "2",
             "--channel", str(cid), "--challenge-period", str(PERIOD), "--no-node")
    cli.json("channel", "deposit", *on, *cli.signed(bob), "--channel", str(cid), "--amount", "1", "--no-node")
    # Bob signs the terms into a file; Alice adds her signature and sends them
    terms = tmp_path / "close.json"
    signed = cli.json("channel", "sign-close", *on, *cli.signed(bob), "--channel", str(cid),
                      "--balance-a", "1.25", "--balance-b", "1.75", "--out", str(terms))
    assert signed["signer"] == bob.address and list(signed["terms"]["signatures"]) == [bob.address]
    alice_before, bob_before = anvil.eth.get_balance(alice.address), anvil.eth.get_balance(bob.address)
    closed = cli.json("channel", "close", *on, *cli.signed(alice), "--cosigned", str(terms))
    (tx,) = closed["transactions"]
    assert tx["operation"] == "cooperativeClose" and tx["gas_used"] > 0
    assert closed["channel"]["status"] == "settled"
    assert (closed["channel"]["payout_a"], closed["channel"]["payout_b"]) == (str(125 * ETHER // 100),
                                                                             str(175 * ETHER // 100))
    assert anvil.eth.get_balance(bob.address) - bob_before == 175 * ETHER // 100
    gas = anvil.eth.get_transaction_receipt(tx["tx_hash"])
    assert anvil.eth.get_balance(alice.address) - alice_before == (
        125 * ETHER // 100 - gas["gasUsed"] * gas["effectiveGasPrice"])
    # the same terms again: the channel id is retired
    status, _, err = cli.run("channel", "close", *on, *cli.signed(alice), "--cosigned", str(terms))
    assert status == Exit.REFUSED and "TransactionRefused" in err and "AlreadySettled" in err


def test_a_tampered_cosigned_file_is_refused_before_any_transaction(cli, contract, keystores, tmp_path):
    alice, bob = keystores("alice"), keystores("bob")
    on = ("--contract", contract)
    cid = uuid.uuid4()
    cli.json("channel", "open", *on, *cli.signed(alice), "--counterparty", bob.public_key, "--deposit", "1",
             "--channel", str(cid), "--challenge-period", str(PERIOD), "--no-node")
    terms = tmp_path / "close.json"
    cli.json("channel", "sign-close", *on, *cli.signed(bob), "--channel", str(cid), "--balance-a", "0",
             "--balance-b", "1", "--out", str(terms))
    terms.write_text(terms.read_text().replace('"balanceA": "0"', '"balanceA": "1"').replace(
        '"balanceB": "1000000000000000000"', '"balanceB": "0"'))
    status, _, err = cli.run("channel", "close", *on, *cli.signed(alice), "--cosigned", str(terms))
    assert status == Exit.REFUSED and "BadCloseTerms" in err
    assert ChannelContract(cli_w3(), contract).channel(cid).status.name == "OPEN"


def test_open_refused_by_the_contract_shows_its_reason(cli, contract, keystores):
    alice, bob = keystores("alice"), keystores("bob")
    status, out, err = cli.run("channel", "open", "--contract", contract, *cli.signed(alice), "--counterparty",
                               bob.public_key, "--deposit", "1", "--challenge-period", str(PERIOD - 1), "--no-node")
    assert status == Exit.REFUSED and out == ""
    assert "ChallengePeriodTooShort" in err and f"minimum={PERIOD}" in err


def test_a_wrong_password_is_refused(cli, contract, keystores, tmp_path):
    alice, bob = keystores("alice"), keystores("bob")
    wrong = tmp_path / "wrong"
    wrong.write_text("not the password\n")
    status, out, err = cli.run("channel", "open", "--contract", contract, "--key", str(alice.path),
                               "--password-file", str(wrong), "--counterparty", bob.public_key, "--deposit", "1",
                               "--no-node")
    assert status == Exit.REFUSED and out == ""
    assert "WrongPassword" in err and "not the password" not in err
    status, _, err = cli.run("contract", "deploy", "--key", str(alice.path), "--password-file", str(wrong),
                             "--test-token")
    assert status == Exit.REFUSED and "WrongPassword" in err


def cli_w3():
    from infrastructure.chain import connect
    from tests.integration.contract.chain import ANVIL_URL

    return connect(ANVIL_URL)


def _refusing_receiver(w3, owner, channels_address: str) -> str:
    """A contract that refuses every ETH transfer (the contract tests' Reentrant in mode 2)."""
    artifact = load_artifact("Reentrant")
    factory = w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
    address = _transact(w3, wallet(owner.key), factory.constructor(channels_address), 0, None,
                        "deploy")["contractAddress"]
    receiver = w3.eth.contract(address=address, abi=artifact.abi)
    _transact(w3, wallet(owner.key), receiver.functions.arm(2, b""), 0, None, "arm")
    return address


def test_a_btc_channel_approves_the_token_before_each_deposit(cli, contract, keystores, anvil):
    from infrastructure.chain import TestToken

    alice, bob = keystores("alice"), keystores("bob")
    on = ("--contract", contract)
    token = TestToken(anvil, ChannelContract(anvil, contract).btc_token)
    for who in (alice, bob):
        token.mint(wallet(who.key), who.address, 10**8)
    opened = cli.json("channel", "open", *on, *cli.signed(alice), "--counterparty", bob.public_key, "--deposit",
                      "0.5", "--currency", "BTC", "--challenge-period", str(PERIOD), "--no-node")
    assert [t["operation"] for t in opened["transactions"]] == ["approve", "open"]
    assert (opened["channel"]["currency"], opened["channel"]["deposit_a"]) == ("BTC", str(5 * 10**7))
    cid = opened["channel"]["channel"]
    deposited = cli.json("channel", "deposit", *on, *cli.signed(bob), "--channel", cid, "--amount", "0.25",
                         "--no-node")
    assert [t["operation"] for t in deposited["transactions"]] == ["approve", "deposit"]
    assert deposited["channel"]["deposit_b"] == str(25 * 10**6)
    assert token.balance_of(contract) == 75 * 10**6
    # a BTC amount has at most 8 decimals: refused before anything is sent
    status, _, err = cli.run("channel", "deposit", *on, *cli.signed(bob), "--channel", cid, "--amount",
                             "0.000000001", "--no-node")
    assert status == Exit.REFUSED and "TooManyDecimals" in err
