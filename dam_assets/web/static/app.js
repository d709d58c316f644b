// The library page's little JavaScript: scrub previews, a dropped still, seeking, synced cameras.
"use strict";

// -- hover scrub: the sprite sheet and its WebVTT index (#xywh=) that `thumbnails` writes --------
const spriteCues = new Map(); // vtt URL -> Promise of [{start, end, url, x, y, w, h}]

function vttSeconds(text) {
  const parts = text.trim().split(":").map(Number);
  return parts.reduce((total, part) => total * 60 + part, 0);
}

function loadCues(url) {
  if (!spriteCues.has(url)) {
    spriteCues.set(url, fetch(url).then((r) => (r.ok ? r.text() : "")).then((text) => {
      const cues = [];
      for (const block of text.split(/\r?\n\r?\n/)) {
        const lines = block.split(/\r?\n/).filter(Boolean);
        const timing = lines.findIndex((l) => l.includes("-->"));
        if (timing < 0 || !lines[timing + 1]) continue;
        const [start, end] = lines[timing].split("-->").map((t) => vttSeconds(t.split(" ").filter(Boolean)[0] || t));
        const [file, frag] = lines[timing + 1].split("#xywh=");
        if (!frag) continue;
        const [x, y, w, h] = frag.split(",").map(Number);
        cues.push({ start, end, url: new URL(file, new URL(url, location.href)).href, x, y, w, h });
      }
      return cues;
    }));
  }
  return spriteCues.get(url);
}

function scrubTo(card, fraction) {
  const vtt = card.dataset.sprite;
  if (!vtt) return;
  const start = Number(card.dataset.start), end = Number(card.dataset.end);
  // a moment of one frame still scrubs a few seconds around it
  const from = Math.max(0, end - start < 4 ? start - 2 : start), to = end - start < 4 ? end + 2 : end;
  const time = from + (to - from) * Math.min(1, Math.max(0, fraction));
  loadCues(vtt).then((cues) => {
    if (!cues.length) return;
    const cue = cues.find((c) => time >= c.start && time < c.end) || (time < cues[0].start ? cues[0] : cues[cues.length - 1]);
    const box = card.querySelector(".scrub"), frame = card.querySelector(".preview");
    const scale = frame.clientWidth / cue.w;
    box.style.backgroundImage = `url("${cue.url}")`;
    box.style.transformOrigin = "0 0";
    box.style.width = `${cue.w}px`;
    box.style.height = `${cue.h}px`;
    box.style.backgroundPosition = `${-cue.x}px ${-cue.y}px`;
    box.style.transform = `scale(${scale})`;
    box.dataset.time = time.toFixed(2);
    box.hidden = false;
  });
}

for (const card of document.querySelectorAll(".moment")) {
  const frame = card.querySelector(".preview");
  frame.addEventListener("mousemove", (e) => {
    const rect = frame.getBoundingClientRect();
    scrubTo(card, (e.clientX - rect.left) / rect.width);
  });
  frame.addEventListener("mouseleave", () => { card.querySelector(".scrub").hidden = true; });
}

// -- a still dropped onto the search box searches by picture ---------------------------------
const form = document.getElementById("search");
if (form) {
  const zone = document.getElementById("dropzone"), picker = document.getElementById("image");
  const byPicture = () => { form.method = "post"; form.submit(); };
  picker.addEventListener("change", () => { if (picker.files.length) byPicture(); });
  zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("dragging"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("dragging"));
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    zone.classList.remove("dragging");
    if (!e.dataTransfer.files.length) return;
    picker.files = e.dataTransfer.files;
    byPicture();
  });
}

// -- the clip page: start at the moment, click a line or a scene to seek -----------------------
const player = document.getElementById("player");
if (player) {
  const start = Number(player.dataset.start || 0);
  const seek = (t) => { player.currentTime = t; };
  if (start > 0) {
    if (player.readyState >= 1) seek(start);
    else player.addEventListener("loadedmetadata", () => seek(start), { once: true });
  }
  for (const button of document.querySelectorAll("[data-seek]")) {
    button.addEventListener("click", () => { seek(Number(button.dataset.seek)); player.play().catch(() => {}); });
  }
  const lines = [...document.querySelectorAll("button.line")];
  player.addEventListener("timeupdate", () => {
    const t = player.currentTime;
    for (const line of lines) {
      line.classList.toggle("current", t >= Number(line.dataset.seek) && t < Number(line.dataset.end));
    }
  });
}

// -- a session: every camera on the hero's clock, shifted by its measured offset ------------------
const cameras = document.getElementById("cameras");
if (cameras) {
  const all = [...cameras.querySelectorAll("figure.camera")].filter((f) => f.querySelector("video"));
  const hero = all.find((f) => f.dataset.role === "hero") || all[0];
  const master = hero && hero.querySelector("video");
  const slider = document.getElementById("sync-position"), shown = document.getElementById("sync-time");
  // offset_s: where this file's t=0 lies on the hero file's timeline
  const place = (figure, heroTime, playing) => {
    const video = figure.querySelector("video");
    const local = heroTime - (Number(figure.dataset.offset) - Number(hero.dataset.offset));
    const rolling = local >= 0 && (!video.duration || local < video.duration);
    figure.classList.toggle("idle", !rolling);
    if (!rolling) { if (!video.paused) video.pause(); return; }
    if (Math.abs(video.currentTime - local) > 0.08) video.currentTime = local;
    if (playing && video.paused) video.play().catch(() => {});
    if (!playing && !video.paused) video.pause();
  };
  const follow = () => {
    for (const f of all) if (f !== hero) place(f, master.currentTime, !master.paused);
    if (master.duration) slider.value = Math.round((master.currentTime / master.duration) * 1000);
    const m = Math.floor(master.currentTime / 60), s = (master.currentTime % 60).toFixed(1).padStart(4, "0");
    shown.value = `${m}:${s}`;
  };
  if (master) {
    master.controls = true;
    for (const event of ["play", "pause", "seeked", "timeupdate"]) master.addEventListener(event, follow);
    setInterval(() => { if (!master.paused) follow(); }, 250);
    document.getElementById("sync-play").addEventListener("click", () => master.play().catch(() => {}));
    document.getElementById("sync-pause").addEventListener("click", () => master.pause());
    slider.addEventListener("input", () => { if (master.duration) master.currentTime = (slider.value / 1000) * master.duration; });
  }
}
