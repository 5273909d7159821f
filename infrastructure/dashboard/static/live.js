// The live page: events from the API's own /v1/events (server-sent), added at the top of their table.
// EventSource reconnects by itself with Last-Event-ID (no gap, no repeat); the last id is also kept in
// sessionStorage so that reloading the page resumes where it left off.
(function () {
  "use strict";
  var config = JSON.parse(document.getElementById("live-config").textContent);
  var currencies = config.currencies || {};
  var DECIMALS = { ETH: 18, BTC: 8 };
  var MAX_ROWS = 200;
  var status = document.getElementById("live-status");
  var KEY = "parsec.dashboard.live.lastEventId";

  function human(value, currency) {
    var d = DECIMALS[currency];
    if (value == null) return "–";
    if (d === undefined || !/^[0-9]+$/.test(value)) return String(value);
    var s = value.padStart(d + 1, "0");
    var whole = s.slice(0, s.length - d), frac = s.slice(s.length - d).replace(/0+$/, "");
    return (frac ? whole + "." + frac : whole) + " " + currency;
  }
  function el(tag, text, attrs) {
    var e = document.createElement(tag);
    if (text != null) e.textContent = text;
    for (var k in attrs || {}) e.setAttribute(k, attrs[k]);
    return e;
  }
  function code(value, n) {
    if (value == null) return el("span", "–");
    var s = String(value);
    return el("code", s.length > n + 2 ? s.slice(0, n) + "…" : s, { title: s });
  }
  function amount(value, currency) {
    return el("span", human(value, currency), { "class": "amt", title: value + " (smallest unit)" });
  }
  function time(seconds) {
    var d = seconds ? new Date(seconds * 1000) : new Date();
    var iso = d.toISOString().replace(/\.\d+Z$/, "Z");
    // an accepted payment's event carries no time: it is when this page received it
    return el("time", iso.replace("T", " "), seconds ? { datetime: iso } : { datetime: iso, title: "received by this page" });
  }
  function channelCell(id) {
    var th = el("th", null, { scope: "row" });
    if (!id) { th.textContent = "–"; return th; }
    var a = el("a", null, { href: "/dashboard/channels/" + id });
    a.appendChild(el("code", id.slice(0, 8)));
    th.appendChild(a);
    return th;
  }
  function add(tableId, cells, attrs) {
    var body = document.querySelector("#" + tableId + " tbody");
    var ph = body.querySelector("tr.placeholder");
    if (ph) ph.remove();
    var tr = el("tr", null, attrs);
    tr.className = "fresh";
    cells.forEach(function (c) {
      if (c instanceof HTMLTableCellElement) { tr.appendChild(c); return; }
      var td = el("td");
      if (c instanceof Node) td.appendChild(c); else td.textContent = c == null ? "–" : String(c);
      tr.appendChild(td);
    });
    body.insertBefore(tr, body.firstChild);
    if (window.parsecLocalise) window.parsecLocalise(tr);
    while (body.rows.length > MAX_ROWS) body.deleteRow(body.rows.length - 1);
  }
  function currencyOf(channel) {
    if (!channel || currencies[channel] !== undefined) return Promise.resolve(currencies[channel]);
    return fetch("/v1/channels/" + channel).then(function (r) { return r.ok ? r.json() : null; })
      .then(function (ch) { if (ch) currencies[channel] = ch.currency; return ch ? ch.currency : undefined; })
      .catch(function () { return undefined; });
  }

  function onPayment(d) {
    currencyOf(d.channel).then(function (cur) {
      var who = el("span");
      who.appendChild(code(d.buyer, 8)); who.appendChild(document.createTextNode(" → ")); who.appendChild(code(d.supplier, 8));
      add("live-payments", [time(null), channelCell(d.channel), d.sequence, who, amount(d.price, cur), code(d.transaction_hash, 14)],
          { "data-channel": d.channel || "", "data-sequence": d.sequence });
    });
  }
  function onRefusal(kind, d) {
    add("live-refusals", [time(d.at), channelCell(d.channel), kind === "payment.rejected" ? "payment" : "control",
                          el("strong", d.reason), d.message], { "data-reason": d.reason || "" });
  }
  function onSettlement(kind, d) {
    var state = d.state || kind.split(".")[1];
    add("live-settlements", [channelCell(d.channel), d.kind ? d.kind + " transaction" : kind, d.sequence != null ? d.sequence : d.to_sequence,
                             state, code(d.tx_hash, 14), d.gas_used != null ? Number(d.gas_used).toLocaleString("en") : "–"],
        { "data-channel": d.channel || "", "data-event": kind });
  }

  if (!window.EventSource) return;
  var last = null;
  try { last = sessionStorage.getItem(KEY); } catch (e) { /* storage off */ }
  var url = "/v1/events?types=" + encodeURIComponent(config.types) + (last ? "&cursor=" + encodeURIComponent(last) : "");
  var source = new EventSource(url);
  function remember(ev) { if (ev.lastEventId) { try { sessionStorage.setItem(KEY, ev.lastEventId); } catch (e) { /* */ } } }
  source.onopen = function () { status.textContent = "Connected to /v1/events: new events appear at the top."; status.dataset.state = "open"; };
  source.onerror = function () { status.textContent = "Reconnecting to /v1/events…"; status.dataset.state = "reconnecting"; };
  source.onmessage = remember;  // the first message and keep-alives carry only an id
  config.types.split(",").forEach(function (type) {
    source.addEventListener(type, function (ev) {
      remember(ev);
      var d = JSON.parse(ev.data);
      if (type === "payment.accepted") onPayment(d);
      else if (type.indexOf("rejected") > 0) onRefusal(type, d);
      else onSettlement(type, d);
    });
  });
})();
