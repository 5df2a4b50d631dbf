// inpaintssl demo page: paint a hole on a photo, send photo + mask to POST /api/inpaint, show the result.
//
// The mask lives on a <canvas> at the photo's full resolution (CSS stretches it over the displayed
// photo), so the mask sent to the server has exactly the photo's size. Every edit is kept as an
// operation {type: "stroke" | "rect" | "clear", ...} in image pixels; undo replays the list minus the
// last one. The photo is sent as the original file (not re-encoded), so the server sees the same pixels.
"use strict";

const $ = (id) => document.getElementById(id);
const HOLE_COLOR = "#ff2d55";        // painted opaque; the canvas itself is shown at 55 % opacity
const els = {
  file: $("file"), sample: $("sample"), size: $("size"), sizeValue: $("size-value"), undo: $("undo"),
  clear: $("clear"), inpaint: $("inpaint"), download: $("download"), reuse: $("reuse"), status: $("status"),
  photo: $("photo"), mask: $("mask"), rect: $("rect-preview"), cursor: $("cursor"), result: $("result"),
  resultInfo: $("result-info"), modelInfo: $("model-info"), showMask: $("show-mask"), stage: $("stage"),
};
const ctx = els.mask.getContext("2d");
const state = {
  file: null, name: "image", ops: [], current: null, start: null, busy: false,
  photoUrl: null, resultUrl: null, resultBlob: null, maxUpload: 20 * 1024 * 1024,
};

function setStatus(text, kind) {
  els.status.textContent = text;
  if (kind) document.body.dataset.state = kind;
}

function tool() { return document.querySelector("input[name=tool]:checked").value; }

// Photo pixels per displayed (CSS) pixel.
function scale() { return els.mask.width / els.mask.getBoundingClientRect().width; }

function toImage(ev) {
  const r = els.mask.getBoundingClientRect(), s = els.mask.width / r.width;
  return [(ev.clientX - r.left) * s, (ev.clientY - r.top) * s];
}

// ---- drawing -------------------------------------------------------------------------------------
function drawOp(op, from = 0) {
  if (op.type === "clear") { ctx.clearRect(0, 0, els.mask.width, els.mask.height); return; }
  ctx.save();
  ctx.globalCompositeOperation = op.erase ? "destination-out" : "source-over";
  ctx.fillStyle = ctx.strokeStyle = HOLE_COLOR;
  if (op.type === "rect") {
    ctx.fillRect(op.x, op.y, op.w, op.h);
  } else if (op.points.length === 1 || from >= op.points.length - 1) {
    const [x, y] = op.points[op.points.length - 1];
    ctx.beginPath(); ctx.arc(x, y, op.width / 2, 0, 2 * Math.PI); ctx.fill();
  } else {
    ctx.lineWidth = op.width; ctx.lineCap = "round"; ctx.lineJoin = "round";
    ctx.beginPath(); ctx.moveTo(...op.points[from]);
    for (let i = from + 1; i < op.points.length; i++) ctx.lineTo(...op.points[i]);
    ctx.stroke();
  }
  ctx.restore();
}

function redraw() {
  ctx.clearRect(0, 0, els.mask.width, els.mask.height);
  for (const op of state.ops) drawOp(op);
  refreshButtons();
}

function commit(op) { state.ops.push(op); refreshButtons(); }

function undo() { if (state.ops.length && !state.busy) { state.ops.pop(); redraw(); } }

function clearMask() {
  if (state.ops.length && state.ops[state.ops.length - 1].type !== "clear") { commit({ type: "clear" }); redraw(); }
}

// The hole as a black/white PNG at full resolution (white = hole: painted alpha >= 128), and its area.
function maskBlob() {
  const w = els.mask.width, h = els.mask.height;
  const src = ctx.getImageData(0, 0, w, h).data;
  const out = new ImageData(w, h);
  let holes = 0;
  for (let i = 0; i < w * h; i++) {
    const v = src[4 * i + 3] >= 128 ? 255 : 0;
    holes += v ? 1 : 0;
    out.data[4 * i] = out.data[4 * i + 1] = out.data[4 * i + 2] = v;
    out.data[4 * i + 3] = 255;
  }
  const c = document.createElement("canvas");
  c.width = w; c.height = h;
  c.getContext("2d").putImageData(out, 0, 0);
  return new Promise((resolve) => c.toBlob((blob) => resolve({ blob, holes }), "image/png"));
}

