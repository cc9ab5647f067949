// Similarity search page: two query forms, one result list with players that start at the
// matched segment. No framework, no external resources (the page works offline).
"use strict";

const $ = (id) => document.getElementById(id);
const statusEl = $("status");

function setStatus(text, isError = false) {
  statusEl.textContent = text;
  statusEl.className = isError ? "error" : "";
}

async function api(url, options) {
  const resp = await fetch(url, options);
  let body = null;
  try { body = await resp.json(); } catch (e) { body = null; }
  if (!resp.ok) {
    // Every error body is {"error": {"code": ..., "message": ...}} (see server/app.py).
    const msg = body && body.error && body.error.message;
    throw new Error(msg || `request failed (${resp.status})`);
  }
  return body;
}

function fmt(seconds) { return Number(seconds).toFixed(1); }

function renderResults(data) {
  const list = $("results");
  list.innerHTML = "";
  for (const r of data.results) {
    const li = document.createElement("li");
    li.className = "result";
    li.dataset.trackId = r.track_id;
    const head = document.createElement("div");
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = r.name;
    const score = document.createElement("span");
    score.className = "score";
    score.textContent = `similarity ${r.score.toFixed(3)}`;
    head.append(name, score);
    li.append(head);
    if (r.tags.length) {
      const tags = document.createElement("div");
      for (const t of r.tags) {
        const span = document.createElement("span");
        span.className = "tag";
        span.textContent = t;
        tags.append(span);
      }
      li.append(tags);
    }
    for (const s of r.segments) {
      const row = document.createElement("div");
      row.className = "segment";
      const label = document.createElement("span");
      label.textContent = `${fmt(s.start)}–${fmt(s.end)} s (${s.score.toFixed(3)})`;
      const audio = document.createElement("audio");
      audio.controls = true;
      audio.preload = "metadata";
      // Media fragment: the player starts at the matched segment and stops at its end.
      audio.src = `${r.audio_url}#t=${s.start},${s.end}`;
      audio.dataset.start = s.start;
      row.append(label, audio);
      li.append(row);
    }
    list.append(li);
  }
  const q = data.query;
  const what = q.name + (q.start !== undefined ? ` [${fmt(q.start)}–${fmt(q.end)} s]` : "");
  setStatus(`${data.results.length} similar tracks for ${what}`);
}

$("upload-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const file = $("upload-file").files[0];
  if (!file) { setStatus("choose an audio file first", true); return; }
  const form = new FormData();
  form.append("file", file);
  form.append("k", "10");
  setStatus(`searching with ${file.name}…`);
  try {
    renderResults(await api("/api/search/upload", { method: "POST", body: form }));
  } catch (e) {
    $("results").innerHTML = "";
    setStatus(e.message, true);
  }
});

$("track-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const end = $("track-end").value;
  const body = {
    track_id: Number($("track-select").value),
    start: Number($("track-start").value || 0),
    end: end === "" ? null : Number(end),
    k: 10,
  };
  setStatus("searching…");
  try {
    renderResults(await api("/api/search/track", {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    }));
  } catch (e) {
    $("results").innerHTML = "";
    setStatus(e.message, true);
  }
});

async function init() {
  try {
    const info = await api("/api/info");
    $("catalog-info").textContent =
      `${info.tracks} tracks, ${info.segments} segments of ${info.segment_seconds} s ` +
      `(${info.index_kind} index)`;
    $("upload-limits").textContent =
      `${info.upload_types.join(", ")}; up to ${info.max_upload_mb} MB and ` +
      `${info.max_upload_seconds} s`;
    const tracks = await api("/api/tracks");
    const select = $("track-select");
    for (const t of tracks) {
      const opt = document.createElement("option");
      opt.value = t.track_id;
      opt.textContent = `${t.name} (${fmt(t.duration)} s)`;
      select.append(opt);
    }
  } catch (e) {
    setStatus(`cannot load the catalog: ${e.message}`, true);
  }
}
init();
