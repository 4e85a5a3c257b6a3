// The store dashboard: one server-sent event stream; each `snapshot` redraws the boxes, the event feed, the
// alerts with their evidence and the shrink report. Ages ("12 s ago") are recomputed every second.
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  const live = $("live");
  const SILENT_S = 90;  // a running box that has not sent a heartbeat for this long is shown as silent
  let boxes = [];
  const opened = new Set();  // alerts whose evidence is unfolded stay so across redraws

  function el(tag, text, cls) {
    const e = document.createElement(tag);
    if (text != null) e.textContent = text;
    if (cls) e.className = cls;
    return e;
  }
  function age(iso) {
    if (!iso) return "never";
    const s = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
    return s < 90 ? `${s.toFixed(0)} s ago` : s < 5400 ? `${(s / 60).toFixed(0)} min ago` : new Date(iso).toLocaleString();
  }
  function state(b) {
    if (b.state === "running" && b.heartbeat && (Date.now() - Date.parse(b.heartbeat)) / 1000 > SILENT_S) return "silent";
    return b.state === "running" ? "online" : b.state;
  }
  function drawBoxes() {
    const body = $("boxes").tBodies[0];
    body.replaceChildren();
    $("no-boxes").hidden = boxes.length > 0;
    for (const b of boxes) {
      const tr = el("tr");
      tr.dataset.box = `${b.store}/${b.box}`;
      const st = state(b);
      const badge = el("span", st, `state ${st}`);
      badge.dataset.state = st;
      const cells = [b.store, b.box, badge, age(b.heartbeat), b.fps ?? "–", b.outbox_depth ?? "–", b.dropped_frames ?? "–",
        b.gaps ? `${b.gaps} (${b.missing} events)` : "none", b.bundle_id ? b.bundle_id.slice(0, 12) : "–"];
      for (const c of cells) { const td = el("td"); td.append(c instanceof Node ? c : String(c)); tr.append(td); }
      body.append(tr);
    }
  }
  function describe(e) {
    const who = e.shopper != null ? ` by shopper ${e.shopper}` : "";
    if (e.kind === "action") return `${e.action.replace(/_/g, " ")} (${((Date.parse(e.end_ts) - Date.parse(e.start_ts)) / 1000).toFixed(1)} s)${who}`;
    if (e.kind === "pick") return `pick: ${e.quantity}× ${e.sku}${who}`;
    if (e.kind === "putback") return `put-back: ${e.quantity}× ${e.sku}${who}`;
    if (e.kind === "visit") return `visit of shopper ${e.shopper}: ${e.dwell_s.toFixed(0)} s at the shelf, ${(e.products || []).length} products`;
    if (e.kind === "basket") return `basket of shopper ${e.shopper}: ${Object.entries(e.items).map(([k, n]) => `${n}× ${k}`).join(", ") || "empty"}`;
    return e.kind;
  }
  function drawFeed(feed) {
    $("feed").replaceChildren(...feed.map((e) => {
      const li = el("li", `${new Date(e.ts).toLocaleTimeString()} · ${e.store}/${e.box} · ${describe(e)}`);
      li.dataset.kind = e.kind;
      return li;
    }));
  }
  function drawAlerts(alerts) {
    $("no-alerts").hidden = alerts.length > 0;
    $("alerts").replaceChildren(...alerts.map((a) => {
      const li = el("li");
      li.append(el("strong", `${a.sku} unit ${a.unit} not scanned`), ` · ${a.store}/${a.lane} · transaction ${a.transaction_id} · confidence ${a.confidence.toFixed(2)}`);
      const d = el("details");
      d.open = opened.has(a.alert_id);
      d.addEventListener("toggle", () => { if (d.open) opened.add(a.alert_id); else opened.delete(a.alert_id); });
      d.append(el("summary", "evidence"));
      d.append(el("div", `open ${a.opened ? new Date(a.opened).toLocaleTimeString() : "?"} – closed ${a.closed ? new Date(a.closed).toLocaleTimeString() : "?"}; scanned: ${a.scanned.map((s) => `${s.quantity}× ${s.sku}`).join(", ") || "nothing"}`));
      const ul = el("ul");
      for (const e of a.evidence) ul.append(el("li", `${new Date(e.ts).toLocaleTimeString()} ${e.kind}${e.shopper != null ? " by shopper " + e.shopper : ""} (confidence ${(e.confidence ?? 0).toFixed(2)}) · ${e.event_id}`));
      d.append(ul);
      li.append(d);
      return li;
    }));
  }
  function drawShrink(shrink) {
    const stores = Object.keys(shrink);
    if (!stores.length) return;
    const out = [];
    for (const s of stores) {
      out.push(el("h3", s));
      const t = el("table");
      t.innerHTML = "<thead><tr><th>SKU</th><th>picked</th><th>put back</th><th>taken</th><th>sold</th><th>unexplained</th></tr></thead>";
      const tb = el("tbody");
      for (const r of shrink[s]) {
        const tr = el("tr");
        for (const v of [r.sku, r.picked, r.put_back, r.taken, r.sold, r.unexplained]) tr.append(el("td", String(v)));
        if (r.unexplained > 0) tr.className = "bad";
        tb.append(tr);
      }
      t.append(tb);
      out.push(t);
    }
    $("shrink").replaceChildren(...out);
  }

  const source = new EventSource("/web/api/dashboard/stream");
  source.addEventListener("snapshot", (m) => {
    const data = JSON.parse(m.data);
    boxes = data.boxes;
    drawBoxes(); drawFeed(data.feed); drawAlerts(data.alerts); drawShrink(data.shrink);
  });
  source.onopen = () => { live.textContent = "live"; live.className = "state online"; };
  source.onerror = () => { live.textContent = "reconnecting…"; live.className = "state stopped"; };
  setInterval(drawBoxes, 1000);
})();
