// The page's one controller. It owns the seed box, "Vary with the seed", New seed, Generate, the variations,
// the status line, the file names of the pictures and "the newest request wins", and draws every facade
// through one of two renderers with the same call (renderers.js): the server, or ONNX Runtime Web in a worker
// with the seed rule. The Python side only loads label maps onto the canvas (examples, random layout, upload:
// webapp/handlers.py); canvas.js then tells canvasChanged(), and the facade is drawn once, here.
//
// Which renderer: `?backend=browser` or `?backend=server` in the address forces one; otherwise ("auto") the
// browser, once the model is loaded and its first facade took at most FIRST_FACADE_MAX_MS (a slow phone is
// better served by the server). Until then, and whenever the browser cannot run the model, the server draws;
// the line under the status line (#backend) says which, and why. `?ep=wasm|webgpu` forces ONNX Runtime's
// backend (`webgpu`: on whatever adapter the browser offers, software ones included; the automatic choice takes
// WebGPU on a hardware adapter only) and `?threads=N` the WebAssembly threads (where the page is cross-origin
// isolated; else one). Where WebGPU fails, at load or during a run, WebAssembly draws and the line says so.
//
// page.js imports this module once the page is up and calls start().

import { MAX_SEED } from "./philox.js";
import { browserRenderer, serverRenderer } from "./renderers.js";

const FIRST_FACADE_MAX_MS = 1500;
const params = new URLSearchParams(location.search);
const ASKED = ["browser", "server"].includes(params.get("backend")) ? params.get("backend") : "auto";
const EP = ["wasm", "webgpu"].includes(params.get("ep")) ? params.get("ep") : "auto";
const THREADS = Number.parseInt(params.get("threads"), 10) || 0;
const BASE = new URL(".", location.href);
const WHERE = { server: "on the server", browser: "in your browser" };

const state = {
  config: null, // /p2p/page.json
  renderer: serverRenderer(BASE),
  seed: 0, // the seed of the facade on the page: the seed box's last good value
  shownKey: null, // what the facade on the page was drawn from: grid, seed and switch
  line: null, // the facade's status line: line(same)
  busy: false,
  wanted: null, // the newest facade asked for while another was drawn: {live, same}
  wantedVariations: false,
  variations: [], // the four on the page: {seed, url, name}
  facadeUrl: null,
  firstMs: null, // the first browser facade, in ms
  modelMs: null, // from start() to the model ready, in ms
  fetched: 0, // bytes the browser renderer fetched (model, runtime) on this visit
  shownAt: null, // when the newest facade was on the page, decoded (performance.now())
  drawn: { server: 0, browser: 0 }, // facades drawn by each renderer
};

const $ = (selector) => document.querySelector(selector);
const board = () => $("#canvas canvas.p2p-grid");
const seedBox = () => $("#seed input");
const stochastic = () => Boolean($("#stochastic input")?.checked ?? true);

// ------------------------------------------------------------------------------------------- words
function note(text) {
  const line = $("#backend");
  if (!line) return;
  line.textContent = text;
  line.title = text; // the line keeps two lines' room; a longer reason is whole on hover
}

function status(text) {
  const line = $("#status");
  if (line) line.textContent = text;
}

const SAME = " · the same layout and seed always give this same facade: New seed draws another";
const SAME_OFF = " · turn Vary with the seed on for other facades";

