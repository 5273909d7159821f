"""The dashboard's pages: each reads the read models (``services.read_store()``) and renders a Jinja2
template; the live page's script reads the API's own ``/v1/events``. Nothing here writes.

Tables are filtered, sorted and paged here, in Python, over the rows a page needs: amounts are
stored as decimal text (they exceed 64 bits), so the database cannot order them as numbers.
"""

from __future__ import annotations

import json
import math
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from markupsafe import Markup, escape
from starlette.concurrency import run_in_threadpool

from domain.money import format_amount, parse_amount
from infrastructure.dashboard.sources import DashboardSources
from projections.balances import CHANNELS
from projections.channel_graph import GraphChannel, graph_channels
from projections.history import PAYMENTS
from projections.settlements import SETTLEMENTS

HERE = Path(__file__).resolve().parent
STATIC_DIR = HERE / "static"
TEMPLATES = Jinja2Templates(directory=str(HERE / "templates"))

PER_PAGE = 25
MAX_PER_PAGE = 200
HISTORY_PAGE = 100
LIVE_ROWS = 50
STATUSES = ("open", "settling", "closed")
CURRENCIES = ("ETH", "BTC")
# ?sort= keys of the channels table -> the row's sort value
SORTS: dict[str, Any] = {
    "channel": lambda r: r["channel_id"],
    "currency": lambda r: (r["currency"], r["channel_id"]),
    "status": lambda r: (STATUSES.index(r["status"]) if r["status"] in STATUSES else 9, r["channel_id"]),
    "deposits": lambda r: ((r["deposit_a"] or 0) + (r["deposit_b"] or 0), r["channel_id"]),
    "balance_a": lambda r: (r["balance_a"] or 0, r["channel_id"]),
    "balance_b": lambda r: (r["balance_b"] or 0, r["channel_id"]),
    "locked": lambda r: ((r["locked_a"] or 0) + (r["locked_b"] or 0), r["channel_id"]),
    "sequence": lambda r: (r["sequence"] or 0, r["channel_id"]),
    "checkpoint": lambda r: (r["confirmed_sequence"] or 0, r["checkpoint_sequence"] or 0, r["channel_id"]),
    "opened": lambda r: (r["opened_at"] or 0, r["channel_id"]),
}
LIVE_TYPES = ("payment.accepted", "payment.rejected", "control.rejected", "checkpoint.requested",
              "checkpoint.confirmed", "settlement.requested", "settlement.transaction", "dispute.requested",
              "channel.closed")


# ---------------------------------------------------------------------- formatting (Jinja filters)
def amount(value: Any, currency: str | None) -> Markup:
    """Human units with the exact smallest-unit value in ``title``."""
    if value is None:
        return Markup('<span class="muted">–</span>')
    try:
        human = format_amount(int(value), currency or "")
        label = f"{human} {currency}"
    except (ValueError, TypeError, KeyError):
        label = str(value)
    return Markup('<span class="amt" title="{} (smallest unit)">{}</span>').format(str(value), label)


def _as_datetime(value: Any) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value.astimezone(UTC)
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC)
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)


def when(value: Any) -> Markup:
    """``<time datetime>`` in ISO UTC."""
    dt = _as_datetime(value)
    if dt is None:
        return Markup('<span class="muted">–</span>')
    iso = dt.isoformat(timespec="seconds").replace("+00:00", "Z")
    return Markup('<time datetime="{}">{}</time>').format(iso, iso.replace("T", " "))


def short(value: Any, n: int = 10) -> Markup:
    """A hash or address cut to ``n`` characters, the whole in ``title``."""
    if value is None:
        return Markup('<span class="muted">–</span>')
    text = str(value)
    if len(text) <= n + 2:
        return Markup('<code>{}</code>').format(text)
    return Markup('<code title="{}">{}…</code>').format(text, text[:n])


TEMPLATES.env.filters.update(amount=amount, when=when, short=short)


# ---------------------------------------------------------------------- queries
def _scalar(store: Any, sql: str, params: tuple[Any, ...] = ()) -> Any:
    rows = store._execute(sql, params)
    return rows[0][0] if rows else None


