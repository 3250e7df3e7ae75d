"""The seed rule: a sample's dropout masks and latent code from its seed, by a rule any runtime can follow.

Why: torch's generator (``torch.rand``/``torch.randn`` on a seeded ``torch.Generator``) can be reproduced
only by torch, and torch does not promise the same numbers across its versions. The model is to run in the
browser too (ONNX Runtime Web), where the noise must be drawn in JavaScript; ``assets/js/philox.js`` is this
module's twin and ``tests/data/philox_vectors.json`` holds the answers both must give.

The generator is Philox4x32-10 (Salmon, Moraes, Dror and Shaw, "Parallel random numbers: as easy as 1, 2, 3",
SC'11; the Random123 library, whose published known answers the tests check; the counter-based generator of
cuRAND and TensorFlow's stateless ops). It is a keyed function of a 128-bit counter, with no state: any element
of any tensor can be computed on its own, so the rule is a formula rather than a sequence, and it needs only
32-bit integer arithmetic (plus the high half of a 32x32-bit product, done in JavaScript with 16-bit halves).
(numpy's ``np.random.Philox`` is the 64-bit sibling, Philox4x64-10: the tests check the shared round structure
against it, see ``tests/test_philox.py``.)

The rule (version 1), precisely:

1. **Key.** A seed ``s`` (an integer in 0..2**31-1, ``pix2pix.seeds``) gives the key ``(s, 0)``. The second key
   word is 0 in this version; a later rule that must give other numbers changes it.
2. **Streams and counters.** Each noise tensor of a sample is a stream ``t`` (a uint32): the k-th dropout mask
   (k = 0, 1, ... in the order of the model's dropout blocks) is stream k, the latent code is stream
   ``CODE_STREAM`` = 2**31. Word ``j`` (j = 0, 1, ...) of stream ``t`` is output word ``j % 4`` of
   ``philox4x32_10(counter=(j // 4, t, 0, 0), key=(s, 0))``. So a sample's numbers depend on its seed and the
   tensor shapes only, never on the batch, the device or the other samples; and a stream's first numbers do not
   depend on how many are drawn.
3. **Uniforms.** A word ``x`` gives ``u = (x >> 8) * 2**-24``: one of the 2**24 values in [0, 1) spaced 2**-24,
   every one exact in float32 (and in float64, so the same in every runtime).
4. **Dropout masks** of shape ``S`` (C order, element ``e`` uses word ``e`` of its stream): keep when
   ``u >= p``, compared exactly (as integers: ``(x >> 8) >= ceil(p * 2**24)``); a kept element is
   ``1 / (1 - p)`` (computed in float64, rounded to float32: 2.0 for p = 0.5), a dropped one 0.
5. **Normals** (the latent code): Box-Muller on consecutive word pairs. Pair ``i`` is words ``(2i, 2i+1)`` of
   the stream, ``a`` and ``b``; in float64, ``r = sqrt(-2 ln((a + 0.5) * 2**-32))`` (never ln 0: the argument
   lies in [2**-33, 1 - 2**-33]) and ``theta = (2 pi) * (b * 2**-32)`` with ``2 pi`` the float64 nearest; then
   normal ``2i`` is ``r cos(theta)`` and normal ``2i+1`` is ``r sin(theta)``, each rounded to float32 (to nearest,
   ties to even). For an odd count the last sine is not used. |normal| < 6.8.

Exactness: words, uniforms and masks are bit-identical in every runtime. Normals are not bit-specified: IEEE 754
does not require ln, cos and sin to be correctly rounded, and numpy's (SIMD) loops, C libraries and JavaScript
engines (``Math.log`` and friends) differ, so two runtimes may disagree by a float64 ulp or so, which shows after
rounding to float32 only rarely, as 1 float32 ulp. The tests hold every runtime to within 1 float32 ulp.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Sequence

import numpy as np

from .seeds import MAX_SEED

#: The stream of the latent code (the masks use streams 0, 1, ...).
CODE_STREAM = 2**31
#: The second key word: the rule's version tag (0 for this one).
KEY_WORD1 = 0
#: Philox4x32's multipliers and Weyl key increments (Random123's PHILOX_M4x32_* and PHILOX_W32_*).
PHILOX_M4X32 = (0xD2511F53, 0xCD9E8D57)
PHILOX_W32 = (0x9E3779B9, 0xBB67AE85)
ROUNDS = 10
#: Blocks per numpy pass: arrays of 128 KiB stay in cache, several times faster per block than MiB-sized ones.
CHUNK = 16384

_U64 = np.uint64
_MASK32 = _U64(0xFFFFFFFF)
_SHIFT32 = _U64(32)
MulHiLo = Callable[[np.ndarray, int], tuple[np.ndarray, np.ndarray]]


def _mulhilo32(x: np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray]:
    """High and low 32-bit halves of ``x * m`` (``x`` holds uint32 values in uint64 so the product fits)."""
    product = x * _U64(m)
    high = product >> _SHIFT32
    return high, np.bitwise_and(product, _MASK32, out=product)


def philox_rounds(words: Sequence[np.ndarray], key: Sequence[np.ndarray], mulhilo: MulHiLo,
                  multipliers: Sequence[int], weyl: Sequence[int], mask: int,
                  rounds: int = ROUNDS) -> list[np.ndarray]:
    """The Philox4xW round structure, for any word width W: ``rounds`` S-box rounds, the key bumped by the Weyl
    constants between rounds (Random123's ``philox4xW_R``).

    Width-generic so the tests can run the very same rounds as Philox4x64 against numpy's ``np.random.Philox``;
    ``philox4x32`` is the one the rule uses. Words and keys are uint64 arrays; words 0 and 2 must have the full
    shape of the result (the others and the keys broadcast to it), so the rounds can work in place.
    """
    x0, x1, x2, x3 = words
    k0, k1 = key
    for r in range(rounds):
        if r:
            k0, k1 = (k0 + _U64(weyl[0])) & _U64(mask), (k1 + _U64(weyl[1])) & _U64(mask)
        hi0, lo0 = mulhilo(x0, multipliers[0])
        hi1, lo1 = mulhilo(x2, multipliers[1])
        hi1 ^= x1
        hi1 ^= k0
        hi0 ^= x3
        hi0 ^= k1
        x0, x1, x2, x3 = hi1, lo1, hi0, lo0
    return [x0, x1, x2, x3]


def _as_words(values: object, last: int, what: str) -> np.ndarray:
    array = np.asarray(values)
    if array.dtype.kind not in "iu" or array.ndim == 0 or array.shape[-1] != last:
        raise ValueError(f"the {what} must be integers with a last axis of {last}, got {array.dtype} {array.shape}")
    if array.size and (array.min() < 0 or array.max() > 0xFFFFFFFF):
        raise ValueError(f"the {what} words must lie in 0..2**32-1")
    return array.astype(np.uint64)


def _philox4x32(words: Sequence[np.ndarray], key: Sequence[np.ndarray], shape: tuple[int, ...]) -> np.ndarray:
    """Philox4x32-10 on uint64 arrays of uint32 values that broadcast to ``shape``: (*shape, 4) uint32."""
    full = [np.array(np.broadcast_to(w, shape)) if j in (0, 2) else w for j, w in enumerate(words)]
    out = philox_rounds(full, key, _mulhilo32, PHILOX_M4X32, PHILOX_W32, 0xFFFFFFFF)
    result = np.empty((*shape, 4), np.uint32)
    for j, w in enumerate(out):
        result[..., j] = w
    return result


def philox4x32(counter: np.ndarray, key: np.ndarray) -> np.ndarray:
    """Philox4x32-10 of each counter: ``counter`` (..., 4) and ``key`` (..., 2) of uint32 words (broadcasting
    against each other) to (..., 4) uint32 words, all at once (numpy arrays, no loop per number)."""
    c, k = _as_words(counter, 4, "counter"), _as_words(key, 2, "key")
    shape = np.broadcast_shapes(c.shape[:-1], k.shape[:-1])
    return _philox4x32([c[..., j] for j in range(4)], [np.atleast_1d(k[..., j]) for j in range(2)], shape)


def _check_seeds(seeds: Sequence[int]) -> np.ndarray:
    values = []
    for s in seeds:
        try:
            value = operator.index(s)
        except TypeError:
            raise ValueError(f"a seed must be a whole number in 0..{MAX_SEED}, got {s!r}") from None
        if not 0 <= value <= MAX_SEED:
            raise ValueError(f"a seed must lie in 0..{MAX_SEED}, got {value}")
        values.append(value)
    return np.asarray(values, dtype=np.uint32)


def _words(seeds: np.ndarray, requests: Sequence[tuple[int, int]]) -> list[np.ndarray]:
    """Words 0..n-1 of each requested ``(stream, n)`` for each seed: one (len(seeds), n) uint32 array per request
    (rule, steps 1 and 2). All requests share one pass, cut into ``CHUNK``-block pieces per seed."""
    sizes = []
    for stream, n in requests:
        if not 0 <= int(stream) <= 0xFFFFFFFF:
            raise ValueError(f"a stream is a uint32 (0..2**32-1), got {stream}")
        if not 0 <= int(n) <= 4 * 2**32:
            raise ValueError(f"a stream has 0..2**34 words, asked for {n}")
        sizes.append(-(-int(n) // 4))
    block = np.concatenate([np.arange(b, dtype=np.uint64) for b in sizes] + [np.zeros(0, np.uint64)])
    stream = np.repeat(np.asarray([s for s, _ in requests], np.uint64), sizes)
    zero = np.zeros(1, np.uint64)
    out = np.empty((len(seeds), len(block), 4), np.uint32)
    for i, seed in enumerate(seeds):
        key = [np.full(1, seed, np.uint64), np.full(1, KEY_WORD1, np.uint64)]
        for start in range(0, len(block), CHUNK):
            piece = slice(start, start + CHUNK)
            out[i, piece] = _philox4x32([block[piece], stream[piece], zero, zero], key, block[piece].shape)
    ends = np.cumsum([0, *sizes])
    return [out[:, ends[r]:ends[r + 1]].reshape(len(seeds), 4 * sizes[r])[:, :n] for r, (_, n) in enumerate(requests)]


def random_words(seed: int, stream: int, n: int) -> np.ndarray:
    """The first ``n`` uint32 words of a seed's stream (the raw material of everything below)."""
    return _words(_check_seeds([seed]), [(stream, n)])[0][0]


def _to_uniform(words: np.ndarray) -> np.ndarray:
    return (words >> np.uint32(8)).astype(np.float32) * np.float32(2.0**-24)


def uniforms(seed: int, stream: int, n: int) -> np.ndarray:
    """``n`` uniforms in [0, 1), float32, each a multiple of 2**-24 (rule, step 3)."""
    return _to_uniform(random_words(seed, stream, n))


def _check_p(p: float) -> float:
    if not 0.0 <= float(p) < 1.0:
        raise ValueError(f"the dropout probability must lie in [0, 1), got {p}")
    return float(p)


def _to_mask(words: np.ndarray, p: float) -> np.ndarray:
    """Rule, step 4: keep ``u >= p``, compared on the 24-bit integers so no rounding of ``p`` enters
    (``(x >> 8) >= t`` is ``x >= 256 t`` for t < 2**24; for t = 2**24 nothing is kept)."""
    p = _check_p(p)
    threshold = math.ceil(p * 2**24)
    keep = words >= np.uint32(threshold << 8) if threshold < 2**24 else np.zeros(words.shape, bool)
    mask = keep.astype(np.float32)
    mask *= np.float32(1.0 / (1.0 - p))
    return mask


def dropout_mask(seed: int, stream: int, shape: Sequence[int], p: float = 0.5) -> np.ndarray:
    """A seed's dropout mask of ``shape`` from ``stream``: float32, 0 where dropped and 1/(1-p) where kept."""
    shape = tuple(int(d) for d in shape)
    return _to_mask(random_words(seed, stream, math.prod(shape)), p).reshape(shape)


def _to_normals(words: np.ndarray, n: int) -> np.ndarray:
    """Rule, step 5: Box-Muller on word pairs (2i, 2i+1) along the last axis (which has 2 * ceil(n / 2) words)."""
    a = words[..., 0::2].astype(np.float64)
    b = words[..., 1::2].astype(np.float64)
    radius = np.sqrt(-2.0 * np.log((a + 0.5) * 2.0**-32))
    theta = (2.0 * math.pi) * (b * 2.0**-32)
    out = np.empty(words.shape, np.float64)
    out[..., 0::2], out[..., 1::2] = radius * np.cos(theta), radius * np.sin(theta)
    return out[..., :n].astype(np.float32)


def normals(seed: int, stream: int, n: int) -> np.ndarray:
    """``n`` standard normals, float32, from a seed's stream (within 1 float32 ulp in every runtime)."""
    return _to_normals(random_words(seed, stream, 2 * -(-int(n) // 2)), n)


def sample_noise(seeds: Sequence[int], shapes: Sequence[Sequence[int]], nz: int,
                 p: float = 0.5) -> tuple[list[np.ndarray], np.ndarray | None]:
    """A batch's noise, one sample per seed, as ``UnetGenerator.sample_noise`` returns it: a (N, *shape) float32
    mask (already scaled by 1/(1-p)) per shape in ``shapes``, mask k from stream k, and the (N, nz) float32
    latent codes from ``CODE_STREAM`` (``None`` when nz = 0). Row i depends only on ``seeds[i]`` and the shapes.
    """
    seeds_ = _check_seeds(seeds)
    _check_p(p)
    if int(nz) < 0:
        raise ValueError(f"nz must be >= 0, got {nz}")
    shapes = [tuple(int(d) for d in shape) for shape in shapes]
    requests = [(k, math.prod(shape)) for k, shape in enumerate(shapes)] + [(CODE_STREAM, 2 * -(-int(nz) // 2))]
    *words, code = _words(seeds_, requests)
    masks = [_to_mask(w, p).reshape(len(seeds_), *shape) for w, shape in zip(words, shapes)]
    return masks, (_to_normals(code, int(nz)) if nz else None)
