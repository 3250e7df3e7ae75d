// Facades drawn in the visitor's browser: the generator as ONNX (pix2pix/export.py), run by ONNX Runtime Web
// (assets/ort/, served by the app: webapp/browser.py), the noise by the seed rule's JavaScript twin (philox.js).
// page.js imports this module once the page is up and calls start().
//
// Which backend draws the facades: `?backend=browser` or `?backend=server` in the page's address forces one;
// otherwise ("auto") the browser, once the model is loaded and its first facade took at most FIRST_FACADE_MAX_MS
// (a slow phone is better served by the server). Until then, and whenever the browser cannot run the model (no
// WebAssembly, a model file that fails to load, ...), the server draws them, as it always has; the line under the
// status line (#backend) says which is in use and why. `?ep=wasm` or `?ep=webgpu` forces ONNX Runtime's backend,
// and `?threads=N` the number of WebAssembly threads (where the page is cross-origin isolated; else there is one).
//
// In browser mode the page's own events stay in the page: canvas.js hands strokes to canvasChanged() instead of
// sending them, and the clicks and keys of Generate, New seed, the seed box, "Vary with the seed" and the
// variations are taken here, before Gradio sees them (capture phase), so none reaches the server's queue. The
// loaders (examples, random layout, upload) stay server events: the server puts the label map on the canvas,
// and its facade is then drawn here. Element ids are Gradio's as they are; the facade's <img> gets our picture.

import { MAX_SEED, sampleNoise } from "./philox.js";

const FIRST_FACADE_MAX_MS = 1500;
const NUM_VARIATIONS = 4;
const params = new URLSearchParams(location.search);
const ASKED = ["browser", "server"].includes(params.get("backend")) ? params.get("backend") : "auto";
const EP = ["wasm", "webgpu"].includes(params.get("ep")) ? params.get("ep") : "auto";
const THREADS = Number.parseInt(params.get("threads"), 10) || 0; // WebAssembly threads; 0: the default below
const BASE = new URL(".", location.href);

const state = {
  backend: "server", // what draws the facades now: "server" or "browser"
  ep: null, // "WebAssembly, 2 threads" or "WebGPU"
  why: "", // why the server, when it is
  firstMs: null, // the first browser facade, mouse-up to picture, in ms
  modelMs: null, // from start() to the model ready, in ms
  downloaded: 0, // model bytes fetched (the runtime's own files are not counted here)
  runs: 0, // forwards run in the browser
  shownAt: null, // when the newest facade drawn here was on the page, decoded (performance.now())
};
let session = null;
let ort = null;
let info = null;
let seed = 0; // the seed of the facade on the page (the last good value of the seed box)
let busy = false;
let wanted = null; // the newest facade asked for while a forward ran: {reason}
let wantedVariations = false;
let lastKey = null;
const urls = { facade: null, variations: [] };

const $ = (selector) => document.querySelector(selector);
const board = () => $("#canvas canvas.p2p-grid");
const seedBox = () => $("#seed input");
const stochasticBox = () => $("#stochastic input");

// ------------------------------------------------------------------------------------------- the note
function note(text) {
  let line = $("#backend");
  if (!line) {
    line = document.createElement("p");
    line.id = "backend";
    line.setAttribute("aria-live", "polite");
    const status = $("#status");
    if (!status) return;
    status.after(line);
  }
  line.textContent = text;
}

function useServer(why) {
  state.backend = "server";
  state.why = why;
  document.body.dataset.backend = "server";
  window.p2pLocal.active = false;
  note(`Facades are drawn on the server: ${why}.`);
}

// ------------------------------------------------------------------------------------------- loading
async function hardwareWebGpu() {
  if (!navigator.gpu) return false;
  try {
    const adapter = await navigator.gpu.requestAdapter();
    if (!adapter) return false;
    const about = adapter.info || {};
    const name = `${about.vendor || ""} ${about.architecture || ""} ${about.description || ""}`.toLowerCase();
    return !(adapter.isFallbackAdapter || about.isFallbackAdapter || /swiftshader|llvmpipe|software/.test(name));
  } catch {
    return false;
  }
}

async function fetchModel(url, total) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`the model file answered HTTP ${response.status}`);
  const reader = response.body.getReader();
  const parts = [];
  let got = 0;
  let shown = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    parts.push(value);
    got += value.length;
    if (got - shown > 2e6) {
      shown = got;
      note(`Loading the model into your browser (${(got / 1e6).toFixed(0)} of ${(total / 1e6).toFixed(0)} MB); ` +
        "until then the server draws the facades.");
    }
  }
  state.downloaded = got;
  const bytes = new Uint8Array(got);
  let at = 0;
  for (const part of parts) {
    bytes.set(part, at);
    at += part.length;
  }
  return bytes;
}

