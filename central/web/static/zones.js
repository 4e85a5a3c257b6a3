// The zone editor: shelf zones (and their slots) drawn as polygons on the camera's picture. An SVG in the picture's
// own pixels lies over it; pointer events (mouse, pen, touch alike) draw, select and drag; every change is checked
// by the server (the box config's own geometry check) and shown in red with its reason; Save is refused until none
// is left. Keyboard: see the page's list of keys.
(() => {
  "use strict";
  const $ = (id) => document.getElementById(id);
  const SVG = "http://www.w3.org/2000/svg";
  const state = JSON.parse($("state").textContent);
  const api = `/web/api/zones/${state.store}/${state.box}`;
  const svg = $("canvas"), img = $("picture");
  let zones = state.zones.map((z) => ({ name: z.name, polygon: z.polygon.map((p) => [...p]), slots: (z.slots || []).map((s) => ({ sku: s.sku, polygon: s.polygon.map((p) => [...p]) })) }));
  let size = state.frame_size ? [...state.frame_size] : null;  // the picture's [width, height]
  let selected = null;  // {zone, slot (null: the zone itself), corner (null: the whole shape)}
  let drawing = null;  // {kind: "zone" | "slot", zone, points}
  let drag = null;  // {start, before, original}
  let problems = [], dirty = false;
  const undo = [], redo = [];

  // -- history ------------------------------------------------------------------------------------------------------
  const snapshot = () => JSON.stringify(zones);
  function remember(before) { undo.push(before ?? snapshot()); redo.length = 0; if (undo.length > 200) undo.shift(); }
  function changed() { dirty = true; render(); check(); }
  function restore(from, to) {
    if (!from.length) return;
    to.push(snapshot());
    zones = JSON.parse(from.pop());
    drawing = null;
    const still = selected && zones[selected.zone] && (selected.slot == null || zones[selected.zone].slots[selected.slot]);
    selected = still ? { ...selected, corner: null } : null;  // what was selected stays so, if it is still there
    changed();
  }

  // -- geometry on the page -------------------------------------------------------------------------------------------
  function toPicture(event) {
    const pt = svg.createSVGPoint();
    pt.x = event.clientX; pt.y = event.clientY;
    const p = pt.matrixTransform(svg.getScreenCTM().inverse());
    return [Math.round(p.x), Math.round(p.y)];
  }
  const scale = () => (size && svg.clientWidth ? size[0] / svg.clientWidth : 1);  // picture pixels per screen pixel
  const shape = (sel) => (sel.slot == null ? zones[sel.zone] : zones[sel.zone].slots[sel.slot]);
  function nearestEdge(polygon, p) {
    let best = 0, bestD = Infinity;
    polygon.forEach((a, i) => {
      const b = polygon[(i + 1) % polygon.length];
      const dx = b[0] - a[0], dy = b[1] - a[1];
      const t = Math.max(0, Math.min(1, ((p[0] - a[0]) * dx + (p[1] - a[1]) * dy) / (dx * dx + dy * dy || 1)));
      const d = Math.hypot(a[0] + t * dx - p[0], a[1] + t * dy - p[1]);
      if (d < bestD) { bestD = d; best = i; }
    });
    return best;
  }
  function freeName() {
    for (let i = zones.length + 1; ; i++) if (!zones.some((z) => z.name === `shelf-${i}`)) return `shelf-${i}`;
  }

  // -- drawing --------------------------------------------------------------------------------------------------------
  function el(name, attrs, parent) {
    const node = document.createElementNS(SVG, name);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
    parent.appendChild(node);
    return node;
  }
  const points = (polygon) => polygon.map((p) => p.join(",")).join(" ");
  const problemOf = (z, s) => problems.find((p) => p.zone === z && p.slot === s);

  function render() {
    renderCanvas();
    renderList();
    renderProblems();
  }

  function renderCanvas() {
    svg.replaceChildren();
    if (size) svg.setAttribute("viewBox", `0 0 ${size[0]} ${size[1]}`);
    svg.setAttribute("preserveAspectRatio", "none");
    const r = 7 * scale();
    zones.forEach((zone, z) => {
      const shapes = [[zone, z, null, "zone"], ...zone.slots.map((slot, s) => [slot, z, s, "slot"])];
      for (const [item, zi, si, kind] of shapes) {
        const isSel = selected && selected.zone === zi && selected.slot === si;
        const bad = problemOf(zi, si);
        const poly = el("polygon", { points: points(item.polygon), class: `${kind}${isSel ? " selected" : ""}${bad ? " invalid" : ""}` }, svg);
        poly.dataset.zone = zi; if (si != null) poly.dataset.slot = si;
        if (bad) el("title", {}, poly).textContent = bad.message;
        const [x, y] = item.polygon[0] || [0, 0];
        const label = el("text", { x: x + 6 * scale(), y: y + 18 * scale(), class: "label", "font-size": 14 * scale() }, svg);
        label.textContent = kind === "zone" ? item.name : skuName(item.sku);
      }
    });
    if (selected) {
      shape(selected).polygon.forEach((p, i) => {
        const c = el("circle", { cx: p[0], cy: p[1], r, class: `corner${selected.corner === i ? " first" : ""}` }, svg);
        c.dataset.corner = i;
      });
    }
    if (drawing && drawing.points.length) {
      el("polyline", { points: points(drawing.points), class: "drawing" }, svg);
      drawing.points.forEach((p, i) => el("circle", { cx: p[0], cy: p[1], r, class: `corner${i === 0 ? " first" : ""}` }, svg));
    }
    $("new-slot").disabled = !selected;
    $("delete").disabled = !selected;
    $("undo").disabled = !undo.length;
    $("redo").disabled = !redo.length;
    $("mode").textContent = drawing
      ? `Drawing a ${drawing.kind}: click or tap its corners; Enter or the first corner closes it, Escape cancels.`
      : "Select a zone, drag it or its corners. N: draw a zone, S: a slot in the selected zone.";
  }

  const skuName = (sku) => (state.catalogue.find((c) => c.sku === sku) || { name: sku }).name;

  function renderList() {
    const list = $("shapes");
    list.replaceChildren();
    zones.forEach((zone, z) => {
      const li = document.createElement("li");
      li.className = `${selected && selected.zone === z && selected.slot == null ? "selected" : ""}${problemOf(z, null) ? " invalid" : ""}`;
      const head = document.createElement("div");
      head.className = "shape-head";
      const name = document.createElement("input");
      name.value = zone.name; name.setAttribute("aria-label", `zone ${z + 1} name`); name.className = "zone-name";
      name.addEventListener("change", () => { remember(); zone.name = name.value.trim(); changed(); });
      name.addEventListener("focus", () => {  // the list is not redrawn here: that would take the focus away
        selected = { zone: z, slot: null, corner: null };
        renderCanvas();
        list.querySelectorAll(":scope > li").forEach((item, i) => item.classList.toggle("selected", i === z));
      });
      head.append(`zone ${z + 1}: `, name);
      li.appendChild(head);
      if (zone.slots.length) {
        const ol = document.createElement("ol");
        zone.slots.forEach((slot, s) => {
          const sli = document.createElement("li");
          sli.className = `${selected && selected.zone === z && selected.slot === s ? "selected" : ""}${problemOf(z, s) ? " invalid" : ""}`;
          const pick = document.createElement("select");
          pick.setAttribute("aria-label", `zone ${zone.name} slot ${s + 1} product`);
          for (const c of state.catalogue) pick.add(new Option(c.name, c.sku, false, c.sku === slot.sku));
          if (!state.catalogue.some((c) => c.sku === slot.sku)) pick.add(new Option(slot.sku, slot.sku, false, true));
          pick.addEventListener("change", () => { remember(); slot.sku = pick.value; changed(); });
          const headS = document.createElement("span");
          headS.className = "shape-head";
          headS.append(`slot ${s + 1}: `, pick);
          sli.appendChild(headS);
          ol.appendChild(sli);
        });
        li.appendChild(ol);
      }
      list.appendChild(li);
    });
  }

  function renderProblems() {
    const ul = $("problems");
    ul.replaceChildren();
    for (const p of problems) {
      const li = document.createElement("li");
      const zone = p.zone != null && zones[p.zone] ? `zone '${zones[p.zone].name}'` : "";
      li.textContent = `${zone}${p.slot != null ? ` slot ${p.slot + 1}` : ""}${zone ? ": " : ""}${p.message}`;
      ul.appendChild(li);
    }
    $("save").disabled = problems.length > 0 || checking() || !zones.length;
    const status = $("status");
    status.textContent = checking() ? "checking…" : problems.length ? `${problems.length} problem(s)` : dirty ? "not saved" : "saved";
    status.className = `state ${problems.length ? "failed" : dirty ? "stopped" : "done"}`;
  }

  // -- the server's check -----------------------------------------------------------------------------------------------
  const layout = () => ({ zones, frame_size: size });
  let timer = null, asked = 0, answered = 0;  // the latest check sent, and the latest answered
  const checking = () => asked !== answered;
  function check() {
    clearTimeout(timer);
    const mine = ++asked;
    renderProblems();
    timer = setTimeout(async () => {
      let found;
      try {
        const r = await fetch(`${api}/check`, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(layout()) });
        const body = await r.json();
        found = r.ok ? body.problems : [{ zone: null, slot: null, message: typeof body.detail === "string" ? body.detail : "the layout could not be checked" }];
      } catch (e) {
        found = [{ zone: null, slot: null, message: "the server could not be reached to check the zones" }];
      }
      if (mine !== asked) return;  // a later change has its own check coming
      problems = found;
      answered = mine;
      render();
    }, 120);
  }

  // -- pointer: draw, select, drag ----------------------------------------------------------------------------------------
  function addPoint(p) {
    const first = drawing.points[0];
    if (first && drawing.points.length >= 3 && Math.hypot(p[0] - first[0], p[1] - first[1]) <= 10 * scale()) return finish();
    drawing.points.push(p);
    render();
  }
  function finish() {
    if (!drawing || drawing.points.length < 3) { drawing = null; render(); return; }
    remember();
    if (drawing.kind === "zone") {
      zones.push({ name: freeName(), polygon: drawing.points, slots: [] });
      selected = { zone: zones.length - 1, slot: null, corner: null };
    } else {
      const zone = zones[drawing.zone];
      zone.slots.push({ sku: state.catalogue.length ? state.catalogue[0].sku : "", polygon: drawing.points });
      selected = { zone: drawing.zone, slot: zone.slots.length - 1, corner: null };
    }
    drawing = null;
    changed();
  }
  function start(kind) {
    if (!size) return;
    if (kind === "slot" && !selected) return;
    drawing = { kind, zone: selected ? selected.zone : null, points: [] };
    render();
    svg.focus();
  }

  svg.addEventListener("pointerdown", (event) => {
    if (!size || event.button > 0) return;
    event.preventDefault();
    svg.focus();
    const p = toPicture(event);
    if (drawing) { addPoint(p); return; }
    const target = event.target;
    if (target.dataset.corner != null && selected) {
      selected.corner = Number(target.dataset.corner);
    } else if (target.dataset.zone != null) {
      selected = { zone: Number(target.dataset.zone), slot: target.dataset.slot != null ? Number(target.dataset.slot) : null, corner: null };
    } else {
      selected = null;
      render();
      return;
    }
    drag = { start: p, before: snapshot(), original: shape(selected).polygon.map((q) => [...q]), moved: false };
    svg.setPointerCapture(event.pointerId);
    render();
  });
  svg.addEventListener("pointermove", (event) => {
    if (!drag || !selected) return;
    const p = toPicture(event);
    const dx = p[0] - drag.start[0], dy = p[1] - drag.start[1];
    if (!dx && !dy && !drag.moved) return;
    drag.moved = true;
    const target = shape(selected);
    if (selected.corner != null) target.polygon[selected.corner] = [drag.original[selected.corner][0] + dx, drag.original[selected.corner][1] + dy];
    else {
      target.polygon = drag.original.map(([x, y]) => [x + dx, y + dy]);
      if (selected.slot == null) {  // a zone carries its slots along
        const before = JSON.parse(drag.before)[selected.zone];
        zones[selected.zone].slots.forEach((s, i) => { s.polygon = before.slots[i].polygon.map(([x, y]) => [x + dx, y + dy]); });
      }
    }
    render();
  });
  const endDrag = () => {
    if (drag && drag.moved) { remember(drag.before); changed(); }
    drag = null;
  };
  svg.addEventListener("pointerup", endDrag);
  svg.addEventListener("pointercancel", endDrag);
  svg.addEventListener("dblclick", (event) => {  // a corner more, on the nearest edge of the selected shape
    if (!selected || drawing) return;
    const p = toPicture(event);
    const polygon = shape(selected).polygon;
    remember();
    polygon.splice(nearestEdge(polygon, p) + 1, 0, p);
    changed();
  });

  // -- keyboard ---------------------------------------------------------------------------------------------------------
  function remove(corner) {
    if (!selected) return;
    remember();
    if (corner && selected.corner != null) {
      const polygon = shape(selected).polygon;
      if (polygon.length > 3) polygon.splice(selected.corner, 1);
      selected.corner = null;
    } else if (selected.slot == null) {
      zones.splice(selected.zone, 1);
      selected = null;
    } else {
      zones[selected.zone].slots.splice(selected.slot, 1);
      selected = null;
    }
    changed();
  }
  function nudge(dx, dy) {
    if (!selected) return;
    remember();
    const target = shape(selected);
    if (selected.corner != null) target.polygon[selected.corner] = [target.polygon[selected.corner][0] + dx, target.polygon[selected.corner][1] + dy];
    else {
      target.polygon = target.polygon.map(([x, y]) => [x + dx, y + dy]);
      if (selected.slot == null) target.slots.forEach((s) => { s.polygon = s.polygon.map(([x, y]) => [x + dx, y + dy]); });
    }
    changed();
  }
  function next(back) {
    const all = zones.flatMap((z, zi) => [{ zone: zi, slot: null, corner: null }, ...z.slots.map((_, si) => ({ zone: zi, slot: si, corner: null }))]);
    if (!all.length) return;
    const at = selected ? all.findIndex((a) => a.zone === selected.zone && a.slot === selected.slot) : -1;
    selected = all[(at + (back ? -1 : 1) + all.length) % all.length];
    render();
  }
  document.addEventListener("keydown", (event) => {
    const typing = ["INPUT", "SELECT", "TEXTAREA"].includes(document.activeElement.tagName);
    const key = event.key;
    if ((event.ctrlKey || event.metaKey) && key.toLowerCase() === "z") { event.preventDefault(); if (event.shiftKey) restore(redo, undo); else restore(undo, redo); return; }
    if ((event.ctrlKey || event.metaKey) && key.toLowerCase() === "y") { event.preventDefault(); restore(redo, undo); return; }
    if (typing) return;
    const step = event.shiftKey ? 10 : 1;
    const moves = { ArrowLeft: [-step, 0], ArrowRight: [step, 0], ArrowUp: [0, -step], ArrowDown: [0, step] };
    if (key === "n" || key === "N") start("zone");
    else if (key === "s" || key === "S") start("slot");
    else if (key === "Escape") { drawing = null; if (selected && selected.corner != null) selected.corner = null; else selected = null; render(); }
    else if (key === "Enter" && drawing) finish();
    else if ((key === "Delete" || key === "Backspace") && selected) remove(event.shiftKey);
    else if (moves[key] && selected) nudge(...moves[key]);
    else if (key === "Tab" && document.activeElement === svg) next(event.shiftKey);
    else return;
    event.preventDefault();
  });

  $("new-zone").addEventListener("click", () => start("zone"));
  $("new-slot").addEventListener("click", () => start("slot"));
  $("delete").addEventListener("click", () => remove(false));
  $("undo").addEventListener("click", () => restore(undo, redo));
  $("redo").addEventListener("click", () => restore(redo, undo));

  // -- pictures: the box's snapshots, the installer's uploads -------------------------------------------------------------
  let pictures = state.pictures;
  function listPictures(chosen) {
    const select = $("pictures");
    select.replaceChildren();
    for (const p of pictures) select.add(new Option(`${p.source === "box" ? "snapshot" : "upload"} ${p.name}${p.busy ? " (people in view)" : ""}`, p.url, false, p.url === chosen));
    select.disabled = !pictures.length;
  }
  function show(picture) {
    if (!picture) return;
    $("picture-note").textContent = picture.busy ? "People were in view: no moment without anybody came (the latest frame)." : "";
    img.src = picture.url;
    listPictures(picture.url);
  }
  img.addEventListener("load", () => {
    const had = size;
    size = [img.naturalWidth, img.naturalHeight];
    $("empty").hidden = true;
    if (!had || had[0] !== size[0] || had[1] !== size[1]) dirty = dirty || Boolean(had);
    render();
    check();
  });
  $("pictures").addEventListener("change", () => show(pictures.find((p) => p.url === $("pictures").value)));

  $("snapshot").disabled = !state.can_snapshot;
  if (!state.can_snapshot) $("snapshot").title = "snapshots come from the box through central; upload a still or a clip here";
  $("snapshot").addEventListener("click", async () => {
    const button = $("snapshot");
    button.disabled = true;
    $("picture-note").textContent = "Asked the box for a picture…";
    try {
      const r = await fetch(`${api}/snapshot`, { method: "POST" });
      const asked = await r.json();
      if (!r.ok) throw new Error(asked.detail);
      for (let i = 0; i < 120; i++) {
        await new Promise((ok) => setTimeout(ok, 1000));
        const answer = await fetch(asked.url);
        if (answer.status === 200) {
          const picture = await answer.json();
          pictures = [picture, ...pictures];
          show(picture);
          return;
        }
      }
      $("picture-note").textContent = "The box has not sent its picture yet (is it running and connected?).";
    } catch (e) {
      $("picture-note").textContent = `No snapshot: ${e.message}`;
    } finally {
      button.disabled = false;
    }
  });

  $("upload").addEventListener("change", async () => {
    const file = $("upload").files[0];
    if (!file) return;
    const form = new FormData();
    form.append("file", file);
    $("picture-note").textContent = `Uploading ${file.name}…`;
    const r = await fetch(`${api}/upload`, { method: "POST", body: form });
    const body = await r.json();
    if (!r.ok) { $("picture-note").textContent = `Not taken: ${body.detail}`; return; }
    pictures = [body, ...pictures];
    if (body.clip) { state.clips.unshift({ name: body.clip, source: "upload" }); listClips(); }
    show(body);
  });

  // -- Try it -------------------------------------------------------------------------------------------------------------
  function listClips() {
    const select = $("clips");
    select.replaceChildren();
    for (const c of state.clips) select.add(new Option(`${c.source === "box" ? "kept by the box" : "uploaded"}: ${c.name}`, `${c.source}/${c.name}`));
    $("try").disabled = !state.clips.length;
  }
  function showTry(result) {
    const out = $("try-result");
    out.replaceChildren();
    const frames = Math.max(1, result.frames);
    const timeline = document.createElement("div");
    timeline.className = "timeline try-timeline";
    const zonesSeen = [...new Set(result.segments.map((s) => s.zone ?? "(no zone)"))];
    for (const zone of zonesSeen.length ? zonesSeen : ["(no actions)"]) {
      const lane = document.createElement("div");
      lane.className = "lane";
      const label = document.createElement("span");
      label.className = "lane-label"; label.textContent = zone;
      const track = document.createElement("div");
      track.className = "track";
      for (const s of result.segments.filter((x) => (x.zone ?? "(no zone)") === zone)) {
        const seg = document.createElement("span");
        seg.className = `seg a-${s.action}`;
        seg.style.left = `${(100 * s.start) / frames}%`;
        seg.style.width = `${(100 * (s.end - s.start)) / frames}%`;
        seg.title = `${s.action} ${s.start}–${s.end}`;
        track.appendChild(seg);
      }
      lane.append(label, track);
      timeline.appendChild(lane);
    }
    const table = document.createElement("table");
    table.className = "try-counts";
    table.innerHTML = "<thead><tr><th>zone</th><th>actions</th><th>picks</th><th>put-backs</th><th>products (picked − put back)</th></tr></thead>";
    const body = table.createTBody();
    for (const z of result.zones) {
      const tr = body.insertRow();
      for (const v of [z.zone, z.actions, z.picks, z.putbacks, Object.entries(z.skus).map(([k, n]) => `${k} ${n}`).join(", ") || "–"]) tr.insertCell().textContent = v;
    }
    const summary = document.createElement("p");
    summary.className = "hint";
    summary.textContent = `${result.segments.length} action(s) over ${result.frames} frames with the zones as drawn. `;
    const link = document.createElement("a");
    link.href = result.job.url; link.textContent = "the full analysis (annotated video)";
    summary.appendChild(link);
    out.append(summary, timeline, table);
  }
  $("try").addEventListener("click", async () => {
    const [source, ...rest] = $("clips").value.split("/");
    const button = $("try"), bar = $("try-progress");
    button.disabled = true; bar.hidden = false; bar.value = 0;
    $("try-result").textContent = "";
    try {
      const r = await fetch(`${api}/try`, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ layout: layout(), clip: rest.join("/"), source }) });
      let body = await r.json();
      if (!r.ok) throw new Error(typeof body.detail === "string" ? body.detail : body.detail.detail);
      while (!["done", "failed"].includes(body.job.state)) {
        await new Promise((ok) => setTimeout(ok, 1000));
        body = await (await fetch(`${api}/try/${body.job.id}`)).json();
        bar.value = body.job.fraction;
      }
      if (body.job.state === "failed") throw new Error(body.job.error);
      showTry(body);
    } catch (e) {
      $("try-result").textContent = `The try did not run: ${e.message}`;
    } finally {
      button.disabled = false; bar.hidden = true;
    }
  });

  // -- Save -------------------------------------------------------------------------------------------------------------------
  $("save").addEventListener("click", async () => {
    const r = await fetch(api, { method: "PUT", headers: { "Content-Type": "application/json" }, body: JSON.stringify(layout()) });
    const body = await r.json();
    if (r.ok) {
      dirty = false;
      $("saved").textContent = `Saved in ${body.saved}.`;
      $("send").hidden = !state.can_snapshot;  // inside central: the saved config can go to the box
    } else {
      const detail = typeof body.detail === "string" ? { detail: body.detail, problems: [] } : body.detail;
      problems = detail.problems.length ? detail.problems : [{ zone: null, slot: null, message: detail.detail }];
      $("saved").textContent = `Not saved: ${detail.detail}.`;
    }
    render();
  });

  $("send").addEventListener("click", async () => {
    const r = await fetch(`${api}/send`, { method: "POST" });
    const body = await r.json();
    $("saved").textContent = r.ok
      ? `Sent: rollout ${body.rollout_id} (the box downloads the config, checks it and switches to it; shelfwatch central rollout status ${body.rollout_id}).`
      : `Not sent: ${body.detail}`;
    if (r.ok) $("send").hidden = true;
  });

  listClips();
  listPictures(null);
  if (pictures.length) show(pictures[0]);
  render();
  if (zones.length) check();
  for (const p of state.problems) problems.push({ zone: null, slot: null, message: p });
  window.addEventListener("beforeunload", (event) => { if (dirty) event.preventDefault(); });
  window.zoneEditor = { layout, problems: () => problems };  // for tests and the curious
})();
