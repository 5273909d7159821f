"""What the API answers, as pydantic models: the OpenAPI document is generated from them.

Amounts are decimal strings of the smallest unit (wei, satoshi): a JSON number loses precision
past 2**53 in most consumers.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

Amount = Annotated[str, Field(pattern=r"^[0-9]+$", description="an integer in the smallest unit, as a decimal string",
                              examples=["1000000000000000000"])]


def amount(value: int | None) -> str | None:
    return None if value is None else str(int(value))


class Problem(BaseModel):
    """RFC 9457 problem details; ``reason`` is the refusal's ParsecError class name."""

    type: str = Field(examples=["urn:parsec:problem:WrongSigner"])
    title: str
    status: int
    detail: str
    reason: str = Field(examples=["WrongSigner"])
    instance: str | None = None


class PaymentQueued(BaseModel):
    """Where the payment was produced: the node that owns the partition will apply or refuse it."""

    partition: int
    offset: int
    channel: str
    sequence: int


class ControlQueued(BaseModel):
    """Where the signed control request was produced, and who signed it."""

    partition: int
    offset: int
    channel: str
    type: str = Field(examples=["checkpoint", "settle", "dispute"])
    signer: str
    nonce: int
    expiry: int


class Channel(BaseModel):
    channel_id: str
    currency: str
    participants: list[str]
    deposits: list[Amount]
    sent: list[Amount]
    locked: list[Amount] = Field(description="in pending hashed timelocks, per sender (A, B)")
    balances: list[Amount] = Field(description="spendable: deposit - sent + received - locked (A, B)")
    sequence: int
    head_hash: str
    checkpoint_sequence: int
    confirmed_sequence: int
    status: str = Field(examples=["open", "settling", "closed"])
    opened_at: int | None = None
    closed_at: int | None = None

    @classmethod
    def of(cls, r: dict[str, Any]) -> Channel:
        return cls(
            channel_id=r["channel_id"], currency=r["currency"], participants=[r["participant_a"], r["participant_b"]],
            deposits=[amount(r["deposit_a"]), amount(r["deposit_b"])], sent=[amount(r["sent_a"]), amount(r["sent_b"])],
            locked=[amount(r["locked_a"] or 0), amount(r["locked_b"] or 0)],
            balances=[amount(r["balance_a"]), amount(r["balance_b"])], sequence=r["sequence"] or 0,
            head_hash=r["head_hash"], checkpoint_sequence=r["checkpoint_sequence"] or 0,
            confirmed_sequence=r["confirmed_sequence"] or 0, status=r["status"], opened_at=r.get("opened_at"),
            closed_at=r.get("closed_at"),
        )


class Payment(BaseModel):
    channel_id: str
    sequence: int
    invoice_id: str
    currency: str | None
    buyer: str
    supplier: str
    price: Amount
    buyer_total: Amount
    buyer_balance: Amount
    supplier_balance: Amount
    transaction_hash: str
    previous_hash: str | None
    previous_id: str | None
    recorded_at: str | None

    @classmethod
    def of(cls, r: dict[str, Any]) -> Payment:
        return cls(**{**r, **{k: amount(r[k]) for k in ("price", "buyer_total", "buyer_balance", "supplier_balance")}})


class Settlement(BaseModel):
    channel_id: str
    kind: str = Field(examples=["checkpoint", "settlement", "dispute", "settle", "update"])
    sequence: int
    from_sequence: int | None
    state: str = Field(examples=["requested", "submitted", "confirmed", "failed"])
    reason: str | None
    head_hash: str | None
    balances: list[Amount | None]
    requested_at: int | None
    submitted_at: int | None
    confirmed_at: int | None
    tx_hash: str | None
    block: int | None
    gas: int | None
    error: str | None

    @classmethod
    def of(cls, r: dict[str, Any]) -> Settlement:
        fields = {k: v for k, v in r.items() if k not in ("balance_a", "balance_b")}
        return cls(**fields, balances=[amount(r["balance_a"]), amount(r["balance_b"])])


class ParticipantBalance(BaseModel):
    currency: str
    channels: int
    deposited: Amount
    sent: Amount
    received: Amount
    locked: Amount
    balance: Amount


class _Page(BaseModel):
    model_config = ConfigDict(json_schema_extra={"description": "one page; `next` is the URL of the next one "
                                                                "(null: this is the last)"})
    next: str | None = Field(None, description="the next page's URL (null: the last page)")
    cursor: str | None = Field(None, description="the next page's cursor (give it as ?cursor=)")


class ChannelPage(_Page):
    items: list[Channel]


class PaymentPage(_Page):
    items: list[Payment]


class SettlementPage(_Page):
    items: list[Settlement]


class ParticipantBalances(BaseModel):
    """A participant's totals per currency, summed over its channels."""

    address: str
    items: list[ParticipantBalance]


class RouteHop(BaseModel):
    channel_id: str
    source: str = Field(alias="from")
    target: str = Field(alias="to")
    amount: Amount = Field(description="what crosses this channel (and is locked on it)")
    fee: Amount = Field(description="what the hop's forwarder keeps (0 on the payer's own first hop)")
    expiry: int = Field(description="unix seconds at which this hop's lock expires")

    model_config = {"populate_by_name": True}


class RouteOut(BaseModel):
    path: list[str]
    total_fee: Amount
    total_amount: Amount = Field(description="what the payer sends: the amount plus every fee")
    hops: list[RouteHop]

    @classmethod
    def of(cls, r: Any) -> RouteOut:
        return cls(path=list(r.path), total_fee=str(r.total_fee), total_amount=str(r.total_amount),
                   hops=[RouteHop(channel_id=h.channel_id, source=h.source, target=h.target, amount=str(h.amount),
                                  fee=str(h.fee), expiry=h.expiry) for h in r.hops])


class Routes(BaseModel):
    currency: str
    amount: Amount
    items: list[RouteOut]


class Health(BaseModel):
    status: str = Field(examples=["ok"])


class Check(BaseModel):
    ok: bool
    detail: str
    seconds: float


class Readiness(BaseModel):
    status: str = Field(examples=["ready", "unready"])
    checks: dict[str, Check]
    failed: list[str]