def _iso(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat()


@dataclass
class Totals:
    channels: dict[str, int]
    payments: int
    last_minute: int
    checkpoints_confirmed: int
    gas: int
    settlements_confirmed: int
    per_minute: list[tuple[datetime, int]]  # the last hour, oldest first

    @property
    def channels_total(self) -> int:
        return sum(self.channels.values())


def totals(store: Any, now: datetime | None = None) -> Totals:
    now = (now or datetime.now(UTC)).astimezone(UTC)
    ph = store.placeholder
    by_status = {s: 0 for s in STATUSES}
    for status, count in store._execute(f"SELECT status, COUNT(*) FROM {CHANNELS.name} GROUP BY status"):
        by_status[status] = int(count)
    payments = int(_scalar(store, f"SELECT COUNT(*) FROM {PAYMENTS.name}") or 0)
    minute_ago = _iso(now - timedelta(minutes=1))
    last_minute = int(_scalar(store, f"SELECT COUNT(*) FROM {PAYMENTS.name} WHERE recorded_at >= {ph}",
                              (minute_ago,)) or 0)
    hour_start = (now - timedelta(minutes=59)).replace(second=0, microsecond=0)
    # recorded_at is ISO 8601 in UTC: its first 16 characters are the minute
    buckets = {hour_start + timedelta(minutes=i): 0 for i in range(60)}
    for minute, count in store._execute(
            f"SELECT substr(recorded_at, 1, 16), COUNT(*) FROM {PAYMENTS.name} WHERE recorded_at >= {ph} "
            f"GROUP BY substr(recorded_at, 1, 16)", (_iso(hour_start),)):
        dt = _as_datetime(minute)
        if dt is not None and dt in buckets:
            buckets[dt] = int(count)
    checkpoints = int(_scalar(store, f"SELECT COUNT(*) FROM {SETTLEMENTS.name} WHERE kind = {ph} AND state = {ph}",
                              ("checkpoint", "confirmed")) or 0)
    settled = int(_scalar(store, f"SELECT COUNT(*) FROM {SETTLEMENTS.name} WHERE kind = {ph} AND state = {ph}",
                          ("settlement", "confirmed")) or 0)
    gas = int(_scalar(store, f"SELECT SUM(gas) FROM {SETTLEMENTS.name}") or 0)
    return Totals(by_status, payments, last_minute, checkpoints, gas, settled, sorted(buckets.items()))


def throughput_svg(per_minute: list[tuple[datetime, int]], width: int = 600, height: int = 120) -> Markup:
    """Payments per minute as an inline SVG bar chart, labelled for screen readers."""
    peak = max((c for _, c in per_minute), default=0)
    top = max(peak, 1)
    n = max(len(per_minute), 1)
    bar = width / n
    parts = [f'<svg class="chart" viewBox="0 0 {width} {height + 20}" role="img" '
             f'aria-labelledby="chart-title" preserveAspectRatio="none">',
             f'<title id="chart-title">Payments per minute over the last hour, at most {peak}</title>',
             f'<line x1="0" y1="{height}" x2="{width}" y2="{height}" class="axis"/>']
    for i, (minute, count) in enumerate(per_minute):
        h = height * count / top
        label = f"{minute.strftime('%H:%M')}Z: {count}"
        parts.append(f'<rect x="{i * bar + 1:.1f}" y="{height - h:.1f}" width="{max(bar - 2, 1):.1f}" '
                     f'height="{h:.1f}"><title>{escape(label)}</title></rect>')
    if per_minute:
        first, last = per_minute[0][0], per_minute[-1][0]
        parts.append(f'<text x="0" y="{height + 15}">{first.strftime("%H:%M")}Z</text>')
        parts.append(f'<text x="{width}" y="{height + 15}" text-anchor="end">{last.strftime("%H:%M")}Z</text>')
    parts.append(f'<text x="{width}" y="12" text-anchor="end">peak {peak}/min</text></svg>')
    return Markup("".join(parts))


def latency_svg(samples: list[Any], width: int = 600, height: int = 120) -> Markup:
    """The nodes' batch latency p50 and p99 (ms) per sample as two lines, labelled for screen readers."""
    points = [s for s in samples if s.p99_ms is not None]
    if not points:
        return Markup("")
    top = max(max(s.p99_ms for s in points), 1.0)
    t0, t1 = points[0].at, max(points[-1].at, points[0].at + 1)

    def xy(s: Any, v: float) -> str:
        return f"{width * (s.at - t0) / (t1 - t0):.1f},{height - height * v / top:.1f}"

    p50 = " ".join(xy(s, s.p50_ms or 0.0) for s in points)
    p99 = " ".join(xy(s, s.p99_ms) for s in points)
    last = points[-1]
    title = (f"Node batch latency over the last {len(points)} samples: now p50 {last.p50_ms:.1f} ms, "
             f"p99 {last.p99_ms:.1f} ms, at most {top:.1f} ms")
    start, end = (datetime.fromtimestamp(t, UTC).strftime("%H:%M:%S") for t in (t0, t1))
    return Markup(
        f'<svg class="chart latency" viewBox="0 0 {width} {height + 20}" role="img" aria-labelledby="latency-title" '
        f'preserveAspectRatio="none"><title id="latency-title">{escape(title)}</title>'
        f'<line x1="0" y1="{height}" x2="{width}" y2="{height}" class="axis"/>'
        f'<polyline class="p99" points="{p99}"><title>p99</title></polyline>'
        f'<polyline class="p50" points="{p50}"><title>p50</title></polyline>'
        f'<text x="0" y="{height + 15}">{start}Z</text>'
        f'<text x="{width}" y="{height + 15}" text-anchor="end">{end}Z</text>'
        f'<text x="{width}" y="12" text-anchor="end">p99 {last.p99_ms:.1f} ms · p50 {last.p50_ms:.1f} ms</text></svg>')


def _short_addr(a: str) -> str:
    return f"{a[:6]}…{a[-4:]}" if len(a) > 12 else a


def network_svg(channels: list[GraphChannel], size: int = 420, route: list[str] | None = None,
                route_parties: list[str] | None = None) -> Markup:
    """Parties on a circle, one line per pair of parties with channels, capacities in the line's title;
    the channels of ``route`` (channel ids) and its parties drawn highlighted."""
    on_route = set(route or [])
    hops = set(route_parties or [])
    parties = sorted({p for ch in channels for p in ch.participants})
    if not parties:
        return Markup("")
    c, radius = size / 2, size / 2 - 60
    pos = {}
    for i, p in enumerate(parties):
        angle = 2 * math.pi * i / len(parties) - math.pi / 2
        pos[p] = (c + radius * math.cos(angle), c + radius * math.sin(angle))
    parts = [f'<svg class="graph" viewBox="0 0 {size} {size}" role="img" aria-labelledby="graph-title">',
             f'<title id="graph-title">{len(parties)} parties and {len(channels)} channels</title>']
    for ch in channels:
        (x1, y1), (x2, y2) = pos[ch.participants[0]], pos[ch.participants[1]]
        label = (f"{ch.channel_id} ({ch.status}): {_short_addr(ch.ab.source)}→{_short_addr(ch.ab.target)} "
                 f"{format_amount(ch.ab.capacity or 0, ch.currency)} {ch.currency}, "
                 f"{_short_addr(ch.ba.source)}→{_short_addr(ch.ba.target)} "
                 f"{format_amount(ch.ba.capacity or 0, ch.currency)} {ch.currency}")
        cls = f"edge {escape(ch.status)}" + (" route" if ch.channel_id in on_route else "")
        parts.append(f'<line class="{cls}" data-channel="{escape(ch.channel_id)}" x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" '
                     f'y2="{y2:.1f}"><title>{escape(label)}</title></line>')
    for p, (x, y) in pos.items():
        parts.append(f'<g class="node{" route" if p in hops else ""}" data-party="{escape(p)}"><circle cx="{x:.1f}" cy="{y:.1f}" r="9"><title>{escape(p)}</title></circle>'
                     f'<text x="{x:.1f}" y="{y - 14:.1f}" text-anchor="middle">{escape(_short_addr(p))}</text></g>')
    parts.append("</svg>")
    return Markup("".join(parts))


def _channel_id(text: str) -> str | None:
    try:
        return str(uuid.UUID(text))
    except ValueError:
        return None


def channel_rows(store: Any, *, status: str | None, participant: str | None, currency: str | None,
                 sort: str, page: int, per: int) -> tuple[list[dict[str, Any]], int]:
    """One page of the channels table and how many channels match."""
    where = {}
    if status:
        where["status"] = status
    if currency:
        where["currency"] = currency.upper()
    rows = store.select(CHANNELS, where or None)
    if participant:
        who = participant.strip().lower()
        rows = [r for r in rows if who in (r["participant_a"].lower(), r["participant_b"].lower())]
    key = sort.lstrip("-")
    rows.sort(key=SORTS.get(key, SORTS["channel"]), reverse=sort.startswith("-"))
    return rows[(page - 1) * per: page * per], len(rows)


def history_rows(store: Any, channel: str, after: int, limit: int) -> list[dict[str, Any]]:
    ph = store.placeholder
    sql = (f"SELECT {', '.join(PAYMENTS.column_names)} FROM {PAYMENTS.name} WHERE channel_id = {ph} "
           f"AND sequence > {ph} ORDER BY sequence LIMIT {int(limit) + 1}")
    return [store._row(PAYMENTS, r) for r in store._execute(sql, (channel, after))]


def latest_payments(store: Any, limit: int = LIVE_ROWS) -> list[dict[str, Any]]:
    sql = (f"SELECT {', '.join(PAYMENTS.column_names)} FROM {PAYMENTS.name} "
           f"ORDER BY recorded_at DESC, sequence DESC LIMIT {int(limit)}")
    return [store._row(PAYMENTS, r) for r in store._execute(sql)]


def latest_settlements(store: Any, limit: int = LIVE_ROWS) -> list[dict[str, Any]]:
    sql = (f"SELECT {', '.join(SETTLEMENTS.column_names)} FROM {SETTLEMENTS.name} "
           f"ORDER BY COALESCE(confirmed_at, submitted_at, requested_at, 0) DESC LIMIT {int(limit)}")
    return [store._row(SETTLEMENTS, r) for r in store._execute(sql)]


def _currencies(store: Any, channels: set[str]) -> dict[str, str]:
    out = {}
    for cid in channels:
        row = store.load(CHANNELS, (cid,))
        if row is not None:
            out[cid] = row["currency"]
    return out


def find_routes(chans: list[GraphChannel], source: str, target: str, amount: str,
                currency: str | None) -> tuple[list[Any], str | None, str | None]:
    """Candidate routes over the graph read model (what ``GET /v1/routes`` answers) and their currency,
    or why there is none.
    ``amount`` in the currency's human units ("0.25") as the form takes it."""
    from domain.addresses import parse_eth_address
    from domain.errors import ParsecError
    from infrastructure.routing.pathfinder import Pathfinder

    try:
        payer, payee = parse_eth_address(source.strip()), parse_eth_address(target.strip())
        finder = Pathfinder(chans)
        cur = finder.currency_for(payer, currency)
        value = parse_amount(amount.strip(), cur)
        return finder.routes(payer, payee, value, now=int(time.time()), k=3, currency=cur), None, cur
    except (ParsecError, ValueError) as err:
        return [], f"{type(err).__name__}: {err}", currency


# ---------------------------------------------------------------------- the router
def dashboard_router(services: Any) -> APIRouter:
    router = APIRouter(prefix="/dashboard", include_in_schema=False)

    def render(request: Request, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
        return TEMPLATES.TemplateResponse(request, name, context, status_code=status_code)

    sources = services.dashboard or DashboardSources()

    @router.get("/", response_class=HTMLResponse)
    async def overview(request: Request) -> HTMLResponse:
        t = await run_in_threadpool(lambda: totals(services.read_store()))
        group = await run_in_threadpool(sources.group) if sources.group is not None else None
        sampler = sources.latency
        samples = sampler.samples() if sampler is not None else []
        return render(request, "overview.html", page="overview", totals=t, chart=throughput_svg(t.per_minute),
                      group=group, latency=latency_svg(samples), samples=samples, sampler=sampler)

    @router.get("/channels", response_class=HTMLResponse)
    async def channels(
        request: Request,
        sort: str = "channel",
        status: str | None = None,
        participant: str | None = None,
        currency: str | None = None,
        page: int = Query(1, ge=1),
        per: int = Query(PER_PAGE, ge=1, le=MAX_PER_PAGE),
    ) -> HTMLResponse:
        status = status or None
        currency = currency or None
        participant = (participant or "").strip() or None
        if sort.lstrip("-") not in SORTS:
            sort = "channel"
        rows, total = await run_in_threadpool(lambda: channel_rows(
            services.read_store(), status=status, participant=participant, currency=currency, sort=sort,
            page=page, per=per))
        pages = max(1, math.ceil(total / per))
        params = {k: v for k, v in (("status", status), ("participant", participant), ("currency", currency),
                                    ("per", per if per != PER_PAGE else None)) if v}

        def url(**change: Any) -> str:
            q = {**params, "sort": sort, "page": page, **change}
            q = {k: v for k, v in q.items() if v not in (None, "") and not (k == "page" and v == 1)
                 and not (k == "sort" and v == "channel")}
            from urllib.parse import urlencode
            return "/dashboard/channels" + (f"?{urlencode(q)}" if q else "")

        return render(request, "channels.html", page="channels", rows=rows, total=total, pages=pages,
                      current=page, sort=sort, status=status, participant=participant, currency=currency,
                      statuses=STATUSES, currencies=CURRENCIES, url=url)

    @router.get("/channels/{channel_id}", response_class=HTMLResponse)
    async def channel(request: Request, channel_id: str, after: int = Query(0, ge=0)) -> HTMLResponse:
        cid = _channel_id(channel_id)

        def load() -> tuple[Any, list[dict[str, Any]], list[dict[str, Any]], dict[str, Any] | None]:
            store = services.read_store()
            row = store.load(CHANNELS, (cid,)) if cid else None
            if row is None:
                return None, [], [], None
            history = history_rows(store, cid, after, HISTORY_PAGE)
            previous = None
            if after > 0:  # the row before this page: the first one's link is checked against it
                previous = store.load(PAYMENTS, (cid, after))
            sets = store.select(SETTLEMENTS, {"channel_id": cid}, order_by=("sequence", "kind"))
            return row, history, sets, previous

        row, history, sets, previous = await run_in_threadpool(load)
        if row is None:
            return render(request, "missing.html", status_code=404, page="channels", channel_id=channel_id)
        onchain, chain_error = None, None
        if sources.onchain is not None:
            try:
                onchain = await run_in_threadpool(sources.onchain, uuid.UUID(cid))
            except Exception as err:  # unreachable node, unknown channel: the page says so, the rest shows
                chain_error = f"{type(err).__name__}: {err}"
        more = len(history) > HISTORY_PAGE
        history = history[:HISTORY_PAGE]
        links = []
        prior = previous
        for p in history:
            if prior is None:
                ok = p["sequence"] == 1 and (p["previous_hash"] is None or set(p["previous_hash"][2:]) <= {"0"})
            else:
                ok = p["previous_hash"] == prior["transaction_hash"]
            links.append(ok)
            prior = p
        return render(request, "channel.html", page="channels", ch=row, history=list(zip(history, links,
                      strict=True)), settlements=sets, after=after,
                      next_after=history[-1]["sequence"] if more else None, onchain=onchain,
                      chain_error=chain_error, chain_configured=sources.onchain is not None)

    @router.get("/live", response_class=HTMLResponse)
    async def live(request: Request) -> HTMLResponse:
        def load() -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, str]]:
            store = services.read_store()
            pays, sets = latest_payments(store), latest_settlements(store)
            return pays, sets, _currencies(store, {r["channel_id"] for r in sets})

        pays, sets, currencies = await run_in_threadpool(load)
        return render(request, "live.html", page="live", payments=pays, settlements=sets, currencies=currencies,
                      types=",".join(LIVE_TYPES), currency_json=json.dumps(
                          {**currencies, **{p["channel_id"]: p["currency"] for p in pays}}))

    @router.get("/network", response_class=HTMLResponse)
    async def network(request: Request, currency: str | None = None, source: str | None = Query(None, alias="from"),
                      target: str | None = Query(None, alias="to"), amount: str | None = None) -> HTMLResponse:
        currency = currency or None
        chans = await run_in_threadpool(lambda: graph_channels(services.read_store(), currency))
        parties = sorted({p for ch in chans for p in ch.participants})
        routes, route_error, route_currency = [], None, currency
        if source and target and amount:
            routes, route_error, route_currency = find_routes(chans, source, target, amount, currency)
        best = routes[0] if routes else None
        return render(request, "network.html", page="network", channels=chans, parties=parties,
                      svg=network_svg(chans, route=[h.channel_id for h in best.hops] if best else None,
                                      route_parties=list(best.path) if best else None),
                      currency=currency, currencies=CURRENCIES, routes=routes, route_error=route_error,
                      source=source or "", target=target or "", amount=amount or "",
                      route_currency=route_currency)

    @router.get("/audit", response_class=HTMLResponse)
    async def audit(request: Request, show: str = "all") -> HTMLResponse:
        report, why = await run_in_threadpool(sources.audit)
        rows = (report or {}).get("channels", [])
        if show == "violations":
            rows = [r for r in rows if not r.get("ok")]
        return render(request, "audit.html", page="audit", report=report, why=why, rows=rows, show=show,
                      path=sources.audit_report)

    return router
