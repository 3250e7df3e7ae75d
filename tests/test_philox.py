"""The seed rule (``pix2pix.philox``) and its JavaScript twin (``assets/js/philox.js``) against one set of vectors.

``tests/data/philox_vectors.json`` holds the Random123 known answers for Philox4x32-10 (copied from Random123's
``tests/kat_vectors``), raw outputs, and the words, uniforms, masks, normals and ``sample_noise`` output of a
few seeds. Python must give them exactly (normals: within 1 float32 ulp), and so must the JavaScript, run in
Debian's Chromium through Playwright (never `playwright install`; a missing browser skips, or fails under
CI=true). Regenerate the file (only when the rule is meant to change) with ``python -m tests.test_philox``.

numpy's ``np.random.Philox`` is Philox4x64-10, not 4x32; the test against it runs the module's very round
function with the 64-bit constants. Its layout, worked out here: ``Philox(counter=c, key=k)`` splits the
integers into 64-bit words, least significant first (``counter=2**64`` is words (0, 1, 0, 0)); each block of four
outputs of ``random_raw`` is Philox4x64-10 of the counter *after* adding 1 (with carry), words 0..3 in order.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pix2pix import philox
from pix2pix.philox import CODE_STREAM
from pix2pix.seeds import MAX_SEED
from tests.helpers import CHROMIUM, CHROMIUM_ARGS, sync_playwright_or_skip

REPO = Path(__file__).resolve().parent.parent
VECTORS = Path(__file__).parent / "data" / "philox_vectors.json"
PHILOX_JS = REPO / "assets" / "js" / "philox.js"
#: A made-up origin the page is served from by Playwright's request interception (nothing leaves the machine).
ORIGIN = "http://philox.test"

#: Random123 tests/kat_vectors, the three "philox4x32 10" lines: counter, key, output.
KAT_4X32 = [
    ("00000000 00000000 00000000 00000000", "00000000 00000000", "6627e8d5 e169c58d bc57ac4c 9b00dbd8"),
    ("ffffffff ffffffff ffffffff ffffffff", "ffffffff ffffffff", "408f276d 41c83b0e a20bc7c6 6d5451fd"),
    ("243f6a88 85a308d3 13198a2e 03707344", "a4093822 299f31d0", "d16cfe09 94fdcceb 5001e420 24126ea1"),
]
#: The same file's "philox4x64 10" lines, for the 64-bit round function the numpy cross-check uses.
KAT_4X64 = [
    ("0000000000000000 0000000000000000 0000000000000000 0000000000000000", "0000000000000000 0000000000000000",
     "16554d9eca36314c db20fe9d672d0fdc d7e772cee186176b 7e68b68aec7ba23b"),
    ("ffffffffffffffff ffffffffffffffff ffffffffffffffff ffffffffffffffff", "ffffffffffffffff ffffffffffffffff",
     "87b092c3013fe90b 438c3c67be8d0224 9cc7d7c69cd777b6 a09caebf594f0ba0"),
    ("243f6a8885a308d3 13198a2e03707344 a4093822299f31d0 082efa98ec4e6c89", "452821e638d01377 be5466cf34e90c6c",
     "a528f45403e61d95 38c72dbd566e9788 a5a1610e72fd18b5 57bd43b5e52b7fe6"),
]
SEEDS = [0, 1, 42, MAX_SEED]
SAMPLE = {"seeds": [0, 7], "shapes": [[4, 2, 2], [4, 4, 4]], "nz": 3, "p": 0.5}
#: The bundled model's noise (ngf 32, 256x256): the decoder's dropout blocks 1..3, then an 8-number code.
BUNDLED_SHAPES = [(256, 4, 4), (256, 8, 8), (256, 16, 16)]


def _hex(words: str) -> list[int]:
    return [int(w, 16) for w in words.split()]


def _floats(array: np.ndarray) -> list[float]:
    return [float(v) for v in np.asarray(array, np.float32).ravel()]


def build_vectors() -> dict:
    """The vectors file's content, from the Python implementation (which the known answers vouch for)."""
    raw = [([[1, 2, 3, 4]], [5, 6]), ([[0xFFFFFFFE, 0xFFFFFFFF, 0, 1]], [MAX_SEED, 0x80000000]),
           ([[0, 0, 0, 0], [1, 0, 0, 0], [12345, CODE_STREAM, 0, 0]], [42, 0])]
    streams = [0, 1, CODE_STREAM]
    return {
        "about": "Seed rule v1 (pix2pix/philox.py, assets/js/philox.js); regenerate with python -m tests.test_philox",
        "kat_philox4x32_10": [{"counter": c, "key": k, "out": o} for c, k, o in KAT_4X32],
        "philox4x32": [{"counter": c, "key": k, "out": philox.philox4x32(np.array(c), np.array(k)).tolist()}
                       for c, k in raw],
        "words": [{"seed": s, "stream": t, "n": 9, "out": philox.random_words(s, t, 9).tolist()}
                  for s in SEEDS for t in streams],
        "uniforms": [{"seed": s, "stream": t, "n": 9, "out": _floats(philox.uniforms(s, t, 9))}
                     for s in SEEDS for t in streams[:2]],
        "masks": [{"seed": s, "stream": t, "shape": shape, "p": p, "out": _floats(philox.dropout_mask(s, t, shape, p))}
                  for s in SEEDS for t, shape, p in [(0, [2, 3, 3], 0.5), (2, [6], 0.25), (1, [4], 0.0)]],
        "normals": [{"seed": s, "stream": t, "n": n, "out": _floats(philox.normals(s, t, n))}
                    for s in SEEDS for t, n in [(CODE_STREAM, 7), (3, 4)]],
        "sample_noise": dict(SAMPLE, **_sample_noise_out(SAMPLE)),
    }


