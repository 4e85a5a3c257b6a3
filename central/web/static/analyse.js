// The analysis page: choose or drop a video, upload it (with its own progress), then follow the analysis
// until the result page is ready. Plain JavaScript, no framework.
"use strict";
(function () {
  const form = document.getElementById("upload");
  const input = document.getElementById("file");
  const drop = document.getElementById("drop");
  const button = document.getElementById("analyse");
  const message = document.getElementById("message");
  const box = document.getElementById("progress");
  const bar = document.getElementById("bar");
  const phase = document.getElementById("phase");
  const detail = document.getElementById("detail");
  let file = null;

  function choose(f) {
    file = f || null;
    document.getElementById("chosen").textContent = file ? `${file.name} (${(file.size / 1e6).toFixed(1)} MB)` : "";
    button.disabled = !file;
    message.hidden = true;
  }
  function fail(text) {
    message.textContent = text;
    message.hidden = false;
    box.hidden = true;
    button.disabled = !file;
  }

  input.addEventListener("change", () => choose(input.files[0]));
  drop.addEventListener("click", (e) => { if (e.target === drop) input.click(); });
  drop.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") input.click(); });
  ["dragenter", "dragover"].forEach((t) => drop.addEventListener(t, (e) => {
    e.preventDefault(); drop.classList.add("over");
  }));
  ["dragleave", "drop"].forEach((t) => drop.addEventListener(t, (e) => {
    e.preventDefault(); drop.classList.remove("over");
  }));
  drop.addEventListener("drop", (e) => { if (e.dataTransfer.files.length) choose(e.dataTransfer.files[0]); });

  form.addEventListener("submit", (e) => {
    e.preventDefault();
    if (!file) return;
    const data = new FormData();
    data.append("file", file, file.name);
    data.append("bundle", document.getElementById("bundle").value);
    data.append("box_config", document.getElementById("box_config").value);
    const xhr = new XMLHttpRequest();
    xhr.open("POST", "/web/api/analyses");
    xhr.upload.onprogress = (ev) => {
      if (ev.lengthComputable) { bar.value = ev.loaded / ev.total; detail.textContent = `${(ev.loaded / 1e6).toFixed(1)} of ${(ev.total / 1e6).toFixed(1)} MB`; }
    };
    xhr.onload = () => {
      let body = {};
      try { body = JSON.parse(xhr.responseText); } catch (_) { /* not JSON: a proxy's page */ }
      if (xhr.status === 202) follow(body);
      else if (xhr.status === 401) location.href = "/login?next=/analyse";
      else fail(body.detail || `The upload was refused (HTTP ${xhr.status}).`);
    };
    xhr.onerror = () => fail("The upload did not reach the server. Check the connection and try again.");
    button.disabled = true;
    message.hidden = true;
    box.hidden = false;
    phase.textContent = "Uploading…";
    bar.value = 0;
    xhr.send(data);
  });

  const pick = document.getElementById("pick");
  if (pick) pick.addEventListener("submit", (e) => {
    // A recent clip is already on the server: nothing to upload, straight to following its analysis.
    e.preventDefault();
    const data = new URLSearchParams({ clip: document.getElementById("clip").value,
      bundle: document.getElementById("bundle").value, box_config: document.getElementById("box_config").value });
    message.hidden = true;
    box.hidden = false;
    phase.textContent = "Starting…";
    fetch("/web/api/analyses/clip", { method: "POST", body: data, headers: { Accept: "application/json" } })
      .then(async (r) => {
        const body = await r.json().catch(() => ({}));
        if (r.status === 202) follow(body);
        else if (r.status === 401) location.href = "/login?next=/analyse";
        else fail(body.detail || `The clip was refused (HTTP ${r.status}).`);
      }, () => fail("The request did not reach the server. Check the connection and try again."));
  });

  function follow(job) {
    show(job);
    if (job.state === "done") { location.href = job.url; return; }
    if (job.state === "failed") { fail(job.error); return; }
    setTimeout(() => fetch(`/web/api/analyses/${job.id}`, { headers: { Accept: "application/json" } })
      .then((r) => r.ok ? r.json() : Promise.reject(new Error(`HTTP ${r.status}`)))
      .then(follow, (err) => fail(`Lost track of the analysis (${err.message}).`)), 500);
  }

  function show(job) {
    if (job.state === "queued") {
      phase.textContent = job.ahead ? `Waiting: ${job.ahead} analysis(es) ahead of this one…` : "Starting…";
      bar.removeAttribute("value");
      detail.textContent = "";
    } else {
      phase.textContent = "Analysing…";
      bar.value = job.fraction;
      detail.textContent = `${job.frames}${job.total ? " of " + job.total : ""} frames · ${job.events} events · ${job.fps.toFixed(0)} fps`;
    }
  }
})();
