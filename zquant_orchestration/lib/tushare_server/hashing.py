"""Counter-based hashes that replace random generators in the local server's data.

Every synthetic value is a pure function of its keys (stock, day or period, a name), so
a row comes out the same whether it is built alone or with the whole market, in any
process. Seeds come from crc32, never Python's ``hash()``, which is salted per process.
"""

from __future__ import annotations

import zlib
from functools import cache

import numpy as np


def stable_seed(text: str) -> int:
    """A seed that is the same in every process (Python's hash() is salted per process)."""
    return zlib.crc32(text.encode("utf-8"))


def mix(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser: a fast, well-spread hash of uint64 values."""
    with np.errstate(over="ignore"):
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def uniform(seed: np.ndarray, index: np.ndarray, salt: int) -> np.ndarray:
    """Deterministic U[0, 1) per (seed, index, salt), vectorised."""
    with np.errstate(over="ignore"):
        salt_bits = np.uint64((salt * 0x165667B19E3779F9) & 0xFFFFFFFFFFFFFFFF)
        x = (seed.astype(np.uint64) * np.uint64(0x100000001B3)) ^ (
            index.astype(np.uint64) * np.uint64(0xC2B2AE3D27D4EB4F)) ^ salt_bits
    return (mix(x) >> np.uint64(11)).astype(np.float64) / float(1 << 53)


@cache
def tag(name: str) -> int:
    """The key of a named quantity, for ``keyed_uniform`` and ``keyed_normal``."""
    return stable_seed(name)


def keyed_uniform(*keys) -> np.ndarray:
    """Uniform [0, 1) floats, one per broadcast element of the integer keys."""
    h = np.zeros(1, dtype=np.uint64)
    for key in keys:
        h = mix(h ^ np.asarray(key).astype(np.uint64))
    return (h >> np.uint64(11)).astype(np.float64) * 2.0**-53


def keyed_normal(*keys) -> np.ndarray:
    """Standard normal (Box-Muller), clipped to +-4 so no figure explodes."""
    u1 = keyed_uniform(*keys, tag("normal.a"))
    u2 = keyed_uniform(*keys, tag("normal.b"))
    return np.clip(np.sqrt(-2.0 * np.log1p(-u1)) * np.cos(2.0 * np.pi * u2), -4.0, 4.0)