def _sample_noise_out(sample: dict) -> dict:
    masks, z = philox.sample_noise(sample["seeds"], sample["shapes"], sample["nz"], sample["p"])
    return {"masks": [_floats(m) for m in masks], "z": _floats(z)}


def write_vectors(path: Path = VECTORS) -> None:
    """One entry a line, so the file stays small and its diffs readable."""
    data = build_vectors()
    lines = ["{"]
    for i, (name, value) in enumerate(data.items()):
        end = "," if i < len(data) - 1 else ""
        if isinstance(value, list):
            rows = ",\n".join("  " + json.dumps(row) for row in value)
            lines.append(f"{json.dumps(name)}: [\n{rows}\n]{end}")
        else:
            lines.append(f"{json.dumps(name)}: {json.dumps(value)}{end}")
    path.write_text("\n".join(lines + ["}"]) + "\n")


@pytest.fixture(scope="module")
def vectors() -> dict:
    return json.loads(VECTORS.read_text())


def assert_within_ulp(got, expected, what: str = "normals") -> None:
    """Equal to within 1 float32 ulp: ln, cos and sin differ slightly between runtimes (see the rule)."""
    got, expected = np.asarray(got, np.float32), np.asarray(expected, np.float32)
    assert got.shape == expected.shape, what
    ulp = np.spacing(np.maximum(np.abs(got), np.abs(expected)))
    assert (np.abs(got - expected) <= ulp).all(), f"{what}: {got} vs {expected}"


# ---- Python ----

def test_random123_known_answers(vectors):
    assert vectors["kat_philox4x32_10"] == [{"counter": c, "key": k, "out": o} for c, k, o in KAT_4X32]
    counters = np.array([_hex(c) for c, _, _ in KAT_4X32], np.uint32)
    for counter, (_, key, out) in zip(counters, KAT_4X32):
        assert philox.philox4x32(counter[None], np.array(_hex(key), np.uint32)).tolist() == [_hex(out)]
    # All three at once, each row with its own key: the vectorised path broadcasts per row.
    keys = np.array([_hex(k) for _, k, _ in KAT_4X32], np.uint32)
    assert philox.philox4x32(counters, keys).tolist() == [_hex(o) for _, _, o in KAT_4X32]


