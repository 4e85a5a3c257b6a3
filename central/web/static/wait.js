// An analysis still queued or running: follow it and show the result page when it is ready.
"use strict";
(function () {
  const box = document.getElementById("progress");
  const id = box.dataset.job;
  function tick() {
    fetch(`/web/api/analyses/${id}`).then((r) => r.json()).then((job) => {
      if (job.state === "done" || job.state === "failed") { location.reload(); return; }
      document.getElementById("phase").textContent = job.state === "queued" ? "Waiting in the queue…" : "Analysing…";
      document.getElementById("bar").value = job.fraction;
      document.getElementById("detail").textContent = `${job.frames}${job.total ? " of " + job.total : ""} frames`;
      setTimeout(tick, 500);
    }, () => setTimeout(tick, 2000));
  }
  tick();
})();
