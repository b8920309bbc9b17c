"""Compiled per-run random numbers: xoshiro256** streams and a ziggurat normal.

The per-run streams of :mod:`moecl_lib.linear.streams` draw every round's numbers here,
in compiled code, one run at a time: a stream is four ``uint64`` words of
xoshiro256** state (Blackman and Vigna, 2018), seeded from a numpy ``SeedSequence``,
and advanced in place, so a stream continues across blocks exactly as one long
sequence. Conventions:

* a double is ``(x >> 11) * 2**-53``, uniform on ``[0, 1)`` with 53 random bits;
* a standard normal comes from the 256-layer ziggurat of Marsaglia and Tsang (2000):
  one 64-bit word gives the layer (8 bits), the sign (1 bit) and a 52-bit abscissa;
  the wedge test and the tail (Marsaglia's exponential method) draw extra doubles.
  The tables are built here from the published recurrence (``R``, ``V`` below).

Everything is integer arithmetic except the tables and the rare slow paths (``exp``,
``log1p``: about 1 % of the normals), so a stream is bit-identical on one machine and
agrees to the last bit of those functions elsewhere. ``tests/test_rng.py`` checks
the law of the draws and that the plain-Python twins give the same numbers.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from moecl_lib.linear.routing import njit

R: float = 3.6541528853610088
"""Start of the ziggurat's tail (256 layers)."""
V: float = 0.00492867323399
"""Area of each ziggurat layer (and of the base strip with the tail)."""
WORDS = 4
"""``uint64`` words of one xoshiro256** state."""

_M52 = float(2**52)
_MASK52 = np.uint64((1 << 52) - 1)
_TO_DOUBLE = 2.0**-53
U64 = np.uint64


def _tables() -> tuple[NDArray[np.uint64], NDArray[np.float64], NDArray[np.float64]]:
    """Ziggurat tables ``(k, w, f)`` of the standard normal, 256 layers.

    Layer ``i`` accepts the abscissa ``a`` (52 bits) at once when ``a < k[i]``; the
    sample is ``a * w[i]``; ``f[i] = exp(-x_i^2 / 2)`` at the layer's right edge.
    """
    k = np.zeros(256, dtype=np.uint64)
    w = np.zeros(256)
    f = np.zeros(256)
    dn = tn = R
    q = V / math.exp(-0.5 * dn * dn)
    k[0] = np.uint64(int((dn / q) * _M52))
    k[1] = np.uint64(0)
    w[0] = q / _M52
    w[255] = dn / _M52
    f[0] = 1.0
    f[255] = math.exp(-0.5 * dn * dn)
    for i in range(254, 0, -1):
        dn = math.sqrt(-2.0 * math.log(V / dn + math.exp(-0.5 * dn * dn)))
        k[i + 1] = np.uint64(int((dn / tn) * _M52))
        tn = dn
        f[i] = math.exp(-0.5 * dn * dn)
        w[i] = dn / _M52
    return k, w, f


ZIG_K, ZIG_W, ZIG_F = _tables()


def seed_states(seeds: list[np.random.SeedSequence]) -> NDArray[np.uint64]:
    """xoshiro256** states, one per seed sequence, shape ``(len(seeds), 4)``.

    An all-zero state (probability 2**-256) is the one state xoshiro cannot leave; it
    is replaced by a fixed non-zero word.
    """
    out = np.stack([ss.generate_state(WORDS, dtype=np.uint64) for ss in seeds])
    out[~out.any(axis=1), 0] = np.uint64(0x9E3779B97F4A7C15)
    return out


@njit(cache=True, inline="always")
def _rotl(x: np.uint64, k: int) -> np.uint64:
    return (x << np.uint64(k)) | (x >> np.uint64(64 - k))


@njit(cache=True, inline="always")
def _step(s0: U64, s1: U64, s2: U64, s3: U64) -> tuple[U64, U64, U64, U64, U64]:
    """One xoshiro256** step: ``(output, s0, s1, s2, s3)``.

    The state travels as four scalars, never as an array: a compiled call that takes
    an array pays reference counting, which would cost more than the draw.
    """
    result = _rotl(s1 * np.uint64(5), 7) * np.uint64(9)
    t = s1 << np.uint64(17)
    s2 ^= s0
    s3 ^= s1
    s1 ^= s2
    s0 ^= s3
    s2 ^= t
    s3 = _rotl(s3, 45)
    return result, s0, s1, s2, s3


@njit(cache=True, inline="always")
def _double(u: U64) -> float:
    """The double ``(u >> 11) * 2**-53`` on ``[0, 1)``."""
    return float(u >> np.uint64(11)) * _TO_DOUBLE


@njit(cache=True, inline="always")
def next_double(s0: U64, s1: U64, s2: U64, s3: U64) -> tuple[float, U64, U64, U64, U64]:
    """Uniform double on ``[0, 1)`` (53 random bits) and the advanced state."""
    u, s0, s1, s2, s3 = _step(s0, s1, s2, s3)
    return _double(u), s0, s1, s2, s3


