// The label-map canvas: `js_on_load` of a gr.HTML in app.py, which passes `element` (the component's root),
// `props` (value and the template's props), `trigger` (fires a Gradio event) and `watch` (runs after a prop
// changes from Python).
//
// The picture is the model's own grid: `size` x `size` class indices, drawn one canvas pixel each (scaled up
// by CSS, `image-rendering: pixelated`), so every pixel is a palette colour and nothing is antialiased.
// `props.value` is that grid as a PNG data URL, both ways: the page keeps it up to date, and Python sets it to
// load an example, a random layout or an upload. The facades are the page controller's (controller.js).
//
// Reading the classes: the palette is the data set's, and some neighbours are close (window and facade are
// two blues, door and cornice two cyans). "Outlines" (O, on from the start) draws every class border on a
// second canvas laid over the grid, three times finer, so the borders fall between label pixels and never
// change what is sent; with a mouse, the class under the pointer is named in the line under the board.
//
// While a stroke is being painted the root carries data-painting (the page's busy state stays quiet then:
// the live facade follows the brush). "Save" is the page's (page.js): it reads `canvas.p2p`, and so does
// the page's controller (assets/js/controller.js), which draws the facade from the same grid.

const SIZE = props.size;
const COLOURS = props.classes.map((c) => [1, 3, 5].map((i) => parseInt(c.color.slice(i, i + 2), 16)));
const BACKGROUND = props.background;
const PLAIN = props.plain; // "Clear" paints the whole grid with this class: a plain facade
const LIVE_FIRST_MS = 120; // a stroke's first live update, then one every LIVE_EVERY_MS while it lasts
const LIVE_EVERY_MS = 200;
const MAX_UNDO = 100;

const OUTLINE_SCALE = 3; // the outline canvas has 3 x 3 pixels per label pixel: a border is 2 of them wide

const root = element.querySelector(".p2p");
const canvas = element.querySelector("canvas.p2p-grid");
const overlay = element.querySelector("canvas.p2p-outline");
const ctx = canvas.getContext("2d");
const image = ctx.createImageData(SIZE, SIZE);
const pixels = new Uint32Array(image.data.buffer);
const little = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;
const rgba = COLOURS.map(([r, g, b]) => (little ? ((255 << 24) | (b << 16) | (g << 8) | r) >>> 0 : ((r << 24) | (g << 16) | (b << 8) | 255) >>> 0));
const byColour = new Map(COLOURS.map(([r, g, b], i) => [(r << 16) | (g << 8) | b, i]));

let grid = new Uint8Array(SIZE * SIZE).fill(PLAIN);
let undoStack = [];
let redoStack = [];
let tool = "brush";
let cls = props.start_class;
let size = props.sizes[1].px;
let stroke = null; // {x, y, x0, y0, before, started, lastSent}
let liveTimer = null;
let outlines = false;
let hovered = null; // the class under a mouse pointer, or null

// ------------------------------------------------------------------------------------------- drawing
function render(src = grid) {
  for (let i = 0; i < src.length; i++) pixels[i] = rgba[src[i]];
  ctx.putImageData(image, 0, 0);
  if (outlines) drawOutlines(src);
}

// Class borders on the overlay: a dark line, 2 of its pixels wide, on each edge between two label pixels
// of different classes. Redrawn with the grid (about a millisecond).
const OW = SIZE * OUTLINE_SCALE;
const octx = overlay.getContext("2d");
const oimage = octx.createImageData(OW, OW);
const opixels = new Uint32Array(oimage.data.buffer);
const INK = little ? 0xe6101010 : 0x101010e6;

function drawOutlines(src) {
  const S = OUTLINE_SCALE;
  opixels.fill(0);
  for (let y = 0; y < SIZE; y++) {
    for (let x = 0; x < SIZE; x++) {
      const i = y * SIZE + x;
      if (x + 1 < SIZE && src[i + 1] !== src[i]) {
        const X = S * (x + 1);
        for (let yy = S * y; yy < S * (y + 1); yy++) opixels[yy * OW + X - 1] = opixels[yy * OW + X] = INK;
      }
      if (y + 1 < SIZE && src[i + SIZE] !== src[i]) {
        const Y = S * (y + 1);
        opixels.fill(INK, (Y - 1) * OW + S * x, (Y - 1) * OW + S * (x + 1));
        opixels.fill(INK, Y * OW + S * x, Y * OW + S * (x + 1));
      }
    }
  }
  octx.putImageData(oimage, 0, 0);
}

