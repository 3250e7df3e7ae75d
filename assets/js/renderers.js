// The two ways the page's controller (controller.js) draws facades, called the same way:
// `render(grid, seeds, stochastic)` -> {blobs: one picture per seed, seconds, batch}, where `grid` is the
// canvas's class indices (size x size) and `stochastic` is "Vary with the seed".
//
// - serverRenderer: one POST to the app's /p2p/render (webapp/render.py) with the grid, deflated (a few KB);
//   the answer is the facades as lossless WebP, back to back, their lengths in a header.
// - browserRenderer: ONNX Runtime Web in a worker of ours (worker.js), with the seed rule's noise (philox.js):
//   the page's own thread never runs the model.

async function deflate(grid) {
  const stream = new Blob([grid]).stream().pipeThrough(new CompressionStream("deflate"));
  return new Response(stream).arrayBuffer();
}

export function serverRenderer(base) {
  return {
    name: "server",
    async render(grid, seeds, stochastic) {
      const query = new URLSearchParams({ seed: seeds[0], count: seeds.length, stochastic: stochastic ? 1 : 0 });
      const response = await fetch(new URL(`p2p/render?${query}`, base), {
        method: "POST", body: await deflate(grid), headers: { "Content-Type": "application/octet-stream" },
      });
      if (!response.ok) throw new Error((await response.text().catch(() => "")) || `HTTP ${response.status}`);
      const bytes = await response.arrayBuffer();
      const blobs = [];
      let at = 0;
      for (const length of response.headers.get("X-P2P-Lengths").split(",").map(Number)) {
        blobs.push(new Blob([bytes.slice(at, at + length)], { type: "image/webp" }));
        at += length;
      }
      return { blobs, seconds: Number(response.headers.get("X-P2P-Seconds")),
        batch: Number(response.headers.get("X-P2P-Batch")) };
    },
  };
}

// Starts the worker and loads the model there; resolves once it can draw (or rejects, saying why).
// `model`: /p2p/page.json's model; `palette`: the canvas's colours; `onProgress(got, total)`: the model's bytes
// so far and in all (the file's own bytes, not the compressed download's). `onChange(renderer)` is called when
// the worker changed its backend during a run (WebGPU failed: it draws with WebAssembly from then on).
export async function browserRenderer(base, model, palette, { ep, threads }, onProgress) {
  const worker = new Worker(new URL("worker.js", import.meta.url), { type: "module" });
  const waiting = new Map();
  let next = 0;
  const fail = (why) => {
    for (const { reject } of waiting.values()) reject(new Error(why));
    waiting.clear();
  };
  worker.onmessage = ({ data }) => {
    if (data.type === "progress") return onProgress(data.got, data.total);
    const call = waiting.get(data.id);
    waiting.delete(data.id);
    if (call) data.ok ? call.resolve(data) : call.reject(new Error(data.error));
  };
  worker.onerror = (event) => fail(event.message || "the model's worker stopped");
  const ask = (message) => new Promise((resolve, reject) => {
    next += 1;
    waiting.set(next, { resolve, reject });
    worker.postMessage({ id: next, ...message });
  });
  const url = (path) => new URL(path, base).href;
  const loaded = await ask({ type: "load", model: { ...model, url: url(model.url) }, runtime: url(model.ort), ep,
    threads, total: model.bytes });
  return {
    name: "browser",
    ep: loaded.ep,
    webgpu: loaded.webgpu,
    fetched: loaded.fetched,
    runs: 0,
    onChange: null,
    wire: async () => (await ask({ type: "wire" })).bytes, // what the worker fetched over the wire, in bytes
    async render(grid, seeds, stochastic) {
      const start = performance.now();
      const out = await ask({ type: "run", grid: grid.slice(), palette, seeds, stochastic });
      this.runs += 1;
      if (out.ep) {
        this.ep = out.ep;
        this.webgpu = out.webgpu;
        this.onChange?.(this);
      }
      return { blobs: out.blobs, seconds: (performance.now() - start) / 1000, batch: 1 };
    },
  };
}
