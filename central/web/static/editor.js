// The labels editor: a layer under the box's timeline on the result page, where a person corrects what the box saw
// (its own lanes; the timeline above stays the prediction). Keyboard first, as in Label Studio's TimelineLabels
// and CVAT: the playhead steps frame by frame, a key gives a class, brackets set an edge to the playhead, and the
// mouse drags edges, marks and new segments. Every version is saved to central (PUT .../labels), which keeps them
// all; Verify says the latest is right. Keys: see KEYS below (also listed on the page).
"use strict";
(function () {
  const root = document.getElementById("editor");
  const video = document.getElementById("player");
  if (!root || !video) return;
  const api = `/web/api/analyses/${root.dataset.job}`;
  const a = JSON.parse(document.getElementById("analysis").textContent);
  const FRAMES = Math.max(1, a.frames), FPS = a.fps;
  const CLASSES = ["no_action", "reach_to_shelf", "retract_from_shelf", "hand_in_shelf", "inspect_product", "inspect_shelf"];
  const NEW_LENGTH = 15; // frames of a segment added with N: half a second at 30 fps, then its edges are set
  const KEYS = [
    ["← →", "one frame back / on (Shift: ten)"], ["Space", "play / pause"],
    ["Tab / Shift+Tab", "select the next / previous segment"], ["Home / End", "the playhead to its first / last frame (nothing selected: the clip's)"], ["1-5", "give the selected segment that class"],
    ["0 or Delete", "no action: remove the selected segment (Delete also removes a pick or a timestamp)"],
    ["[ ]", "move the selected segment's start / end (or a pick, a timestamp) to the playhead"],
    ["S", "split the selected segment at the playhead"], ["M / Shift+M", "merge it with the next / previous one"],
    ["N", "new segment at the playhead (in the selected lane)"], ["P / B", "add a pick / a put-back at the playhead"],
    ["W", "mark the selected pick or put-back wrong (again: not wrong)"],
    ["T", "timestamp mode: 1-5 and 0 put one label at the playhead"], ["+ / -", "zoom in / out around the playhead"],
    ["Ctrl+Z / Ctrl+Shift+Z", "undo / redo"], ["Ctrl+S", "save a new version"],
  ];
  let info = null, base = null, prediction = [], segs = [], changes = [], stamps = [];
  let mode = "segments", sel = null, lane = 1, cur = 0, view = [0, FRAMES], dirty = false, nextId = 1;
  const undos = [], redos = [];
  const el = (tag, cls, text) => { const e = document.createElement(tag); if (cls) e.className = cls; if (text != null) e.textContent = text; return e; };
  const label = (c) => c.replace(/_/g, " ");
  const clamp = (v, lo, hi) => Math.max(lo, Math.min(hi, v));

  // -- the page's parts -------------------------------------------------------------------------------------------
  const bar = el("div", "ed-bar");
  const title = el("strong", null, "Labels");
  const state = el("span", "state");
  state.id = "ed-state";
  const version = el("span", "hint");
  version.id = "ed-version";
  const where = el("span", "ed-frame");
  where.id = "ed-frame";
  const modeBox = el("label", "ed-mode");
  const modeInput = el("input");
  modeInput.type = "checkbox";
  modeInput.id = "ed-timestamps";
  modeBox.append(modeInput, " timestamp mode (T)");
  const button = (id, text, cls) => { const b = el("button", cls, text); b.type = "button"; b.id = id; return b; };
  const undoB = button("ed-undo", "Undo", "plain"), redoB = button("ed-redo", "Redo", "plain");
  const saveB = button("ed-save", "Save"), verifyB = button("ed-verify", "Verify"), deleteB = button("ed-delete", "Delete clip", "danger");
  const downloads = el("span", "ed-downloads");
  bar.append(title, state, version, where, modeBox, undoB, redoB, saveB, verifyB, deleteB, downloads);
  const lanes = el("div", "ed-lanes");
  lanes.id = "ed-lanes";
  lanes.tabIndex = 0;
  const message = el("p", "ed-message");
  message.id = "ed-message";
  message.setAttribute("role", "status");
  const form = buildForm();
  const keys = el("details", "ed-keys");
  keys.append(el("summary", null, "Keys"));
  const table = el("table");
  KEYS.forEach(([k, what]) => { const tr = el("tr"); tr.append(el("td", "key", k), el("td", null, what)); table.append(tr); });
  keys.append(table);
  root.append(bar, lanes, form, message, keys);

  function buildForm() {
    const f = el("form", "ed-change");
    f.id = "ed-change";
    f.hidden = true;
    f.innerHTML = `<select id="ed-kind" aria-label="pick or put-back"><option value="pick">pick</option><option value="putback">put-back</option></select>
      <select id="ed-sku" aria-label="product"></select>
      <label>quantity <input id="ed-qty" type="number" min="1" max="99" value="1"></label>
      <label>frame <input id="ed-at" type="number" min="0" max="${FRAMES - 1}"></label>
      <label>shopper <input id="ed-shopper" type="number" min="0" placeholder="–"></label>
      <button type="submit" id="ed-add">Add</button> <button type="button" id="ed-cancel" class="plain">Cancel</button>`;
    f.addEventListener("submit", (e) => { e.preventDefault(); addChange(); });
    f.querySelector("#ed-cancel").addEventListener("click", () => { f.hidden = true; lanes.focus(); });
    f.addEventListener("keydown", (e) => { if (e.key === "Escape") { e.preventDefault(); f.hidden = true; lanes.focus(); } });
    return f;
  }
  function say(text, bad) { message.textContent = text; message.classList.toggle("error", !!bad); }

  // -- loading and saving ---------------------------------------------------------------------------------------
  async function call(method, url, body) {
    const r = await fetch(url, { method, headers: body ? { "Content-Type": "application/json" } : {}, body: body ? JSON.stringify(body) : undefined });
    const data = r.status === 204 ? null : await r.json().catch(() => ({ detail: r.statusText }));
    if (!r.ok) throw new Error(data && data.detail ? data.detail : `HTTP ${r.status}`);
    return data;
  }
  function grouped(ledger) {
    const out = new Map();
    for (const e of ledger) {
      const kind = e.kind === "take" ? "pick" : "putback";
      const key = `${kind}|${e.sku}|${e.frame}|${e.shopper ?? ""}`;
      if (out.has(key)) out.get(key).quantity += 1;
      else out.set(key, { kind, sku: e.sku, frame: e.frame, shopper: e.shopper ?? null, quantity: 1 });
    }
    return [...out.values()];
  }
  const same = (x, y) => x.kind === y.kind && x.sku === y.sku && x.frame === y.frame && (x.shopper ?? null) === (y.shopper ?? null) && x.quantity === y.quantity;
  async function load() {
    try {
      info = await call("GET", `${api}/review`);
    } catch (err) {
      root.hidden = false;
      root.replaceChildren(el("p", "hint", `Corrections: ${err.message}.`));
      return;
    }
    base = await call("GET", `${api}/labels`);
    prediction = grouped((await call("GET", `${api}/labels?version=0`)).ledger || []);
    segs = (base.segments || []).map((s) => ({ id: nextId++, label: s.label, start: s.start, end: s.end, shopper: s.shopper ?? null }));
    const current = grouped(base.ledger || []);
    changes = current.map((c) => ({ ...c, id: nextId++, wrong: false, predicted: prediction.some((p) => same(p, c)) }));
    // What the box said that the labels no longer hold: shown struck out, as marked wrong.
    prediction.filter((p) => !current.some((c) => same(p, c))).forEach((p) => changes.push({ ...p, id: nextId++, wrong: true, predicted: true }));
    stamps = (base.timestamps || []).map((t) => ({ id: nextId++, frame: t.frame, label: t.label }));
    mode = stamps.length ? "timestamps" : "segments";
    undos.length = 0; redos.length = 0; dirty = false; sel = null;
    root.hidden = false;
    fillCatalog();
    render();
    // `#frame=N` (and `&to=M`) opens the editor at a stretch: the playhead at N, the lanes zoomed to N..M.
    const at = new URLSearchParams(location.hash.slice(1));
    if (at.has("frame")) {
      const from = clamp(+at.get("frame") || 0, 0, FRAMES - 1), to = clamp(+at.get("to") || 0, from + 1, FRAMES);
      if (at.has("to")) { const pad = Math.round((to - from) / 4); view = [Math.max(0, from - pad), Math.min(FRAMES, to + pad)]; }
      video.addEventListener("loadedmetadata", () => seek(from), { once: true });
      seek(from);
    }
  }
  function fillCatalog() {
    const select = form.querySelector("#ed-sku");
    select.replaceChildren(...info.catalog.map((s) => { const o = el("option", null, `${s.name} (${s.sku})`); o.value = s.sku; return o; }));
  }
  function body() {
    const ledger = [];
    for (const c of changes) {
      if (c.wrong) continue;
      for (let i = 0; i < c.quantity; i++) ledger.push({ frame: c.frame, sku: c.sku, kind: c.kind === "pick" ? "take" : "return", ...(c.shopper != null ? { shopper: c.shopper } : {}) });
    }
    const out = { ...base, ledger, baskets: [] };
    delete out.frame_classes; // central works them out from the segments (or timestamps)
    out.segments = mode === "segments" ? segs.slice().sort((x, y) => x.start - y.start || x.end - y.end)
      .map((s) => ({ label: s.label, start: s.start, end: s.end, ...(s.shopper != null ? { shopper: s.shopper } : {}) })) : [];
    out.timestamps = mode === "timestamps" ? stamps.slice().sort((x, y) => x.frame - y.frame).map((t) => ({ frame: t.frame, label: t.label })) : [];
    return out;
  }
  async function save() {
    if (!info.can_edit) { say(info.why_not, true); return false; }
    try {
      info = await call("PUT", `${api}/labels`, body());
      base = await call("GET", `${api}/labels`);
      dirty = false;
      say(`Saved as version ${info.latest}.`);
      render();
      return true;
    } catch (err) { say(`Not saved: ${err.message}`, true); return false; }
  }
  async function verify() {
    if (dirty && !(await save())) return;
    try {
      info = await call("POST", `${api}/verify?version=${info.latest}`);
      base = await call("GET", `${api}/labels`);
      say(`Verified: version ${info.verified_version} is what this clip shows. It is training data now.`);
      render();
    } catch (err) { say(`Not verified: ${err.message}`, true); }
  }
  async function remove() {
    if (!confirm("Delete this clip, its video and every labels version? This cannot be undone.")) return;
    try { await call("DELETE", api); dirty = false; location.href = "/analyse"; } catch (err) { say(`Not deleted: ${err.message}`, true); }
  }

  // -- editing ---------------------------------------------------------------------------------------------------
  const snapshot = () => JSON.stringify({ segs, changes, stamps, mode });
  function change(fn) {
    const before = snapshot();
    const result = fn();
    if (result === false) return;
    undos.push(before); redos.length = 0; dirty = true;
    say("");
    render();
  }
  function restore(text) { ({ segs, changes, stamps, mode } = JSON.parse(text)); dirty = true; render(); }
  function undo() { if (undos.length) { redos.push(snapshot()); restore(undos.pop()); } }
  function redo() { if (redos.length) { undos.push(snapshot()); restore(redos.pop()); } }
  const selected = (type) => (sel && sel.type === type ? (type === "seg" ? segs : type === "change" ? changes : stamps).find((x) => x.id === sel.id) : null);
  function relabel(c) {
    const s = selected("seg");
    if (!s) { say("Select a segment first (click it, or Tab)."); return; }
    if (c === 0) { change(() => { segs = segs.filter((x) => x !== s); sel = null; }); return; }
    change(() => { s.label = CLASSES[c]; lane = c; });
  }
  function stamp(c) {
    change(() => {
      stamps = stamps.filter((t) => t.frame !== cur);
      const t = { id: nextId++, frame: cur, label: CLASSES[c] };
      stamps.push(t);
      sel = { type: "stamp", id: t.id };
    });
  }
  function edge(which) {
    const s = selected("seg"), c = selected("change"), t = selected("stamp");
    if (c) { change(() => { c.frame = cur; }); return; }
    if (t) { change(() => { stamps = stamps.filter((x) => x === t || x.frame !== cur); t.frame = cur; }); return; }
    if (!s) { say("Select a segment first."); return; }
    if (which === "start" && cur >= s.end) { say(`The start must stay before the end (frame ${s.end - 1}).`); return; }
    if (which === "end" && cur < s.start) { say(`The end must stay after the start (frame ${s.start}).`); return; }
    change(() => { if (which === "start") s.start = cur; else s.end = cur + 1; });
  }
  function split() {
    const s = selected("seg");
    if (!s) { say("Select a segment first."); return; }
    if (!(s.start < cur && cur < s.end)) { say("Put the playhead inside the segment to split it there."); return; }
    change(() => { const t = { ...s, id: nextId++, start: cur }; s.end = cur; segs.push(t); });
  }
  function merge(forward) {
    const s = selected("seg");
    if (!s) { say("Select a segment first."); return; }
    const others = segs.filter((x) => x !== s);
    const ofClass = others.filter((x) => x.label === s.label && (forward ? x.start >= s.start : x.start <= s.start));
    const touching = others.filter((x) => (forward ? x.start === s.end : x.end === s.start));
    const pick = (list) => list.sort((x, y) => (forward ? x.start - y.start : y.start - x.start))[0];
    const other = pick(ofClass) || pick(touching);
    if (!other) { say(`No segment ${forward ? "after" : "before"} it to merge with.`); return; }
    change(() => { s.start = Math.min(s.start, other.start); s.end = Math.max(s.end, other.end); segs = segs.filter((x) => x !== other); });
  }
  function add(c, start, end) {
    c = c || lane || 1;
    if (start == null) {
      const next = segs.filter((x) => x.label === CLASSES[c] && x.start > cur).map((x) => x.start);
      start = cur; end = Math.min(FRAMES, cur + NEW_LENGTH, ...next);
      if (segs.some((x) => x.label === CLASSES[c] && x.start <= cur && cur < x.end)) { say(`The playhead is inside a ${label(CLASSES[c])} segment already.`); return; }
    }
    if (end <= start) return;
    change(() => { const s = { id: nextId++, label: CLASSES[c], start, end, shopper: null }; segs.push(s); sel = { type: "seg", id: s.id }; lane = c; });
  }
  function remove1() {
    const s = selected("seg"), c = selected("change"), t = selected("stamp");
    if (s) change(() => { segs = segs.filter((x) => x !== s); sel = null; });
    else if (t) change(() => { stamps = stamps.filter((x) => x !== t); sel = null; });
    else if (c) wrong(c);
  }
  function wrong(c) {
    c = c || selected("change");
    if (!c) { say("Select a pick or a put-back first."); return; }
    if (c.predicted) change(() => { c.wrong = !c.wrong; });
    else change(() => { changes = changes.filter((x) => x !== c); sel = null; });
  }
  function openForm(kind) {
    form.hidden = false;
    form.querySelector("#ed-kind").value = kind;
    form.querySelector("#ed-at").value = cur;
    const s = selected("seg") || segs.find((x) => x.start <= cur && cur < x.end && x.shopper != null);
    form.querySelector("#ed-shopper").value = s && s.shopper != null ? s.shopper : "";
    form.querySelector("#ed-sku").focus();
  }
  function addChange() {
    const q = +form.querySelector("#ed-qty").value, at = +form.querySelector("#ed-at").value, who = form.querySelector("#ed-shopper").value;
    if (!(q >= 1) || !(at >= 0 && at < FRAMES)) { say(`A quantity of at least 1, at a frame from 0 to ${FRAMES - 1}.`, true); return; }
    change(() => {
      const c = { id: nextId++, kind: form.querySelector("#ed-kind").value, sku: form.querySelector("#ed-sku").value, quantity: Math.round(q),
        frame: Math.round(at), shopper: who === "" ? null : +who, wrong: false, predicted: false };
      changes.push(c); sel = { type: "change", id: c.id };
    });
    form.hidden = true;
    lanes.focus();
  }
  function cycle(step) {
    const order = segs.slice().sort((x, y) => x.start - y.start || CLASSES.indexOf(x.label) - CLASSES.indexOf(y.label));
    if (!order.length) return;
    const i = order.findIndex((x) => sel && sel.type === "seg" && x.id === sel.id);
    const s = order[i < 0 ? (step > 0 ? 0 : order.length - 1) : (i + step + order.length) % order.length];
    sel = { type: "seg", id: s.id }; lane = CLASSES.indexOf(s.label);
    seek(s.start);
  }
  function zoom(factor) {
    const len = clamp(Math.round((view[1] - view[0]) * factor), Math.min(FRAMES, 30), FRAMES);
    const start = clamp(Math.round(cur - len / 2), 0, FRAMES - len);
    view = [start, start + len];
    render();
  }

  // -- the playhead ----------------------------------------------------------------------------------------------
  function seek(f) {
    cur = clamp(Math.round(f), 0, FRAMES - 1);
    video.currentTime = Math.min(video.duration || Infinity, cur / FPS + 0.001);
    follow();
    render();
  }
  function follow() {
    const len = view[1] - view[0];
    if (cur < view[0] || cur >= view[1]) { const start = clamp(cur - Math.round(len / 4), 0, FRAMES - len); view = [start, start + len]; return true; }
    return false;
  }
  function tick() {
    if (!video.paused) {
      cur = clamp(Math.floor(video.currentTime * FPS + 1e-3), 0, FRAMES - 1);
      if (follow()) render(); else drawHead();
      requestAnimationFrame(tick);
    }
  }
  video.addEventListener("play", () => requestAnimationFrame(tick));
  video.addEventListener("seeked", () => {
    // Seeked elsewhere too (the video's own controls, a click on the box's timeline): the playhead follows.
    if (!video.paused || !info) return;
    const f = clamp(Math.floor(video.currentTime * FPS + 1e-3), 0, FRAMES - 1);
    if (f === cur) { drawHead(); return; }
    cur = f;
    if (follow()) render(); else drawHead();
  });

  // -- drawing ---------------------------------------------------------------------------------------------------
  const pct = (f) => `${(100 * (f - view[0])) / (view[1] - view[0])}%`;
  // Every track has the same place and width: the one drawn now answers (a drag outlives the element it began on).
  const frameAt = (_, x) => { const r = lanes.querySelector(".track").getBoundingClientRect(); return view[0] + ((x - r.left) / r.width) * (view[1] - view[0]); };
  function laneRow(name, kind, cls) {
    const row = el("div", `lane ed-lane ${kind}`);
    if (cls != null) row.dataset.class = CLASSES[cls];
    const track = el("div", "track");
    row.append(el("div", "lane-label", name), track);
    lanes.append(row);
    return track;
  }
  function render() {
    lanes.replaceChildren();
    root.dataset.mode = mode;
    root.dataset.frame = cur;
    modeInput.checked = mode === "timestamps";
    for (let c = 1; c < CLASSES.length; c++) {
      const track = laneRow(label(CLASSES[c]), "class", c);
      track.classList.toggle("current", lane === c && mode === "segments");
      trackEvents(track, c);
      segs.filter((s) => s.label === CLASSES[c] && s.end > view[0] && s.start < view[1]).forEach((s) => drawSeg(track, s));
    }
    const shelf = laneRow("picks & put-backs", "changes");
    changes.forEach((c) => { if (c.frame >= view[0] && c.frame < view[1]) drawMark(shelf, c); });
    trackEvents(shelf, null);
    if (mode === "timestamps") {
      const t = laneRow("timestamps", "stamps");
      trackEvents(t, null);
      stamps.forEach((s) => { if (s.frame >= view[0] && s.frame < view[1]) drawStamp(t, s); });
    }
    const head = el("div", "playhead ed-head");
    head.id = "ed-playhead";
    lanes.append(head);
    const axis = el("div", "axis");
    axis.append(el("span", null, `${(view[0] / FPS).toFixed(1)} s`), el("span", "end", `${(view[1] / FPS).toFixed(1)} s`));
    lanes.append(axis);
    state.textContent = info.state.replace("_", " ");
    state.dataset.state = info.state;
    state.className = `state ${info.state}`;
    const v = info.versions[info.versions.length - 1];
    version.textContent = info.latest ? `version ${info.latest}, saved by token ${v.saved_by} ${new Date(v.saved_at).toLocaleString()}` + (dirty ? " · unsaved changes" : "")
      : `the box's prediction (bundle ${info.bundle})` + (dirty ? " · unsaved changes" : "");
    downloads.replaceChildren();
    if (info.state === "verified") {
      downloads.append("verified labels: ", link(`${api}/verified/labels.json`, "JSON"), " · ", link(`${api}/verified/labels_label.mat`, "MERL .mat"));
    }
    saveB.disabled = !dirty || !info.can_edit;
    verifyB.disabled = !info.can_edit || (info.state === "verified" && !dirty);
    deleteB.hidden = info.state === "predicted";
    undoB.disabled = !undos.length; redoB.disabled = !redos.length;
    if (!info.can_edit) say(info.why_not);
    drawHead();
  }
  function link(href, text) { const x = el("a", null, text); x.href = href; x.download = ""; return x; }
  function drawHead() {
    const track = lanes.querySelector(".track");
    if (!track) return;
    const head = document.getElementById("ed-playhead");
    head.style.left = `${track.offsetLeft + ((cur - view[0] + 0.5) / (view[1] - view[0])) * track.offsetWidth}px`;
    root.dataset.frame = cur;
    where.textContent = `frame ${cur} / ${FRAMES} · ${(cur / FPS).toFixed(2)} s`;
  }
  function drawSeg(track, s) {
    const e = el("div", `ed-seg a-${s.label}` + (sel && sel.type === "seg" && sel.id === s.id ? " selected" : "") + (mode === "timestamps" ? " faded" : ""));
    e.style.left = pct(Math.max(s.start, view[0]));
    e.style.width = pct(view[0] + Math.min(s.end, view[1]) - Math.max(s.start, view[0]));
    Object.assign(e.dataset, { id: s.id, label: s.label, start: s.start, end: s.end });
    e.title = `${label(s.label)}: frames ${s.start}–${s.end - 1}` + (s.shopper != null ? `, shopper ${s.shopper}` : "");
    for (const which of ["start", "end"]) {
      const h = el("div", `ed-handle ${which}`);
      h.addEventListener("mousedown", (ev) => dragEdge(ev, track, s, which));
      e.append(h);
    }
    e.addEventListener("mousedown", (ev) => {
      if (ev.target !== e) return;
      ev.preventDefault(); ev.stopPropagation();
      sel = { type: "seg", id: s.id }; lane = CLASSES.indexOf(s.label);
      lanes.focus();
      seek(Math.round(clamp(frameAt(track, ev.clientX), s.start, s.end - 1)));
    });
    track.append(e);
  }
  function drawMark(track, c) {
    const e = el("div", `ed-mark ${c.kind}` + (c.wrong ? " wrong" : "") + (sel && sel.type === "change" && sel.id === c.id ? " selected" : ""),
      `${c.kind === "pick" ? "▼" : "▲"}${c.quantity > 1 ? c.quantity : ""}`);
    e.style.left = pct(c.frame + 0.5);
    Object.assign(e.dataset, { id: c.id, kind: c.kind, sku: c.sku, frame: c.frame, quantity: c.quantity, wrong: c.wrong });
    const name = (info.catalog.find((x) => x.sku === c.sku) || { name: c.sku }).name;
    e.title = `${c.kind === "pick" ? "pick" : "put-back"} of ${c.quantity}× ${name} at frame ${c.frame}` + (c.wrong ? " — marked wrong" : c.predicted ? "" : " — added");
    e.addEventListener("mousedown", (ev) => dragMark(ev, track, c, "change"));
    track.append(e);
  }
  function drawStamp(track, t) {
    const e = el("div", `ed-stamp a-${t.label}` + (sel && sel.type === "stamp" && sel.id === t.id ? " selected" : ""), String(CLASSES.indexOf(t.label)));
    e.style.left = pct(t.frame + 0.5);
    Object.assign(e.dataset, { id: t.id, frame: t.frame, label: t.label });
    e.title = `${label(t.label)} at frame ${t.frame}`;
    e.addEventListener("mousedown", (ev) => dragMark(ev, track, t, "stamp"));
    track.append(e);
  }
  function trackEvents(track, c) {
    // A click seeks; a drag along a class lane draws a new segment of that class.
    track.addEventListener("mousedown", (ev) => {
      if (ev.target !== track) return;
      ev.preventDefault();
      lanes.focus();
      const from = Math.round(frameAt(track, ev.clientX));
      if (c != null) lane = c;
      let to = from;
      const move = (m) => { to = Math.round(frameAt(track, m.clientX)); };
      const up = () => {
        window.removeEventListener("mousemove", move); window.removeEventListener("mouseup", up);
        if (c != null && mode === "segments" && Math.abs(to - from) >= 2) add(c, clamp(Math.min(from, to), 0, FRAMES - 1), clamp(Math.max(from, to), 1, FRAMES));
        else { sel = null; seek(from); }
      };
      window.addEventListener("mousemove", move); window.addEventListener("mouseup", up);
    });
  }
  function dragEdge(ev, track, s, which) {
    ev.preventDefault(); ev.stopPropagation();
    sel = { type: "seg", id: s.id };
    const before = snapshot();
    const move = (m) => {
      const f = Math.round(frameAt(track, m.clientX));
      if (which === "start") s.start = clamp(f, 0, s.end - 1); else s.end = clamp(f, s.start + 1, FRAMES);
      seek(which === "start" ? s.start : s.end - 1); // the frame at the edge, in the video
      say(`${which === "start" ? "Starts at" : "Ends after"} frame ${which === "start" ? s.start : s.end - 1}.`);
    };
    const up = () => {
      window.removeEventListener("mousemove", move); window.removeEventListener("mouseup", up);
      if (snapshot() !== before) { undos.push(before); redos.length = 0; dirty = true; }
      lanes.focus(); render();
    };
    window.addEventListener("mousemove", move); window.addEventListener("mouseup", up);
  }
  function dragMark(ev, track, item, type) {
    ev.preventDefault(); ev.stopPropagation();
    sel = { type, id: item.id };
    const before = snapshot();
    const move = (m) => { item.frame = clamp(Math.floor(frameAt(track, m.clientX)), 0, FRAMES - 1); seek(item.frame); };
    const up = () => {
      window.removeEventListener("mousemove", move); window.removeEventListener("mouseup", up);
      if (snapshot() !== before) { undos.push(before); redos.length = 0; dirty = true; }
      lanes.focus(); seek(item.frame);
    };
    window.addEventListener("mousemove", move); window.addEventListener("mouseup", up);
  }

  // -- keys ------------------------------------------------------------------------------------------------------
  document.addEventListener("keydown", (e) => {
    if (!info || root.hidden || e.target.closest("input, select, textarea") || !info.can_edit && !["ArrowLeft", "ArrowRight", " "].includes(e.key)) return;
    const ctrl = e.ctrlKey || e.metaKey, k = e.key;
    let handled = true;
    if (ctrl && (k === "z" || k === "Z")) (e.shiftKey ? redo : undo)();
    else if (ctrl && k === "y") redo();
    else if (ctrl && k === "s") save();
    else if (ctrl || e.altKey) handled = false;
    else if (k === "ArrowLeft" || k === "ArrowRight") { video.pause(); seek(cur + (k === "ArrowLeft" ? -1 : 1) * (e.shiftKey ? 10 : 1)); }
    else if (k === " ") { if (video.paused) video.play(); else { video.pause(); seek(Math.floor(video.currentTime * FPS + 1e-3)); } }
    else if (k === "Tab") cycle(e.shiftKey ? -1 : 1);
    else if (k === "Home" || k === "End") { const s = selected("seg"); video.pause(); seek(k === "Home" ? (s ? s.start : 0) : (s ? s.end - 1 : FRAMES - 1)); }
    else if (/^[0-5]$/.test(k)) (mode === "timestamps" ? stamp : relabel)(+k);
    else if (k === "Delete" || k === "Backspace") remove1();
    else if (k === "[") edge("start");
    else if (k === "]") edge("end");
    else if (k === "s" || k === "S") split();
    else if (k === "m" || k === "M") merge(!e.shiftKey);
    else if (k === "n" || k === "N") add();
    else if (k === "p" || k === "P") openForm("pick");
    else if (k === "b" || k === "B") openForm("putback");
    else if (k === "w" || k === "W") wrong();
    else if (k === "t" || k === "T") change(() => { mode = mode === "timestamps" ? "segments" : "timestamps"; sel = null; });
    else if (k === "+" || k === "=") zoom(0.5);
    else if (k === "-") zoom(2);
    else if (k === "Escape") { sel = null; form.hidden = true; render(); }
    else handled = false;
    if (handled) { e.preventDefault(); e.stopPropagation(); }
  }, true);
  modeInput.addEventListener("change", () => change(() => { mode = modeInput.checked ? "timestamps" : "segments"; sel = null; }));
  for (const [b, fn] of [[undoB, undo], [redoB, redo], [saveB, save], [verifyB, verify], [deleteB, remove]]) {
    b.addEventListener("click", () => { b.blur(); lanes.focus(); fn(); });
  }
  window.addEventListener("beforeunload", (e) => { if (dirty) { e.preventDefault(); e.returnValue = ""; } });
  window.addEventListener("resize", drawHead);
  load();
})();