function setOutlines(on) {
  outlines = on;
  root.dataset.outline = on ? "on" : "off";
  root.querySelector("[data-action='outline']").setAttribute("aria-pressed", String(on));
  if (on) drawOutlines(grid);
}

function stamp(target, x, y, value) {
  const half = Math.floor(size / 2);
  const x0 = Math.max(0, x - half), x1 = Math.min(SIZE, x - half + size);
  const y0 = Math.max(0, y - half), y1 = Math.min(SIZE, y - half + size);
  for (let yy = y0; yy < y1; yy++) target.fill(value, yy * SIZE + x0, yy * SIZE + x1);
}

function line(target, xa, ya, xb, yb, value) {
  const steps = Math.max(Math.abs(xb - xa), Math.abs(yb - ya), 1);
  for (let s = 0; s <= steps; s++) {
    stamp(target, Math.round(xa + ((xb - xa) * s) / steps), Math.round(ya + ((yb - ya) * s) / steps), value);
  }
}

function rectangle(target, xa, ya, xb, yb, value) {
  const [x0, x1] = [Math.min(xa, xb), Math.max(xa, xb) + 1];
  const [y0, y1] = [Math.min(ya, yb), Math.max(ya, yb) + 1];
  for (let y = y0; y < y1; y++) target.fill(value, y * SIZE + x0, y * SIZE + x1);
}

function flood(target, x, y, value) {
  const from = target[y * SIZE + x];
  if (from === value) return;
  const stack = [y * SIZE + x];
  target[y * SIZE + x] = value;
  while (stack.length) {
    const i = stack.pop();
    const px = i % SIZE;
    for (const j of [px > 0 ? i - 1 : -1, px < SIZE - 1 ? i + 1 : -1, i - SIZE, i + SIZE]) {
      if (j >= 0 && j < target.length && target[j] === from) {
        target[j] = value;
        stack.push(j);
      }
    }
  }
}

function paintValue() {
  return tool === "eraser" ? BACKGROUND : cls;
}

function cell(event) {
  const box = canvas.getBoundingClientRect();
  const x = Math.floor(((event.clientX - box.left) / box.width) * SIZE);
  const y = Math.floor(((event.clientY - box.top) / box.height) * SIZE);
  return [Math.min(SIZE - 1, Math.max(0, x)), Math.min(SIZE - 1, Math.max(0, y))];
}

// ------------------------------------------------------------------------------------------- history
function remember(before) {
  undoStack.push(before);
  if (undoStack.length > MAX_UNDO) undoStack.shift();
  redoStack = [];
}

function undo() {
  if (!undoStack.length) return;
  redoStack.push(grid);
  grid = undoStack.pop();
  render();
  send();
}

function redo() {
  if (!redoStack.length) return;
  undoStack.push(grid);
  grid = redoStack.pop();
  render();
  send();
}

function clearAll() {
  remember(grid.slice());
  grid.fill(PLAIN);
  render();
  send();
}

// ------------------------------------------------------------------------------------------- sending
// Every change goes to the page's controller (assets/js/controller.js), which draws its facade: live updates
// during a stroke, and the final canvas of a stroke or an edit. `props.value` (the grid as a PNG data URL) is
// kept for the loaders' events, which read it (a layout seed checks the canvas still holds its layout).
function send(final = true) {
  if (final) props.value = canvas.toDataURL("image/png");
  if (window.p2pPage) window.p2pPage.canvasChanged({ live: !final });
}

function liveTick() {
  if (!stroke) return;
  const now = performance.now();
  const due = stroke.lastSent === null ? stroke.started + LIVE_FIRST_MS : stroke.lastSent + LIVE_EVERY_MS;
  if (now >= due) {
    stroke.lastSent = now;
    send(false);
  }
}

