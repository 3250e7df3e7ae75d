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


def random_layout_indices(seed: int, size: int = 256) -> np.ndarray:
    """The class-index map behind :func:`random_layout`: (size, size) uint8, 0-based CMP classes."""
    if size < 32:
        raise ValueError(f"size must be at least 32 pixels, got {size}")
    rng = np.random.default_rng(seed)
    s = size
    m = np.full((s, s), BACKGROUND, dtype=np.uint8)

    def box(cls: int, top: int, left: int, bottom: int, right: int) -> None:
        """Fill rows top..bottom-1, columns left..right-1 (clipped to the facade block)."""
        top, bottom = max(top, f_top), min(bottom, f_bottom)
        left, right = max(left, f_left), min(right, f_right)
        if bottom > top and right > left:
            m[top:bottom, left:right] = cls

    # The facade block: background margins left, right and above; it stands on the image's bottom edge.
    full_width = rng.random() < 0.35
    f_left = 0 if full_width else _px(rng.uniform(0.02, 0.12), s)
    f_right = s if full_width else s - _px(rng.uniform(0.02, 0.12), s)
    f_top = _px(rng.uniform(0.03, 0.18), s)
    f_bottom = s
    m[f_top:f_bottom, f_left:f_right] = FACADE
    width = f_right - f_left

    # Cornice along the top of the block, sometimes with a thinner molding band under it.
    cornice_h = _px(rng.uniform(0.015, 0.04), s, 2)
    box(CORNICE, f_top, f_left, f_top + cornice_h, f_right)
    body_top = f_top + cornice_h
    if rng.random() < 0.5:
        band = _px(rng.uniform(0.008, 0.02), s)
        gap = _px(0.01, s)
        box(MOLDING, body_top + gap, f_left, body_top + gap + band, f_right)
        body_top += gap + band

    # Ground floor: a door alone, or a shop front (with or without its own door).
    ground_h = _px(rng.uniform(0.17, 0.26), s, 8)
    ground_top = f_bottom - ground_h
    shop = rng.random() < 0.45
    if rng.random() < 0.7:  # a molding band between the ground floor and the floors above
        band = _px(rng.uniform(0.015, 0.035), s, 2)
        box(MOLDING, ground_top - band, f_left, ground_top, f_right)
        upper_bottom = ground_top - band
    else:
        upper_bottom = ground_top

    # Upper floors: a grid of window columns shared by all floors, as on real facades.
    n_cols = int(rng.integers(2, 7))
    margin = _px(rng.uniform(0.03, 0.08), width)
    pitch = (width - 2 * margin) / n_cols
    win_w = max(2, int(pitch * rng.uniform(0.4, 0.65)))
    col_lefts = [f_left + margin + int(round((c + 0.5) * pitch)) - win_w // 2 for c in range(n_cols)]

    # Pillars: full-height strips on the block's edges or between window columns.
    if rng.random() < 0.3:
        pillar_w = max(2, int((pitch - win_w) * rng.uniform(0.25, 0.45)))
        gaps = [f_left + margin + int(round(c * pitch)) for c in range(n_cols + 1)]
        between = rng.random() < 0.5
        for k, x in enumerate(gaps):
            if between or k in (0, n_cols):
                box(PILLAR, body_top, x - pillar_w // 2, ground_top if shop else upper_bottom, x + (pillar_w + 1) // 2)

    upper_h = upper_bottom - body_top
    n_floors = int(np.clip(rng.integers(2, 6), 1, max(1, upper_h // _px(0.07, s, 4))))
    floor_h = upper_h / n_floors
    win_h = max(3, int(floor_h * rng.uniform(0.45, 0.65)))
    sill_h = max(1, _px(0.012, s))
    sill_over = max(1, win_w // 8)
    blinds = rng.choice(["none", "roller", "shutters"], p=[0.5, 0.25, 0.25])
    balcony_rows = rng.random(n_floors) < rng.choice([0.0, 0.35, 0.8], p=[0.4, 0.35, 0.25])
    deco = rng.random() < 0.3
    bands = rng.random() < 0.35  # molding bands between upper floors

    for f in range(n_floors):
        floor_top = body_top + int(round(f * floor_h))
        floor_bottom = body_top + int(round((f + 1) * floor_h))
        if bands and f > 0:
            box(MOLDING, floor_top, f_left, floor_top + max(1, sill_h), f_right)
        wy = floor_top + int((floor_h - win_h) * rng.uniform(0.35, 0.55))
        balcony = bool(balcony_rows[f]) and (f > 0 or n_floors == 1)
        continuous = balcony and rng.random() < 0.4
        for x in col_lefts:
            if deco:  # a decorated lintel above the window
                box(DECO, wy - max(2, sill_h * 2), x - sill_over, wy - 1, x + win_w + sill_over)
            if blinds == "shutters":
                shutter = max(1, win_w // 2)
                box(BLIND, wy, x - shutter, wy + win_h, x)
                box(BLIND, wy, x + win_w, wy + win_h, x + win_w + shutter)
            box(WINDOW, wy, x, wy + win_h, x + win_w)
            if blinds == "roller":
                box(BLIND, wy, x, wy + int(win_h * rng.uniform(0.2, 0.6)), x + win_w)
            box(SILL, wy + win_h, x - sill_over, wy + win_h + sill_h, x + win_w + sill_over)
            if balcony and not continuous:
                bal_top = wy + int(win_h * 0.6)
                box(BALCONY, bal_top, x - 2 * sill_over, min(wy + win_h + 2 * sill_h, floor_bottom), x + win_w + 2 * sill_over)
        if continuous:
            bal_top = wy + int(win_h * 0.6)
            box(BALCONY, bal_top, col_lefts[0] - 2 * sill_over, min(wy + win_h + 2 * sill_h, floor_bottom),
                col_lefts[-1] + win_w + 2 * sill_over)

    # The ground floor itself, drawn last so nothing from above spills into it.
    m[ground_top:f_bottom, f_left:f_right] = FACADE
    door_w = max(3, int(pitch * rng.uniform(0.45, 0.75)))
    door_h = max(4, int(ground_h * rng.uniform(0.6, 0.85)))
    door_col = int(rng.integers(0, n_cols))
    door_x = col_lefts[door_col] + win_w // 2 - door_w // 2
    if shop:
        shop_top = ground_top + max(1, int(ground_h * rng.uniform(0.1, 0.25)))
        box(SHOP, shop_top, f_left + margin // 2, f_bottom, f_right - margin // 2)
        if rng.random() < 0.5:
            box(DOOR, f_bottom - door_h, door_x, f_bottom, door_x + door_w)
    else:
        box(DOOR, f_bottom - door_h, door_x, f_bottom, door_x + door_w)
        gw_top = ground_top + int(ground_h * 0.2)
        gw_h = max(2, int(ground_h * 0.5))
        for c, x in enumerate(col_lefts):
            if c != door_col and abs(x - door_x) > door_w:
                box(WINDOW, gw_top, x, gw_top + gw_h, x + win_w)
                box(SILL, gw_top + gw_h, x - sill_over, gw_top + gw_h + sill_h, x + win_w + sill_over)
    return m


def random_layout(seed: int, size: int = 256) -> Image.Image:
    """A new, plausible facade label map (RGB, palette colours only), the same for the same seed."""
    return index_to_rgb(random_layout_indices(seed, size))