async function createSession(bytes) {
  const gpu = EP === "webgpu" || (EP === "auto" && (await hardwareWebGpu()));
  const runtime = new URL(info.ort, BASE).href;
  if (gpu) {
    try {
      ort = await import(`${runtime}ort.webgpu.min.mjs`);
      ort.env.wasm.wasmPaths = runtime;
      session = await ort.InferenceSession.create(bytes, { executionProviders: ["webgpu"] });
      state.ep = "WebGPU";
      return;
    } catch (error) {
      console.warn("facade-pix2pix: WebGPU failed, using WebAssembly", error);
    }
  }
  ort = await import(`${runtime}ort.wasm.min.mjs`);
  // All cores but one, at most 4: the page's own thread (the canvas, the pictures) keeps a core, as the server
  // keeps one for its Python (webapp/serving.py). Measured on 2 cores: 4 pages of 2 threads each took 7x as long
  // per facade as 4 pages of 1 (the threads wait for each other while others hold the cores; docs/browser.md).
  const most = Math.min(4, Math.max(1, (navigator.hardwareConcurrency || 1) - 1));
  const threads = self.crossOriginIsolated ? Math.max(1, THREADS ? Math.min(THREADS, 16) : most) : 1;
  ort.env.wasm.wasmPaths = runtime;
  ort.env.wasm.numThreads = threads;
  session = await ort.InferenceSession.create(bytes, { executionProviders: ["wasm"], graphOptimizationLevel: "all" });
  state.ep = `WebAssembly, ${threads} thread${threads > 1 ? "s" : ""}`;
}

// ------------------------------------------------------------------------------------------- the model
function labels(count) {
  const grid = board().p2p.grid();
  const colours = board().p2p.palette();
  const n = grid.length;
  const out = new Float32Array(count * 3 * n);
  for (let c = 0; c < 3; c++) {
    const table = colours.map((rgb) => rgb[c] / 127.5 - 1); // uint8_to_tensor in pix2pix/images.py
    for (let i = 0; i < n; i++) out[c * n + i] = table[grid[i]];
  }
  for (let k = 1; k < count; k++) out.copyWithin(k * 3 * n, 0, 3 * n);
  return out;
}

async function forward(seeds, stochastic) {
  const size = info.size;
  const count = seeds.length;
  const feeds = { labels: new ort.Tensor("float32", labels(count), [count, 3, size, size]) };
  const noise = stochastic ? sampleNoise(seeds, info.shapes, info.nz, info.p) : null;
  info.shapes.forEach((shape, k) => {
    const n = shape.reduce((a, b) => a * b, 1);
    const mask = noise ? noise.masks[k] : new Float32Array(count * n).fill(1);
    feeds[`mask${k}`] = new ort.Tensor("float32", mask, [count, ...shape]);
  });
  if (info.nz) feeds.code = new ort.Tensor("float32", noise ? noise.z : new Float32Array(count * info.nz), [count, info.nz]);
  const result = await session.run(feeds);
  state.runs += 1;
  return result.facade.data;
}

// One facade of the output batch as a PNG blob URL: tensor_to_image of pix2pix/images.py.
async function pictureUrl(data, index) {
  const size = info.size;
  const n = size * size;
  const scratch = document.createElement("canvas");
  scratch.width = size;
  scratch.height = size;
  const sctx = scratch.getContext("2d");
  const image = sctx.createImageData(size, size);
  const at = index * 3 * n;
  for (let i = 0; i < n; i++) {
    for (let c = 0; c < 3; c++) {
      const v = Math.min(1, Math.max(-1, data[at + c * n + i]));
      image.data[4 * i + c] = Math.round((v + 1) * 127.5);
    }
    image.data[4 * i + 3] = 255;
  }
  sctx.putImageData(image, 0, 0);
  const blob = await new Promise((done) => scratch.toBlob(done, "image/png"));
  return URL.createObjectURL(blob);
}

// ------------------------------------------------------------------------------------------- the page
function readSeed() {
  const text = (seedBox()?.value ?? "").trim();
  if (!/^\+?\d+$/.test(text)) return null;
  const value = Number(text);
  return value <= MAX_SEED ? value : null;
}

