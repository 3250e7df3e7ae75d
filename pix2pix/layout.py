"""Random, plausible facade label maps: a starting point for painting, drawn from a seed.

A layout is built as an (H, W) array of class indices and rendered with the palette, so it only ever
holds palette colours. The structure follows what CMP facades look like: background around a
rectangular facade block that reaches the bottom of the image; a cornice on top; a ground floor
with a door or a shop front; upper floors with a grid of windows, each with a sill and sometimes
blinds, a balcony or a decorated lintel; molding bands between floors; pillars now and then.

>>> from pix2pix.layout import random_layout
>>> random_layout(seed=7).size
(256, 256)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from .palette import class_index, index_to_rgb

BACKGROUND = class_index("background")
FACADE = class_index("facade")
WINDOW = class_index("window")
DOOR = class_index("door")
CORNICE = class_index("cornice")
SILL = class_index("sill")
BALCONY = class_index("balcony")
BLIND = class_index("blind")
DECO = class_index("deco")
MOLDING = class_index("molding")
PILLAR = class_index("pillar")
SHOP = class_index("shop")


def _px(fraction: float, size: int, minimum: int = 1) -> int:
    return max(minimum, int(round(fraction * size)))


class _Block:
    """The class map being drawn and the facade block in it (rows top..bottom-1, columns left..right-1)."""

    def __init__(self, size: int, top: int, left: int, right: int):
        self.size, self.top, self.bottom, self.left, self.right = size, top, size, left, right
        self.m = np.full((size, size), BACKGROUND, dtype=np.uint8)
        self.m[top:, left:right] = FACADE

    @property
    def width(self) -> int:
        return self.right - self.left

    def box(self, cls: int, top: int, left: int, bottom: int, right: int) -> None:
        """Fill rows top..bottom-1, columns left..right-1 (clipped to the facade block)."""
        top, bottom = max(top, self.top), min(bottom, self.bottom)
        left, right = max(left, self.left), min(right, self.right)
        if bottom > top and right > left:
            self.m[top:bottom, left:right] = cls

    def band(self, cls: int, top: int, height: int) -> None:
        """A band across the whole block."""
        self.box(cls, top, self.left, top + height, self.right)


@dataclass
class _Grid:
    """The window columns every floor shares, as on real facades."""

    margin: int
    pitch: float
    win_w: int
    lefts: list[int]


def random_layout_indices(seed: int, size: int = 256) -> np.ndarray:
    """The class-index map behind :func:`random_layout`: (size, size) uint8, 0-based CMP classes.

    Drawn top to bottom from one generator; each part below takes its random numbers in a fixed order, so a
    seed always gives the same layout."""
    if size < 32:
        raise ValueError(f"size must be at least 32 pixels, got {size}")
    rng = np.random.default_rng(seed)
    block = _facade_block(rng, size)
    body_top = _cornice(rng, block)
    ground_h = _px(rng.uniform(0.17, 0.26), size, 8)
    ground_top = block.bottom - ground_h
    shop = rng.random() < 0.45
    upper_bottom = ground_top
    if rng.random() < 0.7:  # a molding band between the ground floor and the floors above
        band = _px(rng.uniform(0.015, 0.035), size, 2)
        block.band(MOLDING, ground_top - band, band)
        upper_bottom = ground_top - band
    grid = _window_grid(rng, block)
    _pillars(rng, block, grid, body_top, ground_top if shop else upper_bottom)
    _upper_floors(rng, block, grid, body_top, upper_bottom)
    _ground_floor(rng, block, grid, ground_top, shop)
    return block.m


def _facade_block(rng: np.random.Generator, s: int) -> _Block:
    """Background margins left, right and above; the block stands on the image's bottom edge."""
    full_width = rng.random() < 0.35
    left = 0 if full_width else _px(rng.uniform(0.02, 0.12), s)
    right = s if full_width else s - _px(rng.uniform(0.02, 0.12), s)
    return _Block(s, _px(rng.uniform(0.03, 0.18), s), left, right)


def _cornice(rng: np.random.Generator, block: _Block) -> int:
    """A cornice along the top of the block, sometimes with a thinner molding band under it; returns where
    the floors start."""
    s = block.size
    cornice_h = _px(rng.uniform(0.015, 0.04), s, 2)
    block.band(CORNICE, block.top, cornice_h)
    body_top = block.top + cornice_h
    if rng.random() < 0.5:
        band = _px(rng.uniform(0.008, 0.02), s)
        gap = _px(0.01, s)
        block.band(MOLDING, body_top + gap, band)
        body_top += gap + band
    return body_top