// The status line under the facade: which seed drew it, where, and how long it took (`same`: said again on
// Generate, with why it is the same facade).
function statusLine(seed, vary, where, seconds, batch, same) {
  let took = `drawn ${WHERE[where]} in ${seconds.toFixed(2)} s`;
  if (batch > 1) took += `, together with ${batch - 1} other request${batch > 2 ? "s" : ""}`;
  const line = `${vary ? `Seed ${seed}` : "Variation off: the same facade for every seed"} · ${took}`;
  return same ? line + (vary ? SAME : SAME_OFF) : line;
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

// The pictures' file names are the app's (webapp/serving.py, through /p2p/page.json), as its API's are.
function fileName(seed, vary) {
  const names = state.config.names;
  return vary ? names.seed.replace("{seed}", String(seed)) : names.any;
}

// ------------------------------------------------------------------------------------------- drawing
function gridKey(grid, seed, vary) {
  let hash = 2166136261;
  for (let i = 0; i < grid.length; i++) hash = Math.imul(hash ^ grid[i], 16777619);
  return `${hash >>> 0}|${seed}|${vary}`;
}

async function showFacade(url, name) {
  const img = $("#facade img");
  if (!img) return;
  img.src = url;
  img.dataset.name = name;
  await img.decode().catch(() => {});
  state.shownAt = performance.now();
  const old = state.facadeUrl;
  state.facadeUrl = url;
  if (old && old !== url && !state.variations.some((v) => v.url === old)) URL.revokeObjectURL(old);
}

async function drawFacade(job) {
  const grid = board().p2p.grid().slice();
  const seed = state.seed;
  const vary = stochastic();
  const key = gridKey(grid, seed, vary);
  if (key === state.shownKey) {
    if (job.same && state.line) status(state.line(true)); // Generate on what is shown: say why it is the same
    return;
  }
  const renderer = state.renderer;
  await showDrawn(await renderer.render(grid, [seed], vary), seed, vary, renderer, key);
}

// A facade a renderer drew (`out`: its answer), on the page with its status line.
async function showDrawn(out, seed, vary, renderer, key) {
  state.drawn[renderer.name] += 1;
  await showFacade(URL.createObjectURL(out.blobs[0]), fileName(seed, vary));
  state.shownKey = key;
  state.line = (same) => statusLine(seed, vary, renderer.name, out.seconds, out.batch, same);
  status(state.line(false));
}

function variationsBox() {
  return $("#variations .prose") || $("#variations");
}

function clearVariations() {
  const box = variationsBox();
  if (box) box.innerHTML = "";
  for (const v of state.variations) if (v.url !== state.facadeUrl) URL.revokeObjectURL(v.url);
  state.variations = [];
}

async function drawVariations() {
  const grid = board().p2p.grid().slice();
  const vary = stochastic();
  const count = state.config.variations;
  const first = Math.min(state.seed, MAX_SEED - count + 1);
  const seeds = Array.from({ length: count }, (_, i) => first + i);
  const out = await state.renderer.render(grid, seeds, vary);
  clearVariations();
  const key = (seed) => gridKey(grid, seed, vary);
  state.variations = seeds.map((seed, i) => ({ seed, key: key(seed), url: URL.createObjectURL(out.blobs[i]),
    name: fileName(seed, vary) }));
  const title = document.createElement("p");
  title.className = "p2p-var-title";
  title.textContent = vary ? `Seeds ${seeds[0]} to ${seeds.at(-1)}` : "Variation off: all four are the same";
  const list = document.createElement("div");
  list.className = "p2p-var-grid";
  for (const v of state.variations) {
    const item = document.createElement("button");
    item.type = "button";
    item.className = "p2p-var-item";
    item.dataset.seed = String(v.seed);
    const img = document.createElement("img");
    img.src = v.url;
    img.alt = vary ? `seed ${v.seed}` : "any seed";
    img.dataset.name = v.name;
    const caption = document.createElement("span");
    caption.textContent = img.alt;
    item.append(img, caption);
    list.append(item);
  }
  variationsBox()?.append(title, list);
  await Promise.all([...list.querySelectorAll("img")].map((img) => img.decode().catch(() => {})));
}

// At most one drawing at a time; what is asked for meanwhile waits, and only the newest facade is drawn.
async function pump() {
  if (state.busy || !state.config) return; // before the page is up, what is asked for waits
  state.busy = true;
  try {
    while (state.wanted || state.wantedVariations) {
      const job = state.wanted;
      const target = job ? "facade" : "variations";
      if (job) state.wanted = null;
      else state.wantedVariations = false;
      const quiet = job?.live;
      if (!quiet) window.p2pBusy?.(target);
      try {
        await (job ? drawFacade(job) : drawVariations());
      } catch (error) {
        failed(error);
      } finally {
        if (!quiet) window.p2pDone?.(target);
      }
    }
  } finally {
    state.busy = false;
  }
}

function failed(error) {
  console.error("facade-pix2pix: drawing failed", error);
  const why = error.message || String(error);
  if (state.renderer.name === "browser") {
    useServer(`your browser could not draw the facade (${why})`);
    want();
  } else {
    status(`The server could not draw the facade: ${why}`);
  }
}

function want(job = {}) {
  if (job.variations) state.wantedVariations = true;
  else state.wanted = { live: Boolean(job.live && (!state.wanted || state.wanted.live)), same: Boolean(job.same) };
  pump();
}

// ------------------------------------------------------------------------------------------- the seed
function readSeed() {
  const text = (seedBox()?.value ?? "").trim();
  if (!/^\+?\d+$/.test(text)) return null;
  const value = Number(text);
  return value <= MAX_SEED ? value : null;
}

function setSeed(value, job = {}) {
  state.seed = value;
  const box = seedBox();
  if (box && box.value !== String(value)) box.value = String(value);
  seedError("");
  want(job);
}

// Enter, leaving the box, Generate: a bad value goes back to the last good seed, saying why next to the box.
function commitSeed(job = {}) {
  const value = readSeed();
  if (value === null) {
    const text = (seedBox()?.value ?? "").trim();
    const why = /^\+?\d+$/.test(text) ? `must lie in 0..${MAX_SEED}` : `must be a whole number in 0..${MAX_SEED}`;
    seedError(`The seed ${why}, got '${text}': the seed is back to ${state.seed}.`);
    seedBox().value = String(state.seed);
    return;
  }
  if (value !== state.seed || job.same) setSeed(value, job);
}

function pickVariation(item) {
  const v = state.variations.find((x) => String(x.seed) === item.dataset.seed);
  if (!v) return;
  state.seed = v.seed;
  seedBox().value = String(v.seed);
  seedError("");
  showFacade(v.url, v.name);
  state.shownKey = v.key;
  state.line = (same) => `Seed ${v.seed} · picked from the variations` + (same ? SAME : "");
  status(state.line(false));
}

function inside(event, selector) {
  return event.target instanceof Element && event.target.closest(selector);
}

function listen() {
  document.addEventListener("click", (event) => {
    const item = inside(event, "#variations .p2p-var-item");
    if (item) pickVariation(item);
    else if (inside(event, "#generate")) commitSeed({ same: true });
    else if (inside(event, "#new-seed") && state.config) {
      const count = state.config.variations; // room for the variations after the seed
      setSeed(Math.floor(Math.random() * (MAX_SEED - count + 2)));
    } else if (inside(event, "#variations-btn")) {
      const value = readSeed();
      if (value !== null && value !== state.seed) setSeed(value);
      want({ variations: true });
    }
  });
  document.addEventListener("input", (event) => {
    if (!inside(event, "#seed")) return;
    const value = readSeed();
    if (value !== null && value !== state.seed) setSeed(value);
  });
  document.addEventListener("change", (event) => {
    if (inside(event, "#stochastic")) want();
  });
  document.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && inside(event, "#seed")) commitSeed();
  });
  document.addEventListener("focusout", (event) => {
    if (inside(event, "#seed")) commitSeed();
  });
}

