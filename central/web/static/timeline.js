// The action timeline under the video: one lane per action class, one per shopper (their actions in the class
// colours, their picks ▼ and put-backs ▲), and one for every pick and put-back. A playhead follows playback;
// clicking a segment or a mark seeks the video to it. Stretches the familiarity guard found unlike the model's
// training are shaded across every lane.
"use strict";
(function () {
  const a = JSON.parse(document.getElementById("analysis").textContent);
  const video = document.getElementById("player");
  const root = document.getElementById("timeline");
  const frames = Math.max(1, a.frames);
  const pct = (f) => `${(100 * f) / frames}%`;
  const secs = (f) => (f / a.fps).toFixed(1);
  const label = (s) => s.replace(/_/g, " ");

  function lane(name, kind) {
    const row = document.createElement("div");
    row.className = `lane ${kind}`;
    const title = document.createElement("div");
    title.className = "lane-label";
    title.textContent = name;
    const track = document.createElement("div");
    track.className = "track";
    track.addEventListener("click", (e) => {  // a click between segments seeks there too
      if (e.target !== track) return;
      const r = track.getBoundingClientRect();
      seek(((e.clientX - r.left) / r.width) * frames);
    });
    row.append(title, track);
    root.append(row);
    return track;
  }
  function segment(track, s) {
    const el = document.createElement("button");
    el.type = "button";
    el.className = `seg a-${s.action}`;
    el.style.left = pct(s.start);
    el.style.width = pct(s.end - s.start);
    Object.assign(el.dataset, { action: s.action, start: s.start, end: s.end, shopper: s.shopper ?? "" });
    el.title = `${label(s.action)}: ${secs(s.start)}–${secs(s.end)} s` + (s.shopper != null ? `, shopper ${s.shopper}` : "") + ` (confidence ${s.confidence})` + (s.familiar === false ? " · unfamiliar footage: not sure" : "");
    if (s.familiar === false) el.dataset.familiar = "false";
    el.addEventListener("click", () => seek(s.start));
    track.append(el);
  }
  function mark(track, c) {
    const el = document.createElement("button");
    el.type = "button";
    el.className = `mark ${c.kind}`;
    el.style.left = pct(c.frame);
    el.textContent = c.kind === "pick" ? "▼" : "▲";
    Object.assign(el.dataset, { kind: c.kind, frame: c.frame, sku: c.sku });
    el.title = `${c.kind === "pick" ? "pick" : "put-back"} of ${c.quantity}× ${c.name} at ${secs(c.frame)} s` + (c.shopper != null ? ` by shopper ${c.shopper}` : "") + (c.familiar === false ? " · unfamiliar footage: not sure" : "");
    if (c.familiar === false) el.dataset.familiar = "false";
    el.addEventListener("click", () => seek(c.frame));
    track.append(el);
  }
  function seek(frame) {
    video.currentTime = Math.min(video.duration || Infinity, frame / a.fps + 0.001);
    draw();
  }

  for (const cls of a.classes) {
    const t = lane(label(cls), "class");
    a.segments.filter((s) => s.action === cls).forEach((s) => segment(t, s));
  }
  for (const id of a.shoppers) {
    const t = lane(`shopper ${id}`, "shopper");
    a.segments.filter((s) => s.shopper === id).forEach((s) => segment(t, s));
    a.changes.filter((c) => c.shopper === id).forEach((c) => mark(t, c));
  }
  const shelf = lane("picks & put-backs", "changes");
  a.changes.forEach((c) => mark(shelf, c));

  const axis = document.createElement("div");
  axis.className = "axis";
  root.append(axis);
  // Seconds marked as often as the tracks' width allows a legible label (about 44 px each): every 2 s on a
  // laptop, fewer on a phone, where a fixed step ran the labels together.
  function ticks() {
    const width = root.querySelector(".track").offsetWidth, seconds = frames / a.fps;
    const step = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1800].find((s) => (seconds / s) * 44 <= width) || 3600;
    axis.replaceChildren();
    for (let t = 0; t <= seconds; t += step) {
      const tick = document.createElement("span");
      tick.style.left = pct(t * a.fps);
      tick.textContent = `${t}s`;
      axis.append(tick);
    }
  }
  ticks();
  window.addEventListener("resize", ticks);
  const shades = [];
  for (const st of (a.familiarity ? a.familiarity.stretches : [])) {
    const el = document.createElement("div");
    el.className = "shade";
    Object.assign(el.dataset, { start: st.start, end: st.end });
    el.title = `unlike the model's training: ${secs(st.start)}–${secs(st.end)} s`;
    root.append(el);
    shades.push(el);
  }
  const head = document.createElement("div");
  head.className = "playhead";
  head.id = "playhead";
  root.append(head);

  function draw() {
    // The playhead sits over the tracks: past the lane labels, scaled to the tracks' width.
    const track = root.querySelector(".track");
    const left = track.offsetLeft, width = track.offsetWidth;
    const f = Math.min(1, video.currentTime * a.fps / frames);
    head.style.left = `${left + f * width}px`;
    for (const el of shades) {  // over the tracks, like the playhead
      el.style.left = `${left + (+el.dataset.start / frames) * width}px`;
      el.style.width = `${Math.max(2, ((+el.dataset.end - +el.dataset.start) / frames) * width)}px`;
    }
    head.dataset.frame = Math.round(video.currentTime * a.fps);
    root.querySelectorAll(".seg.now").forEach((el) => el.classList.remove("now"));
    const now = video.currentTime * a.fps;
    root.querySelectorAll(".seg").forEach((el) => {
      if (+el.dataset.start <= now && now < +el.dataset.end) el.classList.add("now");
    });
  }
  function loop() { draw(); if (!video.paused && !video.ended) requestAnimationFrame(loop); }
  video.addEventListener("play", () => requestAnimationFrame(loop));
  ["timeupdate", "seeked", "loadedmetadata"].forEach((t) => video.addEventListener(t, draw));
  window.addEventListener("resize", draw);
  draw();
})();