// ------------------------------------------------------------------------------------------- pointer
canvas.addEventListener("pointerdown", (event) => {
  if (event.button !== 0 && event.pointerType === "mouse") return;
  event.preventDefault();
  root.focus({ preventScroll: true });
  canvas.setPointerCapture(event.pointerId);
  const [x, y] = cell(event);
  if (tool === "fill") {
    remember(grid.slice());
    flood(grid, x, y, cls);
    render();
    send();
    return;
  }
  stroke = { x, y, x0: x, y0: y, before: grid.slice(), started: performance.now(), lastSent: null, id: event.pointerId };
  root.dataset.painting = "on";
  if (tool !== "rect") {
    stamp(grid, x, y, paintValue());
    render();
  }
  clearInterval(liveTimer);
  liveTimer = setInterval(liveTick, 20);
});

canvas.addEventListener("pointermove", (event) => {
  if (!stroke && event.pointerType === "mouse") {
    const [hx, hy] = cell(event);
    const under = grid[hy * SIZE + hx];
    if (under !== hovered) {
      hovered = under;
      showState();
    }
  }
  if (!stroke || event.pointerId !== stroke.id) return;
  const [x, y] = cell(event);
  if (tool === "rect") {
    const preview = grid.slice();
    rectangle(preview, stroke.x0, stroke.y0, x, y, cls);
    render(preview);
  } else {
    line(grid, stroke.x, stroke.y, x, y, paintValue());
    render();
  }
  stroke.x = x;
  stroke.y = y;
});

function endStroke(event) {
  if (!stroke || event.pointerId !== stroke.id) return;
  const [x, y] = cell(event);
  if (tool === "rect") {
    rectangle(grid, stroke.x0, stroke.y0, x, y, cls);
  } else {
    line(grid, stroke.x, stroke.y, x, y, paintValue());
  }
  render();
  remember(stroke.before);
  stroke = null;
  delete root.dataset.painting;
  clearInterval(liveTimer);
  send();
}

canvas.addEventListener("pointerup", endStroke);
canvas.addEventListener("pointercancel", endStroke);
canvas.addEventListener("pointerleave", () => {
  if (hovered === null) return;
  hovered = null;
  showState();
});

// ------------------------------------------------------------------------------------------- controls
function setTool(name) {
  tool = name;
  root.querySelectorAll("[data-tool]").forEach((b) => b.setAttribute("aria-pressed", String(b.dataset.tool === name)));
  showState();
}

function setClass(index) {
  cls = index;
  root.querySelectorAll("[data-class]").forEach((b) => b.setAttribute("aria-checked", String(Number(b.dataset.class) === index)));
  if (tool === "eraser") setTool("brush");
  showState();
}

function setSize(px) {
  size = px;
  root.querySelectorAll("[data-size]").forEach((b) => b.setAttribute("aria-pressed", String(Number(b.dataset.size) === px)));
  showState();
}

function showState() {
  const what = tool === "eraser" ? "background" : props.classes[cls].name;
  const sized = tool === "brush" || tool === "eraser" ? `, ${size} px` : "";
  const under = hovered === null ? "" : ` · under the pointer: ${props.classes[hovered].name}`;
  root.querySelector(".p2p-now").textContent = `${tool === "rect" ? "rectangle" : tool}${sized} · ${what}${under}`;
  root.dataset.tool = tool;
  root.dataset.class = String(cls);
}

root.addEventListener("click", (event) => {
  const button = event.target.closest("button");
  if (!button) return;
  if (button.dataset.tool) setTool(button.dataset.tool);
  else if (button.dataset.class !== undefined) setClass(Number(button.dataset.class));
  else if (button.dataset.size) setSize(Number(button.dataset.size));
  else if (button.dataset.action === "undo") undo();
  else if (button.dataset.action === "redo") redo();
  else if (button.dataset.action === "clear") clearAll();
  else if (button.dataset.action === "outline") setOutlines(!outlines);
});