def test_raw_words_uniforms_and_masks_are_exact(vectors):
    for v in vectors["philox4x32"]:
        got = philox.philox4x32(np.array(v["counter"], np.uint32), np.array(v["key"], np.uint32))
        assert got.dtype == np.uint32 and got.tolist() == v["out"]
    for v in vectors["words"]:
        assert philox.random_words(v["seed"], v["stream"], v["n"]).tolist() == v["out"]
    for v in vectors["uniforms"]:
        got = philox.uniforms(v["seed"], v["stream"], v["n"])
        assert got.dtype == np.float32 and got.tolist() == v["out"]
    for v in vectors["masks"]:
        got = philox.dropout_mask(v["seed"], v["stream"], v["shape"], v["p"])
        assert got.dtype == np.float32 and got.shape == tuple(v["shape"]) and got.ravel().tolist() == v["out"]


def test_normals_and_sample_noise_match_the_vectors(vectors):
    for v in vectors["normals"]:
        got = philox.normals(v["seed"], v["stream"], v["n"])
        assert got.dtype == np.float32
        assert_within_ulp(got, v["out"])
    s = vectors["sample_noise"]
    masks, z = philox.sample_noise(s["seeds"], s["shapes"], s["nz"], s["p"])
    assert [m.shape for m in masks] == [(len(s["seeds"]), *shape) for shape in s["shapes"]]
    assert [m.ravel().tolist() for m in masks] == s["masks"]
    assert z.shape == (len(s["seeds"]), s["nz"]) and z.dtype == np.float32
    assert_within_ulp(z.ravel(), s["z"], "latent codes")