// ---- pointer handling ----------------------------------------------------------------------------
function moveCursor(ev) {
  const r = els.stage.getBoundingClientRect(), d = Number(els.size.value);
  Object.assign(els.cursor.style, { left: `${ev.clientX - r.left}px`, top: `${ev.clientY - r.top}px`,
                                    width: `${d}px`, height: `${d}px` });
  els.cursor.hidden = tool() === "rect";
}

els.mask.addEventListener("pointerdown", (ev) => {
  if (state.busy || ev.button !== 0) return;
  els.mask.setPointerCapture(ev.pointerId);
  const p = toImage(ev);
  if (tool() === "rect") { state.start = p; return; }
  state.current = { type: "stroke", erase: tool() === "eraser", width: Number(els.size.value) * scale(), points: [p] };
  drawOp(state.current);
});

els.mask.addEventListener("pointermove", (ev) => {
  moveCursor(ev);
  if (state.current) {
    state.current.points.push(toImage(ev));
    drawOp(state.current, state.current.points.length - 2);      // only the new segment
  } else if (state.start) {
    const [x0, y0] = state.start, [x1, y1] = toImage(ev), s = scale();
    Object.assign(els.rect.style, { left: `${Math.min(x0, x1) / s}px`, top: `${Math.min(y0, y1) / s}px`,
                                    width: `${Math.abs(x1 - x0) / s}px`, height: `${Math.abs(y1 - y0) / s}px` });
    els.rect.hidden = false;
  }
});

function endPointer(ev) {
  if (state.current) { commit(state.current); state.current = null; }
  if (state.start) {
    const [x0, y0] = state.start, [x1, y1] = toImage(ev);
    state.start = null; els.rect.hidden = true;
    if (Math.abs(x1 - x0) >= 1 && Math.abs(y1 - y0) >= 1) {
      const op = { type: "rect", erase: false, x: Math.min(x0, x1), y: Math.min(y0, y1),
                   w: Math.abs(x1 - x0), h: Math.abs(y1 - y0) };
      drawOp(op); commit(op);
    }
  }
}
els.mask.addEventListener("pointerup", endPointer);
els.mask.addEventListener("pointercancel", endPointer);
els.mask.addEventListener("pointerleave", () => { els.cursor.hidden = true; });

// ---- photo, samples, inpainting ------------------------------------------------------------------
function refreshButtons() {
  const loaded = state.file !== null;
  els.inpaint.disabled = !loaded || state.busy || !state.ops.length;
  els.undo.disabled = !state.ops.length || state.busy;
  els.clear.disabled = !state.ops.length || state.busy;
  els.reuse.disabled = !state.resultBlob || state.busy;
  els.download.classList.toggle("disabled", !state.resultBlob);
  els.download.setAttribute("aria-disabled", String(!state.resultBlob));
}

function setResult(blob) {
  if (state.resultUrl) URL.revokeObjectURL(state.resultUrl);
  state.resultBlob = blob;
  state.resultUrl = blob ? URL.createObjectURL(blob) : null;
  if (blob) {
    els.result.src = state.resultUrl;
    els.download.href = state.resultUrl;
    els.download.download = `${state.name.replace(/\.[^.]*$/, "")}-inpainted.png`;
  } else {
    els.result.removeAttribute("src");
    els.download.removeAttribute("href");
    els.resultInfo.textContent = "";
  }
}

function loadPhoto(blob, name) {
  if (blob.size > state.maxUpload) {
    setStatus(`${name} is ${(blob.size / 2 ** 20).toFixed(1)} MB; the server accepts at most ` +
              `${(state.maxUpload / 2 ** 20).toFixed(1)} MB. Downscale it first.`, "error");
    return;
  }
  setStatus(`Loading ${name}`, "busy");
  const url = URL.createObjectURL(blob);
  const img = new Image();
  img.onload = () => {
    if (state.photoUrl) URL.revokeObjectURL(state.photoUrl);
    state.photoUrl = url; state.file = blob; state.name = name; state.ops = [];
    els.mask.width = img.naturalWidth; els.mask.height = img.naturalHeight;
    els.photo.src = url;
    setResult(null); redraw();
    setStatus(`${name}: ${img.naturalWidth}×${img.naturalHeight}. Paint over what should go, then press Inpaint.`, "ready");
  };
  img.onerror = () => { URL.revokeObjectURL(url); setStatus(`${name}: the browser cannot read this file as an image.`, "error"); };
  img.src = url;
}

