() => {
  // The page's own script (Gradio runs it once the page is up: `js=` of launch, in webapp/page.py), beside the
  // canvas's (canvas.js). At the end it starts the page's controller (assets/js/controller.js, from this
  // server), which owns the seed, the variations and the status line, and draws every facade.
  //
  // Busy state: the controller, and the loaders' events (webapp/page.py, `_busy`), call p2pBusy(target) before
  // a request leaves, and p2pDone(target) once its answer is on the page, success or failure. While
  // any is out, the target (#facade or #variations) carries data-busy; page.css dims it and shows a spinner
  // after a short delay, so a quick answer shows nothing.
  const pending = new Map();
  function mark(target) {
    const element = document.getElementById(target);
    if (!element) return;
    if ((pending.get(target) || 0) > 0) element.dataset.busy = "on";
    else delete element.dataset.busy;
  }
  window.p2pBusy = (target) => {
    pending.set(target, (pending.get(target) || 0) + 1);
    mark(target);
  };
  window.p2pDone = (target) => {
    pending.set(target, Math.max(0, (pending.get(target) || 0) - 1));
    mark(target);
  };

  // Saving: the facade and the variations as PNG files named after their seeds (facade-seed42.png), made in
  // the browser from the pictures on the page. The server sends lossless WebP (cheaper for it to encode than
  // PNG, and the same pixels); many image viewers open PNG better, and converting one picture on a click
  // costs the server nothing. The pixels are the very ones the model drew.
  function save(blob, name) {
    const link = document.createElement("a");
    link.href = URL.createObjectURL(blob);
    link.download = name;
    document.body.appendChild(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(link.href), 60_000);
  }

  function fileName(img) {
    if (img.dataset.name) return `${img.dataset.name}.png`; // the controller names every picture it shows
    const last = decodeURIComponent(new URL(img.currentSrc || img.src, location.href).pathname.split("/").pop());
    return (last.replace(/\.[a-z0-9]+$/i, "") || "facade") + ".png";
  }

  async function savePicture(img) {
    if (!img || !img.src) return false;
    await img.decode().catch(() => {});
    const scratch = document.createElement("canvas");
    scratch.width = img.naturalWidth;
    scratch.height = img.naturalHeight;
    scratch.getContext("2d").drawImage(img, 0, 0);
    const blob = await new Promise((done) => scratch.toBlob(done, "image/png"));
    if (blob) save(blob, fileName(img));
    return Boolean(blob);
  }

  // The label map as a palette PNG: one byte per pixel, its class index, and the 12 palette colours, so every
  // pixel is exactly a palette colour and an upload of the file gives back the very same grid. Browsers only
  // write true-colour PNGs, so the few chunks are written here (the pixels deflated by the browser's own
  // CompressionStream).
  const CRC = new Uint32Array(256).map((_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });

  function chunk(type, data) {
    const out = new Uint8Array(12 + data.length);
    const view = new DataView(out.buffer);
    view.setUint32(0, data.length);
    for (let i = 0; i < 4; i++) out[4 + i] = type.charCodeAt(i);
    out.set(data, 8);
    let crc = 0xffffffff;
    for (const byte of out.subarray(4, 8 + data.length)) crc = CRC[(crc ^ byte) & 0xff] ^ (crc >>> 8);
    view.setUint32(8 + data.length, (crc ^ 0xffffffff) >>> 0);
    return out;
  }

  async function labelMapPng(grid, colours, size) {
    const rows = new Uint8Array(size * (size + 1)); // each row: filter type 0, then its class indices
    for (let y = 0; y < size; y++) rows.set(grid.subarray(y * size, (y + 1) * size), y * (size + 1) + 1);
    const deflated = new Blob([rows]).stream().pipeThrough(new CompressionStream("deflate"));
    const pixels = new Uint8Array(await new Response(deflated).arrayBuffer());
    const header = new Uint8Array(13);
    new DataView(header.buffer).setUint32(0, size);
    new DataView(header.buffer).setUint32(4, size);
    header[8] = 8; // bits per index
    header[9] = 3; // colour type 3: palette
    const signature = new Uint8Array([137, 80, 78, 71, 13, 10, 26, 10]);
    const parts = [signature, chunk("IHDR", header), chunk("PLTE", new Uint8Array(colours.flat())),
      chunk("IDAT", pixels), chunk("IEND", new Uint8Array(0))];
    return new Blob(parts, { type: "image/png" });
  }

  async function saveLabelMap() {
    const board = document.querySelector("#canvas canvas.p2p-grid");
    if (!board || !board.p2p) return;
    const grid = board.p2p.grid();
    save(await labelMapPng(grid, board.p2p.palette(), Math.round(Math.sqrt(grid.length))), "label-map.png");
  }

  window.p2pSave = { save, savePicture, saveLabelMap };
  document.addEventListener("click", async (event) => {
    const button = event.target instanceof Element ? event.target.closest("#save-facade, #save-variations, #save-label-map") : null;
    if (!button) return;
    if (button.id === "save-label-map") {
      await saveLabelMap();
    } else if (button.id === "save-facade") {
      await savePicture(document.querySelector("#facade img"));
    } else {
      for (const img of document.querySelectorAll("#variations .p2p-var-item img")) await savePicture(img);
    }
  });

  // The controller: it draws the facades, on the server or in this browser (controller.js says when and why).
  const controller = new URL("p2p/js/controller.js", new URL(".", location.href)).href;
  import(controller).then((module) => module.start()).catch((error) => {
    console.error("facade-pix2pix: the page did not start", error);
    const line = document.getElementById("backend");
    if (line) line.textContent = "This browser could not start the page: reload it, or try another browser.";
  });
}