function seedError(text) {
  const box = $("#seed-error .prose") || $("#seed-error");
  if (!box) return;
  box.innerHTML = "";
  if (!text) return;
  const line = document.createElement("p");
  line.className = "p2p-message";
  line.setAttribute("role", "alert");
  line.textContent = text;
  box.append(line);
}

function status(text) {
  const line = $("#status span.md") || $("#status");
  if (line) line.innerHTML = `<p>${text}</p>`;
}

function facadeName(s, stochastic) {
  return stochastic ? `facade-seed${s}` : "facade-any-seed";
}

function showFacade(url, name) {
  const img = $("#facade img");
  if (!img) return;
  img.src = url;
  img.dataset.localSrc = img.src;
  img.dataset.name = name;
  if (urls.facade) URL.revokeObjectURL(urls.facade);
  urls.facade = url;
}

async function drawFacade() {
  const stochastic = Boolean(stochasticBox()?.checked ?? true);
  const key = `${seed}|${stochastic}|${board().p2p.grid().join("")}`;
  if (key === lastKey) return;
  const start = performance.now();
  const data = await forward([seed], stochastic);
  const url = await pictureUrl(data, 0);
  const seconds = (performance.now() - start) / 1000;
  lastKey = key;
  showFacade(url, facadeName(seed, stochastic));
  await $("#facade img")?.decode().catch(() => {});
  state.shownAt = performance.now();
  const what = stochastic ? `Seed ${seed}` : "Variation off: the same facade for every seed";
  status(`${what} · drawn in your browser in ${seconds.toFixed(2)} s`);
  const facade = $("#facade");
  if (facade) facade.dataset.localRuns = String(state.runs);
  return seconds;
}

function variationsGrid() {
  let grid = $("#variations .p2p-local-grid");
  if (!grid) {
    grid = document.createElement("div");
    grid.className = "p2p-local-grid";
    $("#variations")?.append(grid);
  }
  return grid;
}

function clearVariations() {
  const grid = $("#variations .p2p-local-grid");
  if (grid) grid.innerHTML = "";
  urls.variations.forEach((url) => URL.revokeObjectURL(url));
  urls.variations = [];
}

async function drawVariations() {
  const stochastic = Boolean(stochasticBox()?.checked ?? true);
  const first = Math.min(seed, MAX_SEED - NUM_VARIATIONS + 1);
  const seeds = Array.from({ length: NUM_VARIATIONS }, (_, i) => first + i);
  const data = await forward(seeds, stochastic);
  const pictures = await Promise.all(seeds.map((_, i) => pictureUrl(data, i)));
  clearVariations();
  urls.variations = pictures;
  const grid = variationsGrid();
  const title = document.createElement("p");
  title.className = "p2p-local-title";
  title.textContent = stochastic ? `Seeds ${seeds[0]} to ${seeds.at(-1)}` : "Variation off: all four are the same";
  grid.append(title);
  seeds.forEach((s, i) => {
    const item = document.createElement("button");
    item.type = "button";
    item.className = "p2p-local-item";
    item.dataset.seed = String(s);
    const img = document.createElement("img");
    img.src = pictures[i];
    img.alt = stochastic ? `seed ${s}` : "any seed";
    img.dataset.localSrc = img.src;
    img.dataset.name = facadeName(s, stochastic);
    const caption = document.createElement("span");
    caption.textContent = img.alt;
    item.append(img, caption);
    grid.append(item);
  });
}

// At most one forward at a time; a facade asked for meanwhile is drawn next (only the newest), then variations.
async function pump() {
  if (busy) return;
  busy = true;
  try {
    while (wanted || wantedVariations) {
      if (wanted) {
        wanted = null;
        await drawFacade();
      } else {
        wantedVariations = false;
        await drawVariations();
      }
    }
  } catch (error) {
    console.error("facade-pix2pix: the browser could not draw the facade", error);
    status(`The browser could not draw the facade (${error.message || error}); reload the page to use the server.`);
  } finally {
    busy = false;
  }
}

function want(what = "facade") {
  if (what === "variations") wantedVariations = true;
  else wanted = { what };
  pump();
}

function applySeed(value) {
  seed = value;
  const box = seedBox();
  if (box && box.value !== String(value)) box.value = String(value);
  seedError("");
  want();
}

// The seed box as typed: a valid new seed applies at once; Enter or leaving the box puts a bad value back.
function commitSeed() {
  const value = readSeed();
  if (value === null) {
    const text = seedBox()?.value ?? "";
    seedError(`The seed must be a whole number in 0..${MAX_SEED}, got '${text}': the seed is back to ${seed}.`);
    seedBox().value = String(seed);
    return;
  }
  if (value !== seed) applySeed(value);
}