async function errorText(resp) {
  try { return (await resp.json()).error; } catch (e) { return `HTTP ${resp.status}`; }
}

async function inpaint() {
  if (!state.file || state.busy) return;
  const { blob, holes } = await maskBlob();
  if (!holes) { setStatus("The hole is empty: paint over the part to fill first.", "error"); return; }
  state.busy = true; refreshButtons();
  setStatus(`Inpainting ${holes.toLocaleString()} hole pixels`, "busy");
  const form = new FormData();
  form.append("image", state.file, state.name);
  form.append("mask", blob, "mask.png");
  const t0 = performance.now();
  try {
    const resp = await fetch("/api/inpaint", { method: "POST", body: form });
    if (!resp.ok) throw new Error(await errorText(resp));
    const out = await resp.blob();
    await new Promise((resolve, reject) => {
      els.result.onload = resolve; els.result.onerror = () => reject(new Error("the result is not a readable PNG"));
      setResult(out);
    });
    const secs = ((performance.now() - t0) / 1000).toFixed(2);
    els.resultInfo.textContent = `— ${els.result.naturalWidth}×${els.result.naturalHeight}, ${secs} s`;
    setStatus(`Done: ${holes.toLocaleString()} pixels filled in ${secs} s. Download saves the full-resolution PNG.`, "done");
  } catch (e) {
    setStatus(`Inpainting failed: ${e.message}`, "error");
  } finally {
    state.busy = false; refreshButtons();
  }
}

async function loadSample(name) {
  try {
    const resp = await fetch(`/api/samples/${encodeURIComponent(name)}`);
    if (!resp.ok) throw new Error(await errorText(resp));
    const blob = await resp.blob();
    const ext = blob.type === "image/jpeg" ? "jpg" : "png";
    loadPhoto(blob, `${name}.${ext}`);
  } catch (e) { setStatus(`Cannot load sample ${name}: ${e.message}`, "error"); }
}

async function init() {
  try {
    const info = await (await fetch("/api/info")).json();
    state.maxUpload = info.max_upload_bytes;
    els.modelInfo.textContent = `model ${info.model} · preset ${info.preset} · ${info.image_size} px · ${info.device}`;
  } catch (e) { els.modelInfo.textContent = "model info unavailable"; }
  try {
    for (const s of await (await fetch("/api/samples")).json()) {
      els.sample.add(new Option(`${s.name} (${s.width}×${s.height})`, s.name));
    }
  } catch (e) { /* samples are optional */ }
  refreshButtons();
}

els.file.addEventListener("change", () => { if (els.file.files[0]) loadPhoto(els.file.files[0], els.file.files[0].name); els.file.value = ""; });
els.sample.addEventListener("change", () => { if (els.sample.value) loadSample(els.sample.value); els.sample.value = ""; });
els.size.addEventListener("input", () => { els.sizeValue.textContent = els.size.value; });
els.undo.addEventListener("click", undo);
els.clear.addEventListener("click", clearMask);
els.inpaint.addEventListener("click", inpaint);
els.reuse.addEventListener("click", () => { if (state.resultBlob) loadPhoto(state.resultBlob, els.download.download); });
els.showMask.addEventListener("change", () => els.mask.classList.toggle("hidden-mask", !els.showMask.checked));
document.addEventListener("keydown", (ev) => {
  if (ev.target.tagName === "INPUT" && ev.target.type !== "radio" && ev.target.type !== "range") return;
  const pick = (v) => { document.querySelector(`input[name=tool][value=${v}]`).checked = true; };
  if ((ev.ctrlKey || ev.metaKey) && ev.key === "z") { ev.preventDefault(); undo(); }
  else if (ev.key === "[" || ev.key === "]") {
    els.size.value = Number(els.size.value) + (ev.key === "]" ? 4 : -4);
    els.sizeValue.textContent = els.size.value;
  } else if (ev.key === "b") pick("brush");
  else if (ev.key === "e") pick("eraser");
  else if (ev.key === "r") pick("rect");
});
init();