// canvas.js: a stroke (live: while it is painted), an edit, or a label map a loader put on the canvas.
function canvasChanged({ live = false, loaded = false } = {}) {
  clearVariations();
  if (!loaded) {
    const layout = $("#layout-seed input");
    if (layout && layout.value !== "") {
      layout.value = "";
      layout.dispatchEvent(new Event("input", { bubbles: true }));
    }
  }
  want({ live });
}

// ------------------------------------------------------------------------------------------- start
function useServer(why) {
  state.renderer = serverRenderer(BASE);
  document.body.dataset.backend = "server";
  note(`Facades are drawn on the server: ${why}.`);
}

function megabytes(bytes) {
  return `${(bytes / 1e6).toFixed(bytes < 10e6 ? 1 : 0)} MB`;
}

// While the model loads: its size as downloaded, and how much of it is here, in per cent of the model's own
// bytes (the worker counts the response body, inflated; a count of those against the compressed size would read
// "13 of 12 MB").
async function loadBrowser(model) {
  const began = performance.now();
  const loading = (done) => `Loading the model into your browser (${megabytes(model.download)}, once${done}); ` +
    "until then the server draws the facades.";
  note(loading(""));
  let shown = 0;
  const progress = (got, total) => {
    const percent = Math.min(100, Math.floor((100 * got) / total));
    if (percent - shown < 10) return;
    shown = percent;
    note(loading(`: ${percent}%`));
  };
  const most = Math.min(4, Math.max(1, (navigator.hardwareConcurrency || 1) - 1));
  const threads = self.crossOriginIsolated ? Math.max(1, THREADS ? Math.min(THREADS, 16) : most) : 1;
  const renderer = await browserRenderer(BASE, model, board().p2p.palette(), { ep: EP, threads }, progress);
  state.worker = renderer;
  state.modelMs = performance.now() - began;
  state.fetched = renderer.fetched;
  const grid = board().p2p.grid().slice();
  const [seed, vary] = [state.seed, stochastic()];
  const first = performance.now();
  const out = await renderer.render(grid, [seed], vary); // the first facade, timed
  state.firstMs = performance.now() - first;
  return { renderer, first: { key: gridKey(grid, seed, vary), seed, vary, out } };
}