function inside(event, selector) {
  return event.target instanceof Element && event.target.closest(selector);
}

function take(event) {
  event.stopPropagation();
  event.preventDefault();
}

function listen() {
  document.addEventListener("click", (event) => {
    if (state.backend !== "browser") return;
    const item = inside(event, "#variations .p2p-local-item");
    if (item) {
      take(event);
      const img = item.querySelector("img");
      seed = Number(item.dataset.seed);
      seedBox().value = String(seed);
      const url = urls.facade;
      urls.facade = null; // the picture now belongs to the facade too: keep it
      showFacade(img.src, img.dataset.name);
      if (url && !urls.variations.includes(url)) URL.revokeObjectURL(url);
      urls.variations = urls.variations.filter((u) => u !== img.src);
      lastKey = null;
      status(`Seed ${seed} · drawn in your browser (a variation)`);
      return;
    }
    if (inside(event, "#generate")) {
      take(event);
      const value = readSeed();
      if (value === null) commitSeed();
      else {
        seed = value;
        lastKey = null;
        want();
      }
    } else if (inside(event, "#new-seed")) {
      take(event);
      applySeed(Math.floor(Math.random() * (MAX_SEED - NUM_VARIATIONS + 2)));
    } else if (inside(event, "#variations-btn")) {
      take(event);
      const value = readSeed();
      if (value !== null) seed = value;
      want("variations");
    }
  }, true);
  for (const type of ["input", "change"]) {
    document.addEventListener(type, (event) => {
      if (state.backend !== "browser") return;
      if (inside(event, "#seed")) {
        event.stopPropagation();
        const value = type === "input" ? readSeed() : null;
        if (value !== null && value !== seed) applySeed(value);
      } else if (inside(event, "#stochastic")) {
        event.stopPropagation();
        if (type === "change") want();
      }
    }, true);
  }
  document.addEventListener("keydown", (event) => {
    if (state.backend === "browser" && event.key === "Enter" && inside(event, "#seed")) {
      take(event);
      commitSeed();
    }
  }, true);
  document.addEventListener("blur", (event) => {
    if (state.backend === "browser" && inside(event, "#seed")) {
      event.stopPropagation();
      commitSeed();
    }
  }, true);
}

// canvas.js: a stroke, an edit or a loaded label map.
function canvasChanged() {
  clearVariations();
  want();
}

// ------------------------------------------------------------------------------------------- start
async function until(ready, ms = 30_000) {
  const end = performance.now() + ms;
  while (!ready()) {
    if (performance.now() > end) throw new Error("the page did not finish loading");
    await new Promise((done) => setTimeout(done, 50));
  }
}

export async function start() {
  // idle(): nothing drawing nor waiting to be drawn (for tests and benchmarks).
  window.p2pLocal = { active: false, canvasChanged, state, idle: () => !busy && !wanted && !wantedVariations };
  if (ASKED === "server") {
    useServer("?backend=server in the address");
    return state;
  }
  const began = performance.now();
  note("Loading the model into your browser; until then the server draws the facades.");
  try {
    if (typeof WebAssembly !== "object") throw new Error("this browser has no WebAssembly");
    const response = await fetch(new URL("p2p/model.json", BASE));
    const body = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(body.error || `the model description answered HTTP ${response.status}`);
    info = body;
    await until(() => board()?.p2p && $("#facade img"));
    await createSession(await fetchModel(new URL(info.url, BASE), info.bytes));
    state.modelMs = performance.now() - began;
    seed = readSeed() ?? 0;
    const first = performance.now();
    await drawFacade();
    state.firstMs = performance.now() - first;
  } catch (error) {
    console.error("facade-pix2pix: drawing in the browser failed", error);
    useServer(`your browser could not run the model (${error.message || error})`);
    return state;
  }
  if (ASKED === "auto" && state.firstMs > FIRST_FACADE_MAX_MS) {
    useServer(`your browser took ${(state.firstMs / 1000).toFixed(1)} s for a facade, the server is faster`);
    return state;
  }
  state.backend = "browser";
  document.body.dataset.backend = "browser";
  window.p2pLocal.active = true;
  note(`Facades are drawn in your browser (${state.ep}): painting costs the server nothing.`);
  want(); // the canvas may have changed while the first facade was drawn
  return state;
}

listen();