def test_the_rule_step_by_step():
    """The docstring's rule, followed literally with Python integers, gives the module's numbers."""
    seed, stream = 42, 1
    words = philox.random_words(seed, stream, 10)
    for j, word in enumerate(words):
        out = philox.philox4x32(np.array([[j // 4, stream, 0, 0]]), np.array([seed, 0]))[0]
        assert word == out[j % 4]
    assert philox.uniforms(seed, stream, 10).tolist() == [(int(x) >> 8) * 2.0**-24 for x in words]
    mask = philox.dropout_mask(seed, stream, (2, 5), 0.3)
    assert mask.ravel().tolist() == [np.float32(1 / 0.7) if (int(x) >> 8) / 2**24 >= 0.3 else 0.0 for x in words]
    a, b = (float(x) for x in philox.random_words(seed, CODE_STREAM, 2))
    r, theta = np.sqrt(-2 * np.log((a + 0.5) / 2**32)), 2 * np.pi * (b / 2**32)
    assert_within_ulp(philox.normals(seed, CODE_STREAM, 2), [r * np.cos(theta), r * np.sin(theta)])


def _mulhilo64(x: np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray]:
    """High and low 64-bit halves of ``x * m``, from 32-bit halves (numpy has no 128-bit integers)."""
    low32, s32 = np.uint64(0xFFFFFFFF), np.uint64(32)
    m0, m1 = np.uint64(m & 0xFFFFFFFF), np.uint64(m >> 32)
    x0, x1 = x & low32, x >> s32
    p00, p01, p10, p11 = x0 * m0, x0 * m1, x1 * m0, x1 * m1
    mid = (p00 >> s32) + (p01 & low32) + (p10 & low32)
    return p11 + (p01 >> s32) + (p10 >> s32) + (mid >> s32), x * np.uint64(m)


def _philox4x64(counter: list[int], key: list[int]) -> list[int]:
    words = philox.philox_rounds([np.array([c], np.uint64) for c in counter], [np.array([k], np.uint64) for k in key],
                                 _mulhilo64, (0xD2E7470EE14C6C93, 0xCA5A826395121157),
                                 (0x9E3779B97F4A7C15, 0xBB67AE8584CAA73B), 2**64 - 1)
    return [int(w[0]) for w in words]


def test_the_round_function_against_numpys_philox4x64():
    for counter, key, out in KAT_4X64:
        assert _philox4x64(_hex(counter), _hex(key)) == _hex(out)
    for counter, key in [(0, 0), (7, 3), (2**64 - 1, 2**64 + 5), (2**256 - 2, 2**128 - 1)]:
        raw = np.random.Philox(counter=counter, key=key).random_raw(8).tolist()
        for b in range(2):
            c = (counter + 1 + b) % 2**256
            words = [(c >> (64 * j)) % 2**64 for j in range(4)]
            assert _philox4x64(words, [key % 2**64, key >> 64]) == raw[4 * b:4 * b + 4]


def test_a_sample_is_the_same_alone_or_in_a_batch_and_differs_between_seeds():
    seeds = [3, 0, MAX_SEED, 12345]
    masks, z = philox.sample_noise(seeds, BUNDLED_SHAPES, 8)
    for i, seed in enumerate(seeds):
        alone_masks, alone_z = philox.sample_noise([seed], BUNDLED_SHAPES, 8)
        assert all(np.array_equal(m[i], a[0]) for m, a in zip(masks, alone_masks))
        assert np.array_equal(z[i], alone_z[0])
        # Mask k is stream k whatever the other shapes are; the code is the code stream.
        assert np.array_equal(masks[1][i], philox.dropout_mask(seed, 1, BUNDLED_SHAPES[1]))
        assert np.array_equal(z[i], philox.normals(seed, CODE_STREAM, 8))
    for k in range(len(BUNDLED_SHAPES)):
        flat = masks[k].reshape(len(seeds), -1)
        assert all((flat[i] != flat[j]).mean() > 0.4 for i in range(len(seeds)) for j in range(i))
    assert len({tuple(row) for row in z.tolist()}) == len(seeds)
    assert not np.array_equal(masks[0][0], philox.dropout_mask(seeds[0], 1, BUNDLED_SHAPES[0]))  # streams differ
    # A stream's first numbers do not depend on how many are drawn.
    assert np.array_equal(philox.normals(5, CODE_STREAM, 3), philox.normals(5, CODE_STREAM, 8)[:3])
    assert np.array_equal(philox.uniforms(5, 0, 5), philox.uniforms(5, 0, 4096)[:5])


def test_masks_keep_about_one_in_two_and_normals_are_standard():
    for seed in SEEDS:
        masks, _ = philox.sample_noise([seed], BUNDLED_SHAPES, 0)
        kept = np.concatenate([m.ravel() for m in masks])
        assert set(np.unique(kept).tolist()) == {0.0, 2.0}
        assert abs((kept > 0).mean() - 0.5) < 0.02  # 86016 draws: 12 standard deviations
        assert abs((philox.dropout_mask(seed, 0, (20000,), 0.25) > 0).mean() - 0.75) < 0.03
        u = philox.uniforms(seed, 9, 20000)
        assert u.min() >= 0 and u.max() < 1 and np.array_equal(u * 2**24, np.floor(u * 2**24))
        z = philox.normals(seed, CODE_STREAM, 4000).astype(np.float64)
        assert abs(z.mean()) < 0.1 and abs(z.std() - 1) < 0.1  # about 6 and 9 standard deviations
        assert abs((np.abs(z) < 1).mean() - 0.6827) < 0.05 and np.abs(z).max() < 6.8


@pytest.mark.parametrize("call, message", [
    (lambda: philox.sample_noise([-1], [(1,)], 0), "0..2147483647"),
    (lambda: philox.sample_noise([2**31], [(1,)], 0), "0..2147483647"),
    (lambda: philox.sample_noise([1.5], [(1,)], 0), "whole number"),
    (lambda: philox.sample_noise([1], [(1,)], 0, p=1.0), r"\[0, 1\)"),
    (lambda: philox.sample_noise([1], [(1,)], -1), "nz"),
    (lambda: philox.uniforms(1, 2**32, 3), "stream"),
    (lambda: philox.philox4x32(np.zeros((2, 3), np.uint32), np.zeros(2, np.uint32)), "last axis of 4"),
    (lambda: philox.philox4x32(np.array([[2**32, 0, 0, 0]]), np.zeros(2, np.uint32)), "2\\*\\*32-1"),
])
def test_bad_input_is_refused_with_a_message(call, message):
    with pytest.raises(ValueError, match=message):
        call()


# ---- JavaScript, in Chromium ----

@pytest.fixture(scope="module")
def js():
    """A blank page from ``ORIGIN`` with ``window.P`` the module ``assets/js/philox.js``, imported as a browser
    imports it; every request is answered by Playwright from the working tree, or refused."""
    sync_playwright = sync_playwright_or_skip()
    files = {f"{ORIGIN}/": ("text/html", "<!doctype html><title>philox</title>"),
             f"{ORIGIN}/philox.js": ("text/javascript", PHILOX_JS.read_text())}

    def answer(route):
        if route.request.url in files:
            kind, body = files[route.request.url]
            route.fulfill(status=200, content_type=kind, body=body)
        else:
            route.abort()

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.route("**/*", answer)
            page.goto(f"{ORIGIN}/")
            page.evaluate("async () => { window.P = await import('/philox.js'); }")
            yield page
        finally:
            browser.close()


def test_js_known_answers_and_raw_words(js, vectors):
    for v in vectors["kat_philox4x32_10"]:
        got = js.evaluate("([c, k]) => Array.from(P.philox4x32(c, k))", [_hex(v["counter"]), _hex(v["key"])])
        assert got == _hex(v["out"])
    for v in vectors["philox4x32"]:
        got = js.evaluate("([c, k]) => Array.from(P.philox4x32(c, k))", [sum(v["counter"], []), v["key"]])
        assert got == sum(v["out"], [])
    for v in vectors["words"]:
        assert js.evaluate("(v) => Array.from(P.randomWords(v.seed, v.stream, v.n))", v) == v["out"]


def test_js_uniforms_and_masks_are_bit_identical(js, vectors):
    for v in vectors["uniforms"]:
        assert js.evaluate("(v) => Array.from(P.uniforms(v.seed, v.stream, v.n))", v) == v["out"]
    for v in vectors["masks"]:
        assert js.evaluate("(v) => Array.from(P.dropoutMask(v.seed, v.stream, v.shape, v.p))", v) == v["out"]
    # Beyond the vectors: a long mask and p that is not a power of two, against Python directly.
    got = js.evaluate("() => Array.from(P.dropoutMask(99, 2, [3, 700], 0.3))")
    assert got == philox.dropout_mask(99, 2, (3, 700), 0.3).ravel().tolist()
    got = js.evaluate("() => Array.from(P.uniforms(2147483647, 5, 1000))")
    assert got == philox.uniforms(MAX_SEED, 5, 1000).tolist()


def test_js_normals_and_sample_noise(js, vectors):
    for v in vectors["normals"]:
        assert_within_ulp(js.evaluate("(v) => Array.from(P.normals(v.seed, v.stream, v.n))", v), v["out"])
    assert_within_ulp(js.evaluate("() => Array.from(P.normals(8, 2147483648, 3001))"),
                      philox.normals(8, CODE_STREAM, 3001))
    s = vectors["sample_noise"]
    got = js.evaluate("(s) => { const r = P.sampleNoise(s.seeds, s.shapes, s.nz, s.p);"
                      " return {masks: r.masks.map((m) => Array.from(m)), z: Array.from(r.z)}; }", s)
    assert got["masks"] == s["masks"]
    assert_within_ulp(got["z"], s["z"], "latent codes")
    # The second sample alone is the second half of the batch; no code when nz = 0.
    alone = js.evaluate("(s) => { const r = P.sampleNoise([s.seeds[1]], s.shapes, s.nz, s.p);"
                        " return {masks: r.masks.map((m) => Array.from(m)), z: Array.from(r.z)}; }", s)
    assert alone["masks"] == [m[len(m) // 2:] for m in s["masks"]] and alone["z"] == got["z"][s["nz"]:]
    assert js.evaluate("() => P.sampleNoise([1], [[2]], 0).z") is None


def test_js_bad_input_is_refused_with_a_message(js):
    calls = ["P.sampleNoise([-1], [[1]], 0)", "P.sampleNoise([2 ** 31], [[1]], 0)", "P.sampleNoise([1.5], [[1]], 0)",
             "P.sampleNoise([1], [[1]], 0, 1)", "P.uniforms(1, 2 ** 32, 3)", "P.philox4x32([0, 0, 0], [0, 0])",
             "P.dropoutMask(1, 0, [2, -1])"]
    messages = js.evaluate("(calls) => calls.map((c) => { try { eval(c); return null; }"
                           " catch (e) { return e.name + ': ' + e.message; } })", calls)
    assert all(m and m.startswith("RangeError") for m in messages), dict(zip(calls, messages))
    assert "0..2147483647" in messages[0] and "[0, 1)" in messages[3]


if __name__ == "__main__":
    write_vectors()
    print(f"wrote {VECTORS.relative_to(REPO)} ({VECTORS.stat().st_size} bytes)")
