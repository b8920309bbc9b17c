"""Routing/specialisation diagnostics on hand-made routing sequences (hand-computed
values)."""

import math

import numpy as np
import pytest

from moecl_lib.analysis import metrics
from moecl_lib.analysis.routing import (
    coverage,
    expert_loads,
    expert_sets,
    gate_gaps,
    load_entropy,
    purity_over_time,
    routing_matrix,
    routing_purity,
    set_sizes,
    specialisation,
    termination_stats,
    window_mask,
    within_set_uniformity,
)
from moecl_lib.analysis.sweeps import grid, run_family
from moecl_lib.config import ExperimentConfig

# One run, M = 3 experts, N = 2 tasks, T = 8 rounds.
#   round t : 1  2  3  4  5  6  7  8
#   task    : 0  1  0  1  0  1  0  1
#   expert  : 0  0  1  2  1  2  0  2
TASKS = np.array([[0, 1, 0, 1, 0, 1, 0, 1]])
EXPERTS = np.array([[0, 0, 1, 2, 1, 2, 0, 2]])


def test_routing_matrix_hand_counts():
    rm = routing_matrix(EXPERTS, TASKS, 3, 2)
    expected = np.array(
        [[[2, 1], [2, 0], [0, 3]]]
    )  # expert 0: t=1,7 (task 0), t=2 (task 1)
    np.testing.assert_array_equal(rm, expected)
    # window: rounds 2 < t <= 6 -> t = 3,4,5,6 -> expert1 x task0 twice, expert2 x task1
    # twice
    rm_w = routing_matrix(EXPERTS, TASKS, 3, 2, after=2, until=6)
    np.testing.assert_array_equal(rm_w, [[[0, 0], [2, 0], [0, 2]]])


def test_routing_purity_hand_values():
    rm = routing_matrix(EXPERTS, TASKS, 3, 2)
    # sum_m max_n = 2 + 2 + 3 = 7 over 8 rounds
    assert routing_purity(rm)[0] == pytest.approx(7 / 8)
    # rounds 2..8: expert 0 gets task 1 (t=2) and task 0 (t=7) -> max 1; expert 1: 2;
    # expert 2: 3 -> 6/7
    assert routing_purity(routing_matrix(EXPERTS, TASKS, 3, 2, after=1))[
        0
    ] == pytest.approx(6 / 7)
    assert routing_purity(routing_matrix(EXPERTS, TASKS, 3, 2, after=2))[
        0
    ] == pytest.approx(1.0)
    # fully mixed: one expert gets both tasks equally -> 1/2
    assert routing_purity(np.array([[[3, 3]]]))[0] == pytest.approx(0.5)
    # empty window -> NaN, not 0
    assert np.isnan(routing_purity(routing_matrix(EXPERTS, TASKS, 3, 2, after=8))[0])


def test_per_run_window_bounds_and_never_terminated_runs():
    e = np.vstack([EXPERTS, EXPERTS])
    n = np.vstack([TASKS, TASKS])
    T2 = np.array([6, -1])  # run 0 frozen after round 6, run 1 never frozen
    rm = routing_matrix(e, n, 3, 2, after=T2)
    np.testing.assert_array_equal(rm[0], [[1, 0], [0, 0], [0, 1]])  # rounds 7, 8
    assert rm[1].sum() == 0
    p = routing_purity(rm)
    assert p[0] == pytest.approx(1.0) and np.isnan(p[1])
    np.testing.assert_array_equal(
        window_mask(1, 4, after=1, until=3), [[False, True, True, False]]
    )


def test_routing_matrix_rejects_bad_indices():
    with pytest.raises(ValueError, match="expert indices"):
        routing_matrix(np.array([[0, 3]]), np.array([[0, 1]]), 3, 2)
    with pytest.raises(ValueError, match="same shape"):
        routing_matrix(np.array([[0, 1]]), np.array([[0]]), 3, 2)


def test_expert_sets_coverage_sizes():
    rm = np.array([[[2, 1], [2, 0], [0, 3], [0, 0]]])  # 4th expert idle
    sets = expert_sets(rm)
    np.testing.assert_array_equal(sets, [[0, 0, 1, -1]])
    np.testing.assert_array_equal(set_sizes(sets, 3), [[2, 1, 0]])
    assert coverage(sets, 3)[0] == pytest.approx(2 / 3)


