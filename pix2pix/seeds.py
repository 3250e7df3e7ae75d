"""The one rule for seeds, everywhere (library, CLI, app, API): a seed is an integer in 0..2**31-1.

Anything else is refused with a message that says so, never wrapped: a seed that was accepted is the
seed that was used, so a file named ``_seed5`` or a seed shown in the app can be reproduced anywhere.
"""

from __future__ import annotations

import math
import numbers
import secrets

MAX_SEED = 2**31 - 1


def check_seed(value: object, what: str = "seed") -> int:
    """``value`` as a seed: an int (or an integral float from a number box, or a decimal string) in
    0..MAX_SEED. Raises ``ValueError`` naming the rule otherwise."""
    number: object = value
    if isinstance(value, str):
        text = value.strip()
        if not text.lstrip("+-").isdigit():
            raise ValueError(f"the {what} must be a whole number in 0..{MAX_SEED}, got {value!r}")
        number = int(text)
    if isinstance(number, bool) or not isinstance(number, numbers.Real):
        raise ValueError(f"the {what} must be a whole number in 0..{MAX_SEED}, got {value!r}")
    if isinstance(number, numbers.Integral):
        number = int(number)
    else:
        if not math.isfinite(float(number)) or float(number) != int(float(number)):
            raise ValueError(f"the {what} must be a whole number in 0..{MAX_SEED}, got {value!r}")
        number = int(float(number))
    if not 0 <= number <= MAX_SEED:
        raise ValueError(f"the {what} must lie in 0..{MAX_SEED}, got {number}")
    return number


def seed_range(seed: object, count: int) -> list[int]:
    """The seeds ``seed, seed + 1, ..., seed + count - 1`` of ``count`` samples, all within the rule."""
    first = check_seed(seed)
    if count < 1:
        raise ValueError(f"the number of samples must be at least 1, got {count}")
    if first + count - 1 > MAX_SEED:
        raise ValueError(f"seed {first} with {count} samples would pass {MAX_SEED} (sample i uses seed + i); "
                         f"use a seed of at most {MAX_SEED - count + 1}")
    return [first + i for i in range(count)]


def random_seed(count: int = 1) -> int:
    """A random first seed that leaves room for ``count`` samples."""
    return secrets.randbelow(MAX_SEED - max(count, 1) + 2)