// Shortcuts work from anywhere on the page (a fresh page, after clicking Generate, ...), except while the
// focus is in something one types into: a text or number box keeps its keys (and its own Ctrl+Z).
const TOOL_KEYS = { b: "brush", r: "rect", f: "fill", e: "eraser" };
const NOT_TYPING = new Set(["checkbox", "radio", "button", "submit", "reset", "range", "color", "file", "image"]);

function typing(target) {
  if (!(target instanceof Element)) return false;
  if (target.isContentEditable || target.closest("[contenteditable='true'], [contenteditable='']")) return true;
  if (target.tagName === "TEXTAREA" || target.tagName === "SELECT") return true;
  return target.tagName === "INPUT" && !NOT_TYPING.has((target.type || "text").toLowerCase());
}

function onKey(event) {
  if (event.defaultPrevented || typing(event.target) || !root.isConnected) return;
  const key = event.key.toLowerCase();
  const mod = event.ctrlKey || event.metaKey;
  if (mod && key === "z") {
    event.shiftKey ? redo() : undo();
  } else if (mod && key === "y") {
    redo();
  } else if (mod || event.altKey) {
    return;
  } else if (TOOL_KEYS[key]) {
    setTool(TOOL_KEYS[key]);
  } else if (key === "o") {
    setOutlines(!outlines);
  } else if (event.key === "Delete" && event.shiftKey) {
    clearAll();
  } else if (key === "[" || key === "]") {
    const sizes = props.sizes.map((s) => s.px);
    const at = sizes.indexOf(size);
    setSize(sizes[Math.min(sizes.length - 1, Math.max(0, at + (key === "]" ? 1 : -1)))]);
  } else {
    const index = props.classes.findIndex((c) => c.key === event.key);
    if (index < 0) return;
    setClass(index);
  }
  event.preventDefault();
}

// One listener per page, even if this script runs again (a re-mounted component replaces the old one).
if (window.__p2pKeys) document.removeEventListener("keydown", window.__p2pKeys);
window.__p2pKeys = onKey;
document.addEventListener("keydown", onKey);

// ------------------------------------------------------------------------------------------- loading
// Python sets `value` (an example, a random layout, an upload: already snapped to the palette): decode it
// into the grid. Any colour that is not exactly a palette colour is taken to its nearest one. Each load is
// one undo step, except the page's first picture: a fresh page has nothing to undo.
function load(url, undoable = true) {
  if (!url) return;
  const picture = new Image();
  picture.onload = () => {
    const scratch = document.createElement("canvas");
    scratch.width = SIZE;
    scratch.height = SIZE;
    const sctx = scratch.getContext("2d");
    sctx.imageSmoothingEnabled = false;
    sctx.drawImage(picture, 0, 0, SIZE, SIZE);
    const data = sctx.getImageData(0, 0, SIZE, SIZE).data;
    const next = new Uint8Array(SIZE * SIZE);
    for (let i = 0; i < next.length; i++) {
      const [r, g, b] = [data[4 * i], data[4 * i + 1], data[4 * i + 2]];
      let index = byColour.get((r << 16) | (g << 8) | b);
      if (index === undefined) {
        let best = Infinity;
        COLOURS.forEach(([pr, pg, pb], k) => {
          const d = (r - pr) ** 2 + (g - pg) ** 2 + (b - pb) ** 2;
          if (d < best) [best, index] = [d, k];
        });
      }
      next[i] = index;
    }
    if (undoable && grid.some((v, i) => v !== next[i])) remember(grid);
    const changed = grid.some((v, i) => v !== next[i]);
    grid = next;
    render();
    root.dataset.loaded = String(Number(root.dataset.loaded || 0) + 1);
    if (undoable && changed && window.p2pPage) window.p2pPage.canvasChanged({ loaded: true });
  };
  picture.src = url;
}

watch("value", () => load(props.value));

// Hook on the <canvas> for the page's script (saving the label map), tests and scripting: the grid as class
// indices, the palette, and the tool state.
canvas.p2p = {
  grid: () => grid,
  palette: () => COLOURS,
  state: () => ({ tool, cls, size, outlines, hovered, undo: undoStack.length, redo: redoStack.length }),
};

setTool("brush");
setClass(cls);
setSize(size);
setOutlines(true);
render();
load(props.value, false);