def test_within_set_uniformity_hand_entropy():
    # task 0 set = {0, 1} with counts 3 and 1: H = -(3/4 ln 3/4 + 1/4 ln 1/4),
    # normalised by ln 2
    rm = np.array([[[3, 0], [1, 0], [0, 5]]])
    sets = expert_sets(rm)
    h = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25)) / math.log(2)
    assert within_set_uniformity(rm, sets)[0] == pytest.approx(h)
    # perfectly uniform set -> 1 ; only singleton sets -> NaN
    assert within_set_uniformity(np.array([[[4, 0], [4, 0], [0, 1]]]), [[0, 0, 1]])[
        0
    ] == pytest.approx(1.0)
    assert np.isnan(within_set_uniformity(np.array([[[4, 0], [0, 1]]]), [[0, 1]])[0])


def test_expert_loads_and_load_entropy_windowed():
    loads, ends = expert_loads(EXPERTS, 3, window=4)
    np.testing.assert_array_equal(ends, [4, 8])
    np.testing.assert_allclose(loads[0], [[0.5, 0.25, 0.25], [0.25, 0.25, 0.5]])
    H = load_entropy(loads)
    expected = -(0.5 * math.log(0.5) + 2 * 0.25 * math.log(0.25))
    np.testing.assert_allclose(H[0], [expected, expected])
    assert H[0, 0] == pytest.approx(
        metrics.load_entropy([2, 1, 1])
    )  # same convention as metrics
    np.testing.assert_allclose(
        load_entropy(loads, normalised=True)[0], expected / math.log(3)
    )
    assert load_entropy(
        np.array([1.0, 1.0, 1.0, 1.0]), normalised=True
    ) == pytest.approx(1.0)
    assert load_entropy(np.array([0.0, 5.0]), normalised=True) == pytest.approx(0.0)
    # trailing partial window dropped
    loads3, ends3 = expert_loads(EXPERTS, 3, window=3)
    np.testing.assert_array_equal(ends3, [3, 6])
    with pytest.raises(ValueError):
        expert_loads(EXPERTS, 3, window=9)


def test_purity_over_time_windows():
    p, ends = purity_over_time(EXPERTS, TASKS, 3, 2, window=4)
    np.testing.assert_array_equal(ends, [4, 8])
    # rounds 1-4: e0 gets tasks 0,1 (max 1), e1 task 0, e2 task 1 -> 3/4 ; rounds 5-8:
    # e1:0, e2:1,1, e0:0 -> 1
    np.testing.assert_allclose(p[0], [0.75, 1.0])


def test_gate_gaps_hand_values():
    # one run, one snapshot, N = 2 tasks, M = 4 experts; sets: experts 0,1 -> task 0; 2
    # -> task 1; 3 idle
    g = np.array(
        [
            [
                [
                    [2.0, 1.5, 0.2, 1.0],  # gates on task 0's signal
                    [-1.0, 0.0, 3.0, 2.5],
                ]
            ]
        ]
    )  # gates on task 1's signal
    sets = np.array([[0, 0, 1, -1]])
    gaps = gate_gaps(g, sets)
    np.testing.assert_allclose(gaps.within[0, 0], [0.5, 0.0])
    # task 0: min(2, 1.5) - max(0.2, 1.0) = 0.5 ; task 1: 3.0 - max(-1, 0, 2.5) = 0.5
    np.testing.assert_allclose(gaps.across[0, 0], [0.5, 0.5])
    np.testing.assert_allclose(gaps.spread[0, 0], [1.8, 4.0])
    w, a, s = gaps.task_mean()
    assert (
        w[0, 0] == pytest.approx(0.25)
        and a[0, 0] == pytest.approx(0.5)
        and s[0, 0] == pytest.approx(2.9)
    )
    # an outsider above a set member gives a negative margin
    g2 = g.copy()
    g2[0, 0, 0, 3] = 1.7
    assert gate_gaps(g2, sets).across[0, 0, 0] == pytest.approx(1.5 - 1.7)
    with pytest.raises(ValueError, match="sets must have shape"):
        gate_gaps(g, np.array([[0, 0, 1]]))


def test_termination_stats():
    st = termination_stats(np.array([12, 20, -1, 16]), T1=10)
    assert st["frac_terminated"] == pytest.approx(0.75)
    assert st["T2_median"] == pytest.approx(16.0)
    assert st["T2_over_T1_median"] == pytest.approx(1.6)
    assert math.isnan(termination_stats(np.array([-1, -1]), T1=5)["T2_median"])


def test_grid_order():
    assert grid(a=[1, 2], b=["x"]) == [{"a": 1, "b": "x"}, {"a": 2, "b": "x"}]


