// The dashboard's few dynamic parts: the growing log, the load chart, pages that refresh
// while something is being made, and uploads with a progress bar. No inline script: the
// pages are served with a Content-Security-Policy that allows this file alone.
"use strict";

function followLog(pre) {
  let offset = 0;
  const step = () => {
    fetch(`${pre.dataset.src}?offset=${offset}`, {credentials: "same-origin"})
      .then((r) => r.json())
      .then((data) => {
        if (data.text) {
          const atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
          pre.textContent += data.text;
          if (atBottom) pre.scrollTop = pre.scrollHeight;
        }
        offset = data.offset;
        const state = document.getElementById("job-state");
        if (state && data.state && !state.textContent.startsWith(data.state)) {
          state.textContent = data.state;
        }
        if (data.active || data.text) setTimeout(step, data.text ? 200 : 2000);
        else if (pre.dataset.active === "1") setTimeout(() => location.reload(), 500);
      })
      .catch(() => setTimeout(step, 5000));
  };
  step();
}

function refreshChart(box) {
  setInterval(() => {
    fetch(box.dataset.src, {credentials: "same-origin"}).then((r) => r.text())
      .then((svg) => { box.innerHTML = svg; });
  }, 5000);
}

function uploadWithProgress(form) {
  form.addEventListener("submit", (event) => {
    const file = form.querySelector("input[type=file]");
    if (!file || !file.files.length) return;
    event.preventDefault();
    const bar = document.getElementById("upload-progress");
    const status = document.getElementById("upload-status");
    const request = new XMLHttpRequest();
    request.open("POST", form.action);
    request.upload.onprogress = (e) => {
      if (!e.lengthComputable) return;
      bar.hidden = false;
      bar.value = Math.round((e.loaded / e.total) * 100);
      status.textContent = `${bar.value}% of ${(e.total / 1048576).toFixed(1)} MiB`;
    };
    request.onload = () => {
      document.open();
      document.write(request.responseText);
      document.close();
      if (request.responseURL) history.replaceState(null, "", request.responseURL);
    };
    request.onerror = () => { status.textContent = "the upload failed"; };
    request.send(new FormData(form));
  });
}

document.addEventListener("DOMContentLoaded", () => {
  const log = document.getElementById("log");
  if (log) followLog(log);
  const load = document.getElementById("load");
  if (load && log && log.dataset.active === "1") refreshChart(load);
  const refresh = document.getElementById("refreshing");
  if (refresh) setTimeout(() => location.reload(), Number(refresh.dataset.refresh) * 1000);
  document.querySelectorAll("form[data-upload]").forEach(uploadWithProgress);
});