@njit(cache=True)
def _tail(
    s0: U64, s1: U64, s2: U64, s3: U64, negative: bool
) -> tuple[float, U64, U64, U64, U64]:
    """A normal beyond ``R`` (Marsaglia's exponential method) and the advanced state."""
    while True:
        u, s0, s1, s2, s3 = _step(s0, s1, s2, s3)
        xx = -math.log1p(-_double(u)) / R
        u, s0, s1, s2, s3 = _step(s0, s1, s2, s3)
        yy = -math.log1p(-_double(u))
        if yy + yy > xx * xx:
            return (-(R + xx) if negative else R + xx), s0, s1, s2, s3


@njit(cache=True, inline="always")
def next_normal(s0: U64, s1: U64, s2: U64, s3: U64) -> tuple[float, U64, U64, U64, U64]:
    """Standard normal by the ziggurat (tables ``ZIG_*``, compiled in as constants)
    and the advanced state."""
    while True:
        u, s0, s1, s2, s3 = _step(s0, s1, s2, s3)
        i = int(u & np.uint64(0xFF))
        u >>= np.uint64(8)
        negative = (u & np.uint64(1)) != np.uint64(0)
        a = (u >> np.uint64(1)) & _MASK52
        x = float(a) * ZIG_W[i]
        if negative:
            x = -x
        if a < ZIG_K[i]:
            return x, s0, s1, s2, s3
        if i == 0:
            return _tail(s0, s1, s2, s3, negative)
        v, s0, s1, s2, s3 = next_double(s0, s1, s2, s3)
        if (ZIG_F[i - 1] - ZIG_F[i]) * v + ZIG_F[i] < math.exp(-0.5 * x * x):
            return x, s0, s1, s2, s3


@njit(cache=True, nogil=True)
def fill_rounds(
    states: NDArray[np.uint64],
    n_rounds: int,
    n_tasks: int,
    s: int,
    lam: float,
    sigma_t: float,
    beta_max: float,
    uniform_beta: bool,
    tasks: NDArray[np.int64],
    noise: NDArray[np.float64],
    beta: NDArray[np.float64],
    pos: NDArray[np.int64],
    route: NDArray[np.float64],
) -> None:
    """Draw ``n_rounds`` rounds of every run into the engine's buffers (axes ``(B, R,
    ...)``), run by run, each kind of number from its own stream.

    ``states``: ``(R, 5, 4)``, the streams of the task index, the Gaussian columns, the
    signal strength, the signal position and the routing noise (advanced in place).
    ``pos.shape[0] == 0`` means no signal (``beta``/``pos`` untouched),
    ``route.shape[0] == 0`` no router. Integers are ``floor(n * u)``; ``beta =
    beta_max (1 - u)`` on ``(0, beta_max]``; routing noise ``lam * u``; Gaussian entries
    are scaled by ``sigma_t``. Only what a round uses is drawn: the column that will
    hold the signal is set to zero, not drawn.
    """
    has_signal = pos.shape[0] > 0
    n_route = route.shape[2] if route.shape[0] > 0 else 0
    rows, cols = noise.shape[2], noise.shape[3]
    for r in range(states.shape[0]):
        st = states[r]
        t0, t1, t2, t3 = st[0, 0], st[0, 1], st[0, 2], st[0, 3]
        g0, g1, g2, g3 = st[1, 0], st[1, 1], st[1, 2], st[1, 3]
        b0, b1, b2, b3 = st[2, 0], st[2, 1], st[2, 2], st[2, 3]
        p0, p1, p2, p3 = st[3, 0], st[3, 1], st[3, 2], st[3, 3]
        q0, q1, q2, q3 = st[4, 0], st[4, 1], st[4, 2], st[4, 3]
        for b in range(n_rounds):
            u, t0, t1, t2, t3 = next_double(t0, t1, t2, t3)
            tasks[b, r] = int(math.floor(u * n_tasks))
            skip = -1
            if has_signal:
                if uniform_beta:
                    u, b0, b1, b2, b3 = next_double(b0, b1, b2, b3)
                    beta[b, r] = beta_max * (1.0 - u)
                u, p0, p1, p2, p3 = next_double(p0, p1, p2, p3)
                skip = int(math.floor(u * s))
                pos[b, r] = skip
            for i in range(rows):
                for j in range(cols):
                    if j == skip:
                        noise[b, r, i, j] = 0.0
                    else:
                        x, g0, g1, g2, g3 = next_normal(g0, g1, g2, g3)
                        noise[b, r, i, j] = x * sigma_t
            for m in range(n_route):
                u, q0, q1, q2, q3 = next_double(q0, q1, q2, q3)
                route[b, r, m] = lam * u
        st[0, 0], st[0, 1], st[0, 2], st[0, 3] = t0, t1, t2, t3
        st[1, 0], st[1, 1], st[1, 2], st[1, 3] = g0, g1, g2, g3
        st[2, 0], st[2, 1], st[2, 2], st[2, 3] = b0, b1, b2, b3
        st[3, 0], st[3, 1], st[3, 2], st[3, 3] = p0, p1, p2, p3
        st[4, 0], st[4, 1], st[4, 2], st[4, 3] = q0, q1, q2, q3
