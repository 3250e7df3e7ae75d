// The seed rule in JavaScript: a sample's dropout masks and latent code from its seed, the twin of
// pix2pix/philox.py (whose docstring states the rule in full; tests/data/philox_vectors.json holds the answers
// both must give, and tests/test_philox.py runs this file in Chromium against them).
//
// Why a rule of our own: torch's generator can be reproduced only by torch, and the model is to run in the
// browser (ONNX Runtime Web), where the noise is drawn here. An ES module, no build step, no dependency.
//
// The rule (version 1), in short:
//  1. key = (seed, 0), seed in 0..2**31-1.
//  2. Word j of stream t is output word j % 4 of Philox4x32-10(counter = (j / 4 rounded down, t, 0, 0), key).
//     Dropout mask k is stream k; the latent code is stream CODE_STREAM = 2**31.
//  3. Uniform u = (x >>> 8) * 2**-24, exact in float32.
//  4. Mask element e (C order) = 1 / (1 - p) (rounded to float32) when (x >>> 8) >= ceil(p * 2**24), else 0.
//  5. Normals: Box-Muller on word pairs (2i, 2i+1) = (a, b): r = sqrt(-2 ln((a + 0.5) * 2**-32)),
//     theta = (2 pi) * (b * 2**-32) in float64; normal 2i = r cos(theta), 2i+1 = r sin(theta), rounded to float32.
//
// Exactness: words, uniforms and masks are bit-identical to Python's. Normals are not bit-specified:
// Math.log, Math.cos and Math.sin are not correctly rounded and differ between engines (and from numpy's), so
// a normal may differ from Python's by 1 float32 ulp (rarely: only when a float64 result sits on a float32
// rounding boundary).
//
// Arithmetic: JavaScript numbers are float64, exact for integers below 2**53; bitwise operators work on 32 bits.
// Math.imul gives the low 32 bits of a 32x32-bit product; the high 32 bits come from the schoolbook product on
// 16-bit halves (mulhi), whose partial products stay below 2**32 and so are exact.

export const CODE_STREAM = 0x80000000;
export const KEY_WORD1 = 0;
export const MAX_SEED = 0x7fffffff;
const M0 = 0xd2511f53, M1 = 0xcd9e8d57; // Random123's PHILOX_M4x32_0 and _1
const W0 = 0x9e3779b9, W1 = 0xbb67ae85; // Random123's PHILOX_W32_0 and _1
const TWO32 = 4294967296;
const TWO_PI = 2 * Math.PI; // the float64 nearest 2 pi, as Python's 2.0 * math.pi

// The high 32 bits of x * m, for x and m = mh * 2**16 + ml taken as uint32 (x may come as an int32: only its bits
// count), as an int32: the schoolbook product on 16-bit halves, every partial product below 2**32.
function mulhi(x, mh, ml) {
  const xh = x >>> 16, xl = x & 0xffff;
  const lh = xl * mh, hl = xh * ml;
  const mid = ((xl * ml) >>> 16) + (lh & 0xffff) + (hl & 0xffff);
  return (xh * mh + (lh >>> 16) + (hl >>> 16) + (mid >>> 16)) | 0;
}

const M0H = M0 >>> 16, M0L = M0 & 0xffff, M1H = M1 >>> 16, M1L = M1 & 0xffff;

// Philox4x32-10 of one counter (c0..c3) under key (k0, k1), written to out[at..at+3] (a Uint32Array). The words
// are kept as int32 (| 0) so the engine can keep them in integer registers; storing into out reads them as uint32.
function block(c0, c1, c2, c3, k0, k1, out, at) {
  for (let r = 0; r < 10; r++) {
    if (r) {
      k0 = (k0 + W0) | 0;
      k1 = (k1 + W1) | 0;
    }
    const hi0 = mulhi(c0, M0H, M0L), lo0 = Math.imul(c0, M0);
    const hi1 = mulhi(c2, M1H, M1L), lo1 = Math.imul(c2, M1);
    c0 = hi1 ^ c1 ^ k0;
    c1 = lo1;
    c2 = hi0 ^ c3 ^ k1;
    c3 = lo0;
  }
  out[at] = c0;
  out[at + 1] = c1;
  out[at + 2] = c2;
  out[at + 3] = c3;
}

function checkUint32(value, what) {
  if (!Number.isInteger(value) || value < 0 || value >= TWO32) {
    throw new RangeError(`${what} must be an integer in 0..2**32-1, got ${value}`);
  }
}

function checkSeed(seed) {
  if (!Number.isInteger(seed) || seed < 0 || seed > MAX_SEED) {
    throw new RangeError(`a seed must be a whole number in 0..${MAX_SEED}, got ${seed}`);
  }
}

