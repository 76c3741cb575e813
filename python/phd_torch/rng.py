"""mulberry32, the project's one seeded PRNG (runtime/data/rng.ts), bit for bit, vectorised.

Its state is a Weyl sequence (draw i of seed s reads the state s + i * 0x6D2B79F5 mod 2^32), so any
run of draws is computed at once from the state before it with u32 arithmetic in numpy (products
of two u32 values fit a u64 exactly). `next()` is that u32 over 2^32, a float64, and `int(n)`
is `floor(next() * n)` in float64, as JavaScript's `Math.floor(next() * n)`: both bit for bit.
`normal()` is Box-Muller over two draws; numpy's vectorised log and cos may differ from V8's in
the last float64 bit, which changes a float32 weight drawn from it with a probability of about
2^-29. tests/torch/parity_test.ts checks all three against the TypeScript.
"""
import numpy as np

STEP = 0x6D2B79F5
MASK = np.uint64(0xFFFFFFFF)


def uniforms(state, n):
    """The next n values of `next()` after `state` (float64 array) and the state after them."""
    i = np.arange(1, n + 1, dtype=np.uint64)
    t = (np.uint64(state) + i * np.uint64(STEP)) & MASK
    t = ((t ^ (t >> np.uint64(15))) * (t | np.uint64(1))) & MASK
    t ^= (t + (((t ^ (t >> np.uint64(7))) * (t | np.uint64(61))) & MASK)) & MASK
    t = (t ^ (t >> np.uint64(14))) & MASK
    return t.astype(np.float64) / 4294967296.0, (state + n * STEP) & 0xFFFFFFFF


def ints(state, n, bound):
    """n draws of `int(bound)` (int64 array) and the state after them."""
    u, state = uniforms(state, n)
    return np.floor(u * float(bound)).astype(np.int64), state


def normals(state, n):
    """n draws of `normal()` (each reads two uniforms: u = 1 - next(), then v = next())."""
    x, state = uniforms(state, 2 * n)
    u, v = 1.0 - x[0::2], x[1::2]
    return np.sqrt(-2.0 * np.log(u)) * np.cos(2.0 * np.pi * v), state