async function until(ready, ms = 30_000) {
  const end = performance.now() + ms;
  while (!ready()) {
    if (performance.now() > end) throw new Error("the page did not finish loading");
    await new Promise((done) => setTimeout(done, 50));
  }
}

async function chooseRenderer() {
  const model = state.config.model;
  if (ASKED === "server") return useServer("the page's address asks for it");
  if (!model) return useServer(state.config.problem || "the server offers no model to browsers");
  let renderer, first;
  try {
    if (typeof WebAssembly !== "object") throw new Error("this browser has no WebAssembly");
    ({ renderer, first } = await loadBrowser(model));
  } catch (error) {
    console.error("facade-pix2pix: drawing in the browser failed", error);
    return useServer(`your browser could not run the model (${error.message || error})`);
  }
  if (ASKED === "auto" && state.firstMs > FIRST_FACADE_MAX_MS) {
    return useServer(`your browser took ${(state.firstMs / 1000).toFixed(1)} s for a facade, the server is faster`);
  }
  state.renderer = renderer;
  document.body.dataset.backend = "browser";
  noteBrowser(renderer);
  renderer.onChange = noteBrowser; // WebGPU failed during a run: WebAssembly draws from then on
  if (first.key === gridKey(board().p2p.grid(), state.seed, stochastic()) && !state.busy && !state.wanted) {
    state.busy = true; // what is asked for meanwhile waits for it (pump)
    try {
      await showDrawn(first.out, first.seed, first.vary, renderer, first.key); // the timed facade: no second forward
    } finally {
      state.busy = false;
      pump();
    }
  } else {
    state.shownKey = null;
    want(); // the canvas or the seed changed while the model loaded: draw it here
  }
}

function noteBrowser(renderer) {
  const webgpu = renderer.webgpu ? `; ${renderer.webgpu}` : "";
  note(`Facades are drawn in your browser (${renderer.ep}${webgpu}): painting costs the server nothing.`);
}

async function wire() {
  const page = performance.getEntriesByType("resource").reduce((sum, e) => sum + (e.transferSize || 0), 0);
  const nav = performance.getEntriesByType("navigation")[0]?.transferSize || 0;
  const worker = state.worker ? await state.worker.wire() : 0;
  return { page: page + nav, worker };
}

export async function start() {
  // For tests and benchmarks: idle() (nothing drawing nor waiting), active() (the browser draws), wire() (bytes
  // this visit fetched over the wire: the page's thread and the model's worker).
  window.p2pPage = { canvasChanged, state, idle: () => !state.busy && !state.wanted && !state.wantedVariations,
    active: () => state.renderer.name === "browser", wire };
  listen();
  document.body.dataset.backend = "server";
  const response = await fetch(new URL("p2p/page.json", BASE));
  state.config = await response.json();
  await until(() => board()?.p2p && $("#canvas .p2p")?.dataset.loaded && $("#facade img"));
  const begin = state.config.start;
  state.seed = readSeed() ?? begin.seed;
  if (!state.shownKey && !state.wanted) { // else the canvas changed before the page was up: draw it
    state.shownKey = gridKey(board().p2p.grid(), begin.seed, true);
    state.line = (same) => statusLine(begin.seed, true, "server", begin.seconds, 1, same);
    status(state.line(false));
  }
  if (state.seed !== begin.seed || !$("#stochastic input")?.checked || state.wanted) want();
  window.p2pPage.ready = true;
  $("#facade img").dataset.name = fileName(begin.seed, true);
  await chooseRenderer();
  return state;
}