function checkCount(n) {
  if (!Number.isInteger(n) || n < 0) throw new RangeError(`a count must be a whole number >= 0, got ${n}`);
}

function checkP(p) {
  if (typeof p !== "number" || !(p >= 0 && p < 1)) {
    throw new RangeError(`the dropout probability must lie in [0, 1), got ${p}`);
  }
}

/** Philox4x32-10 of each counter: `counter` holds 4n uint32 words (counter i is words 4i..4i+3), `key` two;
 * returns a Uint32Array of 4n words. */
export function philox4x32(counter, key) {
  if (counter.length % 4 !== 0) throw new RangeError(`a counter has 4 words, got ${counter.length} words`);
  if (key.length !== 2) throw new RangeError(`a key has 2 words, got ${key.length}`);
  for (const w of counter) checkUint32(w, "a counter word");
  for (const w of key) checkUint32(w, "a key word");
  const out = new Uint32Array(counter.length);
  for (let i = 0; i < counter.length; i += 4) {
    block(counter[i], counter[i + 1], counter[i + 2], counter[i + 3], key[0], key[1], out, i);
  }
  return out;
}

/** The first `n` uint32 words of a seed's stream (rule, steps 1 and 2). */
export function randomWords(seed, stream, n) {
  checkSeed(seed);
  checkUint32(stream, "a stream");
  checkCount(n);
  const blocks = Math.ceil(n / 4);
  const out = new Uint32Array(4 * blocks);
  for (let j = 0; j < blocks; j++) block(j, stream, 0, 0, seed, KEY_WORD1, out, 4 * j);
  return n === out.length ? out : out.slice(0, n);
}

/** `n` uniforms in [0, 1), each a multiple of 2**-24 (rule, step 3): a Float32Array. */
export function uniforms(seed, stream, n) {
  const words = randomWords(seed, stream, n);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = (words[i] >>> 8) * 2 ** -24;
  return out;
}

function maskFrom(words, p, out, at) {
  const threshold = Math.ceil(p * 2 ** 24);
  const scale = Math.fround(1 / (1 - p));
  for (let i = 0; i < words.length; i++) out[at + i] = (words[i] >>> 8) >= threshold ? scale : 0;
}

function size(shape) {
  let n = 1;
  for (const d of shape) {
    checkCount(d);
    n *= d;
  }
  return n;
}

/** A seed's dropout mask of `shape` from `stream` (rule, step 4): a flat Float32Array in C order, 0 where
 * dropped and 1/(1-p) where kept. */
export function dropoutMask(seed, stream, shape, p = 0.5) {
  checkP(p);
  const words = randomWords(seed, stream, size(shape));
  const out = new Float32Array(words.length);
  maskFrom(words, p, out, 0);
  return out;
}

function normalsFrom(words, n, out, at) {
  for (let i = 0; 2 * i < n; i++) {
    const r = Math.sqrt(-2 * Math.log((words[2 * i] + 0.5) * 2 ** -32));
    const theta = TWO_PI * (words[2 * i + 1] * 2 ** -32);
    out[at + 2 * i] = r * Math.cos(theta);
    if (2 * i + 1 < n) out[at + 2 * i + 1] = r * Math.sin(theta);
  }
}

/** `n` standard normals from a seed's stream (rule, step 5): a Float32Array, within 1 float32 ulp of Python's. */
export function normals(seed, stream, n) {
  checkCount(n);
  const words = randomWords(seed, stream, 2 * Math.ceil(n / 2));
  const out = new Float32Array(n);
  normalsFrom(words, n, out, 0);
  return out;
}

/** A batch's noise, one sample per seed, as pix2pix.philox.sample_noise returns it: `masks`, one flat
 * Float32Array of seeds.length * prod(shape) per shape (sample i's mask at i * prod(shape)), mask k from stream
 * k; and `z`, a Float32Array of seeds.length * nz latent codes from CODE_STREAM (null when nz = 0). A sample's
 * noise depends only on its seed and the shapes, never on the batch. */
export function sampleNoise(seeds, shapes, nz, p = 0.5) {
  checkP(p);
  checkCount(nz);
  seeds.forEach(checkSeed);
  const masks = shapes.map((shape, k) => {
    const n = size(shape);
    const out = new Float32Array(seeds.length * n);
    seeds.forEach((seed, i) => maskFrom(randomWords(seed, k, n), p, out, i * n));
    return out;
  });
  let z = null;
  if (nz) {
    z = new Float32Array(seeds.length * nz);
    seeds.forEach((seed, i) => normalsFrom(randomWords(seed, CODE_STREAM, 2 * Math.ceil(nz / 2)), nz, z, i * nz));
  }
  return { masks, z };
}
