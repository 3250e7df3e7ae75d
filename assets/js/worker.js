// The model, off the page's main thread: a module worker (browser.js starts it) that loads ONNX Runtime Web
// and the generator, draws the seed's noise (philox.js) and runs the forwards, and hands back each facade as
// a PNG blob, so the page's own thread only puts a picture in an <img>. Messages in: {id, type: "load", ...}
// and {id, type: "run", grid, palette, seeds, stochastic}; out: {id, ok, ...} or {id, ok: false, error}, and
// {type: "progress", got, total} while the model downloads (both counts of the model's own bytes, as the
// response body gives them: inflated, whatever the compression on the wire).
//
// The model and the runtime's .wasm are kept in Cache Storage ("facade-pix2pix"), keyed by their URLs, which
// name the model's hash and the runtime's version: a reload or a later visit fetches neither, whatever the
// size of the browser's HTTP cache, and a new model replaces the old entry.

import { sampleNoise } from "./philox.js";

const CACHE = "facade-pix2pix";
let ort = null;
let session = null;
let info = null;
let settings = null; // load's runtime folder and WebAssembly threads
let onGpu = false; // the session runs on WebGPU
let wasmFetched = 0; // bytes of the WebAssembly runtime fetched over the wire

async function cached(url, kind, onProgress) {
  const store = self.caches ? await self.caches.open(CACHE).catch(() => null) : null;
  const hit = store && (await store.match(url));
  if (hit) return { bytes: new Uint8Array(await hit.arrayBuffer()), fetched: 0 };
  const response = await fetch(url);
  if (!response.ok) throw new Error(`the ${kind} file answered HTTP ${response.status}`);
  const bytes = await readAll(response, onProgress);
  if (store) {
    // One entry per kind: a new model (or runtime) replaces the old one.
    for (const old of await store.keys()) {
      if (old.url !== url && old.url.includes(`/p2p/${kind}/`)) await store.delete(old);
    }
    await store.put(url, new Response(bytes, { headers: { "Content-Type": "application/octet-stream" } }))
      .catch(() => {}); // a full disk: it is fetched again next time
  }
  return { bytes, fetched: bytes.length };
}

async function readAll(response, onProgress) {
  const reader = response.body.getReader();
  const parts = [];
  let got = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    parts.push(value);
    got += value.length;
    if (onProgress) onProgress(got);
  }
  const bytes = new Uint8Array(got);
  let at = 0;
  for (const part of parts) {
    bytes.set(part, at);
    at += part.length;
  }
  return bytes;
}

// The browser's WebGPU adapter, or null: any adapter when `anyAdapter` (`?ep=webgpu`: software ones such as
// SwiftShader too), else a hardware one only (the automatic choice: a software adapter is slower than WebAssembly).
async function webGpuAdapter(anyAdapter) {
  if (!self.navigator.gpu) return null;
  try {
    const adapter = await self.navigator.gpu.requestAdapter();
    if (!adapter || anyAdapter) return adapter;
    const about = adapter.info || {};
    const name = `${about.vendor || ""} ${about.architecture || ""} ${about.description || ""}`.toLowerCase();
    const software = adapter.isFallbackAdapter || about.isFallbackAdapter || /swiftshader|llvmpipe|software/.test(name);
    return software ? null : adapter;
  } catch {
    return null;
  }
}

// WebGPU where asked for (`ep` "webgpu": on whatever adapter the browser offers) or where the browser has a
// hardware adapter (its runtime is fetched only then), else WebAssembly on `threads` threads.
// Returns {ep, webgpu: "" | why WebGPU was not used, fetched}.
async function load({ model, runtime, ep, threads, total }) {
  info = model;
  settings = { runtime, threads };
  const adapter = ep === "wasm" ? null : await webGpuAdapter(ep === "webgpu");
  let webgpu = ep === "webgpu" && !adapter ? "this browser offers no WebGPU" : "";
  const progress = (got) => self.postMessage({ type: "progress", got, total });
  const { bytes, fetched } = await cached(model.url, "model", progress);
  if (adapter) {
    try {
      ort = await import(`${runtime}ort.webgpu.min.mjs`);
      ort.env.wasm.wasmPaths = runtime;
      ort.env.webgpu.adapter = adapter; // the adapter chosen here, software or not, not ORT's own pick
      session = await ort.InferenceSession.create(bytes, { executionProviders: ["webgpu"] });
      onGpu = true;
      return { ep: "WebGPU", webgpu: "", fetched };
    } catch (error) {
      webgpu = `WebGPU failed (${error.message || error})`;
    }
  }
  return { ...(await loadWasm(bytes)), webgpu, fetched: fetched + wasmFetched };
}