def test_run_family_and_specialisation_on_engine():
    base = ExperimentConfig(
        n_tasks=3,
        n_experts=4,
        d=8,
        s=3,
        T=60,
        n_runs=3,
        signal_scale=3.0,
        eta=1.0,
        seed=2,
    )
    fam = run_family(
        base,
        grid(n_experts=[1, 4], termination=["gap", "never"]),
        T1_per_expert=5,
        window=20,
        progress=False,
    )
    assert len(fam.runs) == 4
    single_gap, single_never = (
        fam.get(n_experts=1, termination="gap"),
        fam.get(n_experts=1, termination="never"),
    )
    np.testing.assert_array_equal(
        single_gap.G_mean, single_never.G_mean
    )  # the single expert is simulated once
    moe = fam.get(n_experts=4, termination="gap")
    assert moe.config.T1 == 20
    assert (
        fam.get(n_experts=4, termination="never").spec.summary()["frac_terminated"]
        == 0.0
    )
    rows = fam.rows()
    assert {"n_experts", "termination", "purity_early", "G_T", "wall_s"} <= set(rows[0])
    # the per-run purity equals the purity of the routing matrix of the same window,
    # recomputed by hand
    res = run_family(
        base, [{"termination": "never"}], window=20, keep_results=True, progress=False
    ).runs[0]
    r = res.result
    rm = np.zeros((3, 4, 3), dtype=int)
    for run in range(3):
        for t in range(60 - 20, 60):
            rm[run, r.experts[run, t], r.tasks[run, t]] += 1
    np.testing.assert_allclose(res.spec.purity_late, routing_purity(rm))
    assert specialisation(r, window=20).G_T == pytest.approx(r.G[:, -1])


def test_single_expert_ignores_router_knobs_and_family_reuses_it():
    base = ExperimentConfig(n_tasks=3, n_experts=1, d=8, s=3, T=30, n_runs=2, seed=4)
    a = (
        run_family(base, [{"eta": 0.1, "lam": 0.0}], keep_results=True, progress=False)
        .runs[0]
        .result
    )
    b = (
        run_family(
            base,
            [{"eta": 3.0, "lam": 2.0, "alpha": 4.0, "aux_grad": "no_decay"}],
            keep_results=True,
            progress=False,
        )
        .runs[0]
        .result
    )
    np.testing.assert_array_equal(a.G, b.G)
    fam = run_family(
        base, [{"eta": 0.1}, {"eta": 3.0, "termination": "gap"}], progress=False
    )
    assert fam.runs[1].wall_time == 0.0  # re-used, not simulated again
    np.testing.assert_array_equal(fam.runs[0].G_mean, fam.runs[1].G_mean)


def test_run_family_cache_shared_between_calls():
    base = ExperimentConfig(n_tasks=3, n_experts=3, d=8, s=3, T=20, n_runs=2, seed=1)
    cache: dict = {}
    first = run_family(base, [{"eta": 1.0}], progress=False, cache=cache)
    second = run_family(base, [{"eta": 1.0}, {"eta": 2.0}], progress=False, cache=cache)
    assert second.runs[0].wall_time == 0.0 and second.runs[1].wall_time > 0.0
    np.testing.assert_array_equal(first.runs[0].G_mean, second.runs[0].G_mean)
    assert len(cache) == 2


def test_expert_task_distance_hand_values():
    from moecl_lib.analysis.routing import expert_task_distance

    W = np.array([[[0.0, 0.0], [2.0, 0.0]]])  # two tasks
    w = np.array(
        [[[0.5, 0.0], [2.0, 1.0], [9.0, 9.0]]]
    )  # expert 0 near task 0, expert 1 near task 1, 2 idle
    own, other = expert_task_distance(w, W, np.array([[0, 1, -1]]))
    assert own[0] == pytest.approx((0.25 + 1.0) / 2)  # ||(0.5,0)||^2, ||(0,1)||^2
    assert other[0] == pytest.approx((2.25 + 5.0) / 2)  # ||(0.5-2,0)||^2, ||(2,1)||^2
    own2, _ = expert_task_distance(w, W, np.array([[-1, -1, -1]]))
    assert np.isnan(own2[0])


def test_primary_task_changes_hand_values():
    from moecl_lib.analysis.routing import primary_task_changes

    # M = 2, N = 2, windows of 2 rounds:
    #   window 1: e0<-t0, e1<-t1
    #   window 2: e0<-t1, e1<-t1
    #   window 3: e0<-t1 twice (e1 idle)
    experts = np.array([[0, 1, 0, 1, 0, 0]])
    tasks = np.array([[0, 1, 1, 1, 1, 1]])
    ch, ends = primary_task_changes(experts, tasks, 2, 2, window=2)
    np.testing.assert_array_equal(ends, [4, 6])
    # w1->w2: e0 changed 0->1, e1 stayed 1 -> 1/2 ; w2->w3: only e0 active in both,
    # stayed 1 -> 0
    np.testing.assert_allclose(ch[0], [0.5, 0.0])
