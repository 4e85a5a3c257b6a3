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
  // A product as a person reads it: the catalogue's name, with its code beside it for staff (the code alone where
  // central knows no name).
  function product(sku, name) { return name && name !== sku ? `${name} (${sku})` : sku; }
  function age(iso) {
    if (!iso) return "never";
    const s = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
    return s < 90 ? `${s.toFixed(0)} s ago` : s < 5400 ? `${(s / 60).toFixed(0)} min ago` : new Date(iso).toLocaleString();
  }
  function state(b) {
    if (b.state === "running" && b.heartbeat && (Date.now() - Date.parse(b.heartbeat)) / 1000 > SILENT_S) return "silent";
    return b.state === "running" ? "online" : b.state;
  }
  function zonesLink(b) {  // the box's zone editor (central/web/zones.py)
    const a = el("a", "zones");
    a.href = `/zones/${encodeURIComponent(b.store)}/${encodeURIComponent(b.box)}`;
    return a;
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
      // An offline box's last word is the broker's (its will): when it went, not a heartbeat.
      const heard = st === "offline" ? `went offline ${age(b.heartbeat)}` : st === "stopped" ? `stopped ${age(b.heartbeat)}` : age(b.heartbeat);
      const cells = [b.store, b.box, badge, heard, rate(b), b.outbox_depth ?? "–", b.dropped_frames ?? "–",
        b.gaps ? `${b.gaps} (${b.missing} events)` : "none", bundleCell(b), zonesLink(b)];
      for (const c of cells) { const td = el("td"); td.append(c instanceof Node ? c : String(c)); tr.append(td); }
      body.append(tr);
      if (b.unfamiliar_warning) {  // central decided: the share stayed high for its configured minutes
        const warn = el("tr", null, "unfamiliar-warning");
        warn.dataset.box = `${b.store}/${b.box}`;
        const td = el("td", `${b.store}/${b.box}: ${b.unfamiliar_warning} (${Math.round(100 * (b.unfamiliar_share ?? 0))} % of the last minute's frames; since ${new Date(b.unfamiliar_since).toLocaleTimeString()})`);
        td.colSpan = cells.length;
        warn.append(td);
        body.append(warn);
      }
    }
  }
  // The camera's rate and what is left of the box's time: a box paced at 30 fps that could do 120 is 75 % spare.
  function rate(b) {
    if (b.camera_fps == null) return b.fps == null ? "–" : `${b.fps} (processing)`;  // an older agent says only that
    const spare = b.busy == null ? "" : ` · ${Math.round(100 * (1 - b.busy))} % spare`;
    return `${b.camera_fps.toFixed(b.camera_fps < 10 ? 1 : 0)} fps${spare}`;
  }
  function bundleCell(b) {
    const span = el("span", b.bundle_id ? b.bundle_id.slice(0, 12) : "–", "bundle");
    span.title = b.bundle_id || "";
    const notes = [];
    if (b.staged_bundle) notes.push(`staged ${b.staged_bundle.slice(0, 12)}`);
    if (b.switch && b.switch_bundle && b.switch_bundle !== b.bundle_id) notes.push(`${b.switch.replace("_", " ")} ${b.switch_bundle.slice(0, 12)}`);
    if (!notes.length) return span;
    const wrap = el("span");
    wrap.append(span, el("small", ` (${notes.join(", ")})`, "hint"));
    if (b.problem) wrap.title = b.problem;
    return wrap;
  }
  const ROLLOUT_STATES = ["running", "staged", "sent", "pending", "failed", "reverted", "cancelled"];
  function drawRollouts(rollouts) {
    $("rollouts-card").hidden = !rollouts.length;
    $("rollouts").replaceChildren(...rollouts.map((r) => {
      const div = el("div", null, "rollout");
      div.dataset.rollout = r.rollout_id;
      div.dataset.state = r.state;
      const head = el("h3", `rollout ${r.rollout_id}: ${r.kind} ${r.target.slice(0, 16)} · `);
      head.append(el("span", r.state, `state ${r.state === "done" ? "online" : r.state === "running" ? "running" : "stopped"}`));
      div.append(head);
      if (r.reason) div.append(el("p", r.reason, "reason"));
      const done = r.counts.running, failed = r.counts.failed;
      const bar = el("progress");
      bar.max = r.total; bar.value = done;
      div.append(bar, el("span", ` ${done} of ${r.total} running it, ${failed} failed · ` + ROLLOUT_STATES.filter((s) => r.counts[s] && s !== "running" && s !== "failed").map((s) => `${r.counts[s]} ${s}`).join(", "), "progress"));
      const t = el("table", null, "rollout-boxes");
      t.innerHTML = "<thead><tr><th>box</th><th>state</th><th>sent</th><th>finished</th><th>reason</th></tr></thead>";
      const tb = el("tbody");
      for (const b of r.boxes) {
        const tr = el("tr");
        tr.dataset.box = `${b.store}/${b.box}`;
        tr.dataset.state = b.state;
        if (b.state === "failed") tr.className = "bad";
        for (const v of [`${b.store}/${b.box}${b.canary ? " (canary)" : ""}`, b.state, b.sent_at ? new Date(b.sent_at).toLocaleTimeString() : "–", b.done_at ? new Date(b.done_at).toLocaleTimeString() : "–", b.reason || ""]) tr.append(el("td", v));
        tb.append(tr);
      }
      t.append(tb);
      div.append(t);
      return div;
    }));
  }
  function describe(e) {
    const who = (e.shopper != null ? ` by shopper ${e.shopper}` : "") + (e.familiar === false ? " (unfamiliar footage: not sure)" : "");
    if (e.kind === "action" && e.sku) return `${e.action.replace(/_/g, " ")} ${product(e.sku, e.name)} (${((Date.parse(e.end_ts) - Date.parse(e.start_ts)) / 1000).toFixed(1)} s)${who}`;
    if (e.kind === "action") return `${e.action.replace(/_/g, " ")} (${((Date.parse(e.end_ts) - Date.parse(e.start_ts)) / 1000).toFixed(1)} s)${who}`;
    if (e.kind === "pick") return `pick: ${e.quantity}× ${product(e.sku, e.name)}${who}`;
    if (e.kind === "putback") return `put-back: ${e.quantity}× ${product(e.sku, e.name)}${who}`;
    if (e.kind === "visit") {
      const handled = (e.products || []).filter((p) => p.picked || p.put_back).map((p) => product(p.sku, p.name));
      return `visit of shopper ${e.shopper}: ${e.dwell_s.toFixed(0)} s at the shelf, ${(e.products || []).length} products` + (handled.length ? ` (took or put back ${handled.join(", ")})` : "");
    }
    if (e.kind === "basket") return `basket of shopper ${e.shopper}: ${Object.entries(e.items).map(([k, n]) => `${n}× ${product(k, (e.names || {})[k])}`).join(", ") || "empty"}`;
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
      const item = product(a.sku, a.name);
      const what = a.kind === "unsure" ? `box unsure: ${item} unit ${a.unit} may not have been scanned (only events from unfamiliar footage counted it; review the clip)` : `${item} unit ${a.unit} not scanned`;
      li.dataset.kind = a.kind;
      li.append(el("strong", what), ` · ${a.store}/${a.lane} · transaction ${a.transaction_id} · confidence ${a.confidence.toFixed(2)}`);
      const d = el("details");
      d.open = opened.has(a.alert_id);
      d.addEventListener("toggle", () => { if (d.open) opened.add(a.alert_id); else opened.delete(a.alert_id); });
      d.append(el("summary", "evidence"));
      d.append(el("div", `open ${a.opened ? new Date(a.opened).toLocaleTimeString() : "?"} – closed ${a.closed ? new Date(a.closed).toLocaleTimeString() : "?"}; scanned: ${a.scanned.map((s) => `${s.quantity}× ${product(s.sku, s.name)}`).join(", ") || "nothing"}`));
      const ul = el("ul");
      for (const e of a.evidence) ul.append(el("li", `${new Date(e.ts).toLocaleTimeString()} ${e.kind}${e.shopper != null ? " by shopper " + e.shopper : ""} (confidence ${(e.confidence ?? 0).toFixed(2)}${e.familiar === false ? ", unfamiliar footage" : ""}) · ${e.event_id}`));
      d.append(ul);
      li.append(d);
      li.append(verdictOf(a));
      return li;
    }));
  }
  // A manager's verdict: confirmed or wrong, with a note (a wrong alert enters the review queue); the clip the box
  // kept of the cited picks opens in the editor.
  const notes = {};  // what is being typed survives a redraw
  function verdictOf(a) {
    const div = el("div", null, "verdict");
    div.dataset.verdict = a.verdict;
    const badge = el("span", a.verdict, `state ${a.verdict === "wrong" ? "stopped" : a.verdict === "confirmed" ? "online" : ""}`);
    badge.className += " verdict-badge";
    div.append(badge);
    if (a.note) div.append(` “${a.note}”`);
    const note = el("input");
    note.type = "text"; note.placeholder = "note"; note.maxLength = 1000; note.className = "verdict-note";
    note.value = notes[a.alert_id] ?? "";
    note.addEventListener("input", () => { notes[a.alert_id] = note.value; });
    div.append(" ", note);
    for (const v of a.verdict === "open" ? ["confirmed", "wrong"] : ["open"]) {
      const b = el("button", v === "open" ? "reopen" : v === "confirmed" ? "confirm" : "wrong");
      b.type = "button"; b.dataset.set = v;
      b.addEventListener("click", () => {
        fetch("/web/api/alerts/verdict", { method: "POST", headers: { "Content-Type": "application/json" },
          body: JSON.stringify({ alert_id: a.alert_id, verdict: v, note: note.value }) })
          .then((r) => { if (r.ok) { delete notes[a.alert_id]; } else r.json().then((e) => alert(e.detail)); });
      });
      div.append(" ", b);
    }
    if (a.clip) {
      const f = el("form", null, "open-clip");
      f.method = "post"; f.action = a.clip.open;
      f.append(el("button", "open the clip in the editor"));
      div.append(" ", f);
    }
    return div;
  }
  function drawVerdicts(counts) {
    for (const span of document.querySelectorAll("#verdicts [data-verdict]")) span.textContent = String(counts[span.dataset.verdict] ?? 0);
  }
  function drawShrink(shrink) {
    const stores = Object.keys(shrink);
    if (!stores.length) return;
    const out = [];
    for (const s of stores) {
      out.push(el("h3", s));
      const t = el("table");
      t.innerHTML = "<thead><tr><th>product</th><th>picked</th><th>put back</th><th>taken</th><th>sold</th><th>unexplained</th><th>unsure picks / put-backs</th></tr></thead>";
      const tb = el("tbody");
      for (const r of shrink[s]) {
        const tr = el("tr");
        for (const v of [product(r.sku, r.name), r.picked, r.put_back, r.taken, r.sold, r.unexplained, `${r.picked_unsure} / ${r.put_back_unsure}`]) tr.append(el("td", String(v)));
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
    drawBoxes(); drawFeed(data.feed); drawAlerts(data.alerts); drawShrink(data.shrink); drawRollouts(data.rollouts || []); drawVerdicts(data.verdicts || {});
    // The behaviour charts (insights.js) follow the same stream: a new visit redraws them at once.
    document.dispatchEvent(new CustomEvent("shelfwatch:feed", { detail: data.feed }));
  });
  // The token was revoked: the stream has ended, and the login page says why.
  source.addEventListener("revoked", () => { source.close(); location.href = "/login?next=/dashboard&refused=1"; });
  source.onopen = () => { live.textContent = "live"; live.className = "state online"; };
  source.onerror = () => { live.textContent = "reconnecting…"; live.className = "state stopped"; };
  setInterval(drawBoxes, 1000);
})();