// The WebAssembly session (at load, or when WebGPU fails during a run: a runtime of its own, a module apart).
async function loadWasm(bytes) {
  const { runtime, threads } = settings;
  const wasm = await cached(`${runtime}ort-wasm-simd-threaded.wasm`, "ort", null);
  wasmFetched = wasm.fetched;
  ort = await import(`${runtime}ort.wasm.min.mjs`);
  ort.env.wasm.wasmPaths = runtime;
  ort.env.wasm.wasmBinary = wasm.bytes.buffer;
  ort.env.wasm.numThreads = threads;
  // disable_quant_qdq: the int8 weights' DequantizeLinear nodes are folded into fp32 weights once, at load, not
  // run on every forward (ONNX Runtime keeps them for quantised kernels otherwise; this model has none).
  session = await ort.InferenceSession.create(bytes, { executionProviders: ["wasm"], graphOptimizationLevel: "all",
    extra: { session: { disable_quant_qdq: "1" } } });
  onGpu = false;
  return { ep: `WebAssembly, ${threads} thread${threads > 1 ? "s" : ""}` };
}

// The label grid through the palette, as pix2pix.images.uint8_to_tensor: c / 127.5 - 1, `count` times.
function labels(grid, palette, count) {
  const n = grid.length;
  const out = new Float32Array(count * 3 * n);
  for (let c = 0; c < 3; c++) {
    const table = palette.map((rgb) => rgb[c] / 127.5 - 1);
    for (let i = 0; i < n; i++) out[c * n + i] = table[grid[i]];
  }
  for (let k = 1; k < count; k++) out.copyWithin(k * 3 * n, 0, 3 * n);
  return out;
}

// One facade of the output batch as a PNG blob: tensor_to_image of pix2pix/images.py.
async function picture(data, index, size) {
  const n = size * size;
  const pixels = new Uint8ClampedArray(4 * n);
  const at = index * 3 * n;
  for (let i = 0; i < n; i++) {
    for (let c = 0; c < 3; c++) {
      const v = Math.min(1, Math.max(-1, data[at + c * n + i]));
      pixels[4 * i + c] = Math.round((v + 1) * 127.5);
    }
    pixels[4 * i + 3] = 255;
  }
  const canvas = new OffscreenCanvas(size, size);
  canvas.getContext("2d").putImageData(new ImageData(pixels, size, size), 0, 0);
  return canvas.convertToBlob({ type: "image/png" });
}

async function forward({ grid, palette, seeds, stochastic }) {
  const size = info.size;
  const count = seeds.length;
  const feeds = { labels: new ort.Tensor("float32", labels(grid, palette, count), [count, 3, size, size]) };
  const noise = stochastic ? sampleNoise(seeds, info.shapes, info.nz, info.p) : null;
  info.shapes.forEach((shape, k) => {
    const n = shape.reduce((a, b) => a * b, 1);
    const mask = noise ? noise.masks[k] : new Float32Array(count * n).fill(1);
    feeds[`mask${k}`] = new ort.Tensor("float32", mask, [count, ...shape]);
  });
  if (info.nz) feeds.code = new ort.Tensor("float32", noise ? noise.z : new Float32Array(count * info.nz), [count, info.nz]);
  const result = await session.run(feeds);
  const blobs = [];
  for (let i = 0; i < count; i++) blobs.push(await picture(result.facade.data, i, size));
  return { blobs };
}

// A forward; where WebGPU fails during one (a lost device, a driver error), the model is loaded again on
// WebAssembly and the forward run there, and the answer says so ({ep, webgpu}: the page's line changes).
async function run(job) {
  if (!onGpu) return forward(job);
  try {
    return await forward(job);
  } catch (error) {
    const why = `WebGPU failed during a run (${error.message || error})`;
    const { bytes } = await cached(info.url, "model", null);
    const { ep } = await loadWasm(bytes);
    return { ...(await forward(job)), ep, webgpu: why };
  }
}

// What this worker fetched over the wire (its own resource timeline; the page's thread has another): bytes.
function wire() {
  return { bytes: performance.getEntriesByType("resource").reduce((sum, e) => sum + (e.transferSize || 0), 0) };
}

self.onmessage = async ({ data }) => {
  try {
    const answer = data.type === "load" ? await load(data) : data.type === "wire" ? wire() : await run(data);
    self.postMessage({ id: data.id, ok: true, ...answer });
  } catch (error) {
    self.postMessage({ id: data.id, ok: false, error: String(error && error.message ? error.message : error) });
  }
};