def _window_grid(rng: np.random.Generator, block: _Block) -> _Grid:
    n_cols = int(rng.integers(2, 7))
    margin = _px(rng.uniform(0.03, 0.08), block.width)
    pitch = (block.width - 2 * margin) / n_cols
    win_w = max(2, int(pitch * rng.uniform(0.4, 0.65)))
    lefts = [block.left + margin + int(round((c + 0.5) * pitch)) - win_w // 2 for c in range(n_cols)]
    return _Grid(margin, pitch, win_w, lefts)


def _pillars(rng: np.random.Generator, block: _Block, grid: _Grid, top: int, bottom: int) -> None:
    """Now and then, full-height strips on the block's edges or between window columns."""
    if rng.random() >= 0.3:
        return
    n_cols = len(grid.lefts)
    pillar_w = max(2, int((grid.pitch - grid.win_w) * rng.uniform(0.25, 0.45)))
    gaps = [block.left + grid.margin + int(round(c * grid.pitch)) for c in range(n_cols + 1)]
    between = rng.random() < 0.5
    for k, x in enumerate(gaps):
        if between or k in (0, n_cols):
            block.box(PILLAR, top, x - pillar_w // 2, bottom, x + (pillar_w + 1) // 2)


def _upper_floors(rng: np.random.Generator, block: _Block, grid: _Grid, body_top: int, upper_bottom: int) -> None:
    """Floors of windows, each with a sill and sometimes blinds, a balcony or a decorated lintel."""
    s, upper_h = block.size, upper_bottom - body_top
    n_floors = int(np.clip(rng.integers(2, 6), 1, max(1, upper_h // _px(0.07, s, 4))))
    floor_h = upper_h / n_floors
    win_h = max(3, int(floor_h * rng.uniform(0.45, 0.65)))
    sill_h = max(1, _px(0.012, s))
    blinds = rng.choice(["none", "roller", "shutters"], p=[0.5, 0.25, 0.25])
    balcony_rows = rng.random(n_floors) < rng.choice([0.0, 0.35, 0.8], p=[0.4, 0.35, 0.25])
    deco = rng.random() < 0.3
    bands = rng.random() < 0.35  # molding bands between upper floors
    for f in range(n_floors):
        floor_top = body_top + int(round(f * floor_h))
        floor_bottom = body_top + int(round((f + 1) * floor_h))
        if bands and f > 0:
            block.band(MOLDING, floor_top, max(1, sill_h))
        wy = floor_top + int((floor_h - win_h) * rng.uniform(0.35, 0.55))
        balcony = bool(balcony_rows[f]) and (f > 0 or n_floors == 1)
        continuous = balcony and rng.random() < 0.4
        window = _Window(wy, win_h, sill_h, min(wy + win_h + 2 * sill_h, floor_bottom))
        for x in grid.lefts:
            _window(rng, block, window, x, grid.win_w, deco, blinds, balcony and not continuous)
        if continuous:
            over = max(1, grid.win_w // 8)
            block.box(BALCONY, wy + int(win_h * 0.6), grid.lefts[0] - 2 * over, window.balcony_bottom,
                      grid.lefts[-1] + grid.win_w + 2 * over)


@dataclass
class _Window:
    """Where a floor's windows sit (rows) and how tall their parts are."""

    top: int
    height: int
    sill_h: int
    balcony_bottom: int


def _window(rng: np.random.Generator, block: _Block, w: _Window, x: int, win_w: int, deco: bool, blinds: str,
            balcony: bool) -> None:
    """One window at column ``x``: lintel, shutters, the window, a roller blind, the sill, a balcony."""
    over = max(1, win_w // 8)
    if deco:  # a decorated lintel above the window
        block.box(DECO, w.top - max(2, w.sill_h * 2), x - over, w.top - 1, x + win_w + over)
    if blinds == "shutters":
        shutter = max(1, win_w // 2)
        block.box(BLIND, w.top, x - shutter, w.top + w.height, x)
        block.box(BLIND, w.top, x + win_w, w.top + w.height, x + win_w + shutter)
    block.box(WINDOW, w.top, x, w.top + w.height, x + win_w)
    if blinds == "roller":
        block.box(BLIND, w.top, x, w.top + int(w.height * rng.uniform(0.2, 0.6)), x + win_w)
    block.box(SILL, w.top + w.height, x - over, w.top + w.height + w.sill_h, x + win_w + over)
    if balcony:
        block.box(BALCONY, w.top + int(w.height * 0.6), x - 2 * over, w.balcony_bottom, x + win_w + 2 * over)


def _ground_floor(rng: np.random.Generator, block: _Block, grid: _Grid, ground_top: int, shop: bool) -> None:
    """A door alone (with windows beside it), or a shop front with or without its own door; drawn last so
    nothing from above spills into it."""
    block.m[ground_top:block.bottom, block.left:block.right] = FACADE
    ground_h, bottom = block.bottom - ground_top, block.bottom
    door_w = max(3, int(grid.pitch * rng.uniform(0.45, 0.75)))
    door_h = max(4, int(ground_h * rng.uniform(0.6, 0.85)))
    door_col = int(rng.integers(0, len(grid.lefts)))
    door_x = grid.lefts[door_col] + grid.win_w // 2 - door_w // 2
    if shop:
        shop_top = ground_top + max(1, int(ground_h * rng.uniform(0.1, 0.25)))
        block.box(SHOP, shop_top, block.left + grid.margin // 2, bottom, block.right - grid.margin // 2)
        if rng.random() < 0.5:
            block.box(DOOR, bottom - door_h, door_x, bottom, door_x + door_w)
        return
    block.box(DOOR, bottom - door_h, door_x, bottom, door_x + door_w)
    gw_top, gw_h = ground_top + int(ground_h * 0.2), max(2, int(ground_h * 0.5))
    sill_h, over = max(1, _px(0.012, block.size)), max(1, grid.win_w // 8)
    for c, x in enumerate(grid.lefts):
        if c != door_col and abs(x - door_x) > door_w:
            block.box(WINDOW, gw_top, x, gw_top + gw_h, x + grid.win_w)
            block.box(SILL, gw_top + gw_h, x - over, gw_top + gw_h + sill_h, x + grid.win_w + over)


def random_layout(seed: int, size: int = 256) -> Image.Image:
    """A new, plausible facade label map (RGB, palette colours only), the same for the same seed."""
    return index_to_rgb(random_layout_indices(seed, size))
