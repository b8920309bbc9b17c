"""The compiled per-run generator (moecl_lib.linear.rng): xoshiro256** against a
plain-Python twin, and the law of its doubles and ziggurat normals."""

from __future__ import annotations

import math

import numpy as np
import pytest
from numba import njit
from scipy import stats

from moecl_lib.linear import rng

MASK = (1 << 64) - 1


def xoshiro_python(state: list[int], n: int) -> list[int]:
    """xoshiro256** written from its definition with Python integers."""

    def rotl(x: int, k: int) -> int:
        return ((x << k) | (x >> (64 - k))) & MASK

    s = list(state)
    out = []
    for _ in range(n):
        out.append(rotl((s[1] * 5) & MASK, 7) * 9 & MASK)
        t = (s[1] << 17) & MASK
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= t
        s[3] = rotl(s[3], 45)
    return out


@njit
def _words(st: np.ndarray, n: int) -> np.ndarray:
    out = np.empty(n, dtype=np.uint64)
    s0, s1, s2, s3 = st[0], st[1], st[2], st[3]
    for i in range(n):
        out[i], s0, s1, s2, s3 = rng._step(s0, s1, s2, s3)
    return out


@njit
def _normals(st: np.ndarray, n: int) -> np.ndarray:
    out = np.empty(n)
    s0, s1, s2, s3 = st[0], st[1], st[2], st[3]
    for i in range(n):
        out[i], s0, s1, s2, s3 = rng.next_normal(s0, s1, s2, s3)
    return out


def state(seed: int) -> np.ndarray:
    return rng.seed_states([np.random.SeedSequence(seed)])[0]


def test_xoshiro_equals_its_definition():
    st = state(3)
    expected = xoshiro_python([int(w) for w in st], 1000)
    assert _words(st, 1000).tolist() == expected


def test_xoshiro_known_start():
    """State (1, 2, 3, 4): the first output is rotl(2 * 5, 7) * 9 = 11520."""
    st = np.array([1, 2, 3, 4], dtype=np.uint64)
    assert int(_words(st, 1)[0]) == 11520


def test_zero_state_is_replaced():
    """The all-zero state (xoshiro's fixed point) becomes a non-zero one."""

    class Zero:
        def generate_state(self, n: int, dtype: type) -> np.ndarray:
            return np.zeros(n, dtype=dtype)

    st = rng.seed_states([Zero(), np.random.SeedSequence(1)])  # type: ignore[list-item]
    assert st[0].any() and np.array_equal(st[1], state(1))
    assert len(set(_words(st[0], 64).tolist())) > 48  # it moves


def test_ziggurat_tables():
    """Layers of equal area V: x_i (f_{i-1} - f_i) + tail pieces are consistent."""
    x = rng.ZIG_W * 2.0**52  # right edges of the layers
    f = rng.ZIG_F
    assert x[255] == pytest.approx(rng.R)
    assert np.all(np.diff(x[1:]) > 0) and np.all(np.diff(f) < 0)
    areas = x[2:] * (f[1:-1] - f[2:])  # layer i: width x_i, height f_{i-1} - f_i ...
    assert np.allclose(areas, rng.V, rtol=1e-9)
    np.testing.assert_allclose(f[1:], np.exp(-0.5 * x[1:] ** 2), rtol=1e-12)


@pytest.mark.parametrize("seed", [0, 1])
def test_normal_law(seed):
    """KS (p > 1e-3), mean and variance (4 s.e.), and the mass beyond R (4 s.e.)."""
    z = _normals(state(seed), 2_000_000)
    assert stats.kstest(z[:200_000], "norm").pvalue > 1e-3
    n = z.size
    assert abs(z.mean()) < 4 / math.sqrt(n)
    assert abs(z.var() - 1.0) < 4 * math.sqrt(2.0 / n)
    p_tail = 2 * stats.norm.sf(rng.R)
    tail = np.mean(np.abs(z) > rng.R)
    assert abs(tail - p_tail) < 4 * math.sqrt(p_tail / n)
    assert np.mean(np.abs(z) > 2.0) == pytest.approx(2 * stats.norm.sf(2.0), abs=4e-4)


def test_law_test_catches_a_wrong_scale():
    """The KS check above fails for normals 2 % too wide."""
    z = _normals(state(5), 200_000) * 1.02
    assert stats.kstest(z, "norm").pvalue < 1e-3


def test_fill_rounds_does_not_depend_on_blocks():
    states = rng.seed_states([np.random.SeedSequence([9, r]) for r in range(15)])
    states = states.reshape(3, 5, 4)

    def draw(blocks: list[int]) -> tuple[np.ndarray, np.ndarray]:
        st = states.copy()
        T = sum(blocks)
        tasks = np.empty((T, 3), dtype=np.int64)
        noise = np.empty((T, 3, 4, 3))
        beta, pos = np.empty((T, 3)), np.empty((T, 3), dtype=np.int64)
        route = np.empty((T, 3, 2))
        t = 0
        for b in blocks:
            rng.fill_rounds(
                st, b, 5, 3, 0.3, 0.1, 1.0, True,
                tasks[t:], noise[t:], beta[t:], pos[t:], route[t:],
            )  # fmt: skip
            t += b
        return tasks, noise

    a, b = draw([20]), draw([7, 1, 12])
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
