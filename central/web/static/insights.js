// The dashboard's shopper-behaviour charts, drawn from central's /insights endpoints (the caller's token decides
// which stores: a store's token its own, a chain-wide one every store): the engagement funnel per SKU with its
// put-back rate, traffic and dwell by hour over the last 24 hours, and shelf attention without sales. Plain
// divs sized in percent: no chart library, nothing fetched from elsewhere. Redrawn when the dashboard's live
// stream brings a new visit, and every minute.
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  const REFRESH_MS = 60000;

  function el(tag, text, cls) {
    const e = document.createElement(tag);
    if (text != null) e.textContent = text;
    if (cls) e.className = cls;
    return e;
  }
  function pct(v) { return v == null ? "–" : `${Math.round(v * 100)}%`; }
  function secs(v) { return v == null ? "–" : `${v.toFixed(1)} s`; }
  async function get(path, params) {
    const r = await fetch(`${path}?${new URLSearchParams(params)}`, { headers: { Accept: "application/json" } });
    if (!r.ok) throw new Error(`${path}: ${r.status}`);
    return r.json();
  }
  function bar(value, max, cls, label) {
    const row = el("div", null, "bar-row");
    const track = el("div", null, "bar-track");
    const fill = el("div", null, `bar ${cls}`);
    fill.style.width = `${max ? (100 * value) / max : 0}%`;
    track.append(fill);
    row.append(el("span", label, "bar-label"), track, el("span", String(value), "bar-value"));
    return row;
  }

  function drawFunnel(rows) {
    const box = $("funnel");
    box.replaceChildren();
    $("no-insights").hidden = rows.length > 0;
    const bySku = new Map();
    for (const r of rows) {  // one row per SKU (and store, for a chain-wide token): add them up per SKU
      const s = bySku.get(r.sku) || { sku: r.sku, name: r.name, reached: 0, inspected: 0, picked: 0, kept: 0, picked_units: 0,
        put_back_units: 0, kept_s: r.inspect_median_kept_s, back_s: r.inspect_median_put_back_s };
      for (const k of ["reached", "inspected", "picked", "kept", "picked_units", "put_back_units"]) s[k] += r[k];
      bySku.set(r.sku, s);
    }
    const skus = [...bySku.values()].sort((a, b) => b.reached - a.reached || a.sku.localeCompare(b.sku));
    const max = Math.max(1, ...skus.map((s) => s.reached));
    for (const s of skus) {
      const card = el("div", null, "funnel-sku");
      card.dataset.sku = s.sku;
      const back = s.picked_units ? s.put_back_units / s.picked_units : null;
      const title = el("h3", s.name || s.sku);
      if (s.name && s.name !== s.sku) title.append(" ", el("span", s.sku, "code"));
      card.append(title,
        el("p", "shoppers (visits) who…", "hint"),
        bar(s.reached, max, "reached", "reached for it"), bar(s.inspected, max, "inspected", "inspected it"),
        bar(s.picked, max, "picked", "picked it"), bar(s.kept, max, "kept", "kept it"),
        el("p", `units: ${s.picked_units} picked, ${s.put_back_units} put back (${pct(back)}) · inspected ` +
          `${secs(s.kept_s)} when kept, ${secs(s.back_s)} when put back`, "hint units"));
      box.append(card);
    }
  }

  function drawTraffic(rows, start) {
    // 24 hourly columns ending with the current hour; an hour nobody stopped in is an empty column.
    const box = $("traffic");
    box.replaceChildren();
    const byHour = new Map();
    for (const r of rows) {
      const key = Math.floor(Date.parse(r.bucket) / 3600000);
      const h = byHour.get(key) || { shoppers: 0, dwell: r.dwell_median_s };
      h.shoppers += r.shoppers;
      byHour.set(key, h);
    }
    const first = Math.floor(start.getTime() / 3600000) + 1;
    const max = Math.max(1, ...[...byHour.values()].map((h) => h.shoppers));
    for (let key = first; key < first + 24; key++) {
      const h = byHour.get(key) || { shoppers: 0, dwell: null };
      const when = new Date(key * 3600000);
      const col = el("div", null, "column");
      col.dataset.hour = when.toISOString();
      col.title = `${when.toLocaleString()}: ${h.shoppers} shoppers, dwell median ${secs(h.dwell)}`;
      const fill = el("div", null, "column-fill");
      fill.style.height = `${(100 * h.shoppers) / max}%`;
      col.append(el("span", h.shoppers ? String(h.shoppers) : "", "column-value"), fill,
        // Hours of the day, every third one labelled: 24 labels side by side do not fit a phone.
        el("span", when.getHours() % 3 === 0 ? `${String(when.getHours()).padStart(2, "0")}:00` : "", "column-label"));
      box.append(col);
    }
  }

  function drawAttention(rows) {
    const flagged = rows.filter((r) => r.without_sales);
    $("attention").replaceChildren(...(flagged.length ? flagged : rows).slice(0, 8).map((r) => {
      const where = [r.store, r.box, r.zone].filter(Boolean).join(" / ");
      const li = el("li", `${where}: ${r.inspect_shelf_s.toFixed(0)} s of looking at the shelf, ${r.picked_units} picked` +
        (r.without_sales ? " — attention without sales" : ""));
      li.className = r.without_sales ? "flag" : "";
      return li;
    }));
  }

  async function refresh() {
    const end = new Date();
    const start = new Date(end - 86400000);
    const day = { start: start.toISOString(), end: end.toISOString() };
    try {
      const [funnel, traffic, attention] = await Promise.all([
        get("/insights/funnel", { bucket: "total" }),
        get("/insights/traffic", { ...day, bucket: "hour" }),
        get("/insights/attention", { bucket: "total", by: "zone" }),
      ]);
      drawFunnel(funnel);
      drawTraffic(traffic, start);
      drawAttention(attention);
      $("insights").dataset.loaded = "1";
    } catch (err) {
      $("no-insights").hidden = false;
      $("no-insights").textContent = `The behaviour numbers could not be loaded (${err.message}).`;
    }
  }
  refresh();
  setInterval(refresh, REFRESH_MS);
  // The dashboard's live stream (dashboard.js) says when events arrive: a visit not seen before changes the funnel,
  // the traffic and the attention, so they are fetched again at once rather than at the next minute.
  const visits = new Set();
  let first = true;
  document.addEventListener("shelfwatch:feed", (e) => {
    let fresh = false;
    for (const ev of e.detail) if (ev.kind === "visit" && !visits.has(ev.event_id)) { visits.add(ev.event_id); fresh = true; }
    if (fresh && !first) refresh();
    first = false;
  });
})();
