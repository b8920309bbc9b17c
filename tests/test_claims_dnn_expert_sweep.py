"""dnn_expert_sweep chapter: convergence round, trend reading, claim logic, small run,
stored record."""

from __future__ import annotations

import numpy as np
import pytest

from moecl_lib.claims import dnn_expert_sweep as chapter
from moecl_lib.claims.record import Record


def test_convergence_round_and_censoring() -> None:
    assert chapter.convergence_round(np.array([50, 90, 80, 86, 90]), 85) == 4.0
    assert chapter.convergence_round(np.array([90, 90, 90]), 85) == 1.0
    assert (
        chapter.convergence_round(np.array([90, 90, 80]), 85) == 4.0
    )  # below at T: censored at T + 1
    assert chapter.convergence_round(np.array([85.0]), 85) == 1.0


def test_spearman_with_ties_and_constants() -> None:
    assert chapter.spearman([3, 4, 6, 8], [10, 20, 30, 41]) == pytest.approx(1.0)
    assert chapter.spearman([3, 4, 6, 8], [41, 30, 20, 10]) == pytest.approx(-1.0)
    assert chapter.spearman([3, 4, 6, 8], [41, 41, 41, 41]) == 0.0
    assert 0 < chapter.spearman([3, 4, 6, 8], [20, 41, 41, 41]) < 1


def _stats(
    experts: tuple[int, ...],
    seeds: int,
    t_conv: dict[int, float],
    G_T: dict[int, float],
) -> dict[int, dict[str, np.ndarray]]:
    rng = np.random.default_rng(1)
    out = {}
    for M in experts:
        st = {
            k: 10.0 + rng.normal(0, 0.5, seeds) for k in chapter.STATS + ("G_T_router",)
        }
        st["G_T"] = G_T[M] + rng.normal(0, 0.5, seeds)
        st["t_conv"] = t_conv[M] + rng.integers(-1, 2, seeds).astype(float)
        out[M] = st
    return out


def test_claim_logic_on_hand_built_seeds() -> None:
    experts = (1, 2, 3, 4, 8)
    p = chapter.Params(experts=experts, seeds=tuple(range(6)), n_rounds=60)
    grows = _stats(
        experts,
        6,
        {1: 61, 2: 61, 3: 20, 4: 30, 8: 50},
        {1: 30, 2: 20, 3: 15, 4: 12, 8: 20},
    )
    qs, checks = chapter.derive(p, grows, 3)
    (check,) = checks
    assert [r.name for r in check.readings] == ["trend", "no_gain"]
    assert [r.outcome for r in check.readings] == ["holds", "holds"]
    assert check.verdict == "reproduced"
    names = [q.name for q in qs]
    assert {
        "dF_T_M1_M2",
        "t_conv_slope",
        "t_conv_rank_corr",
        "dt_conv_M4_M3",
        "dt_conv_M8_M4",
    } <= set(names)
    # the slope is the least-squares slope over M >= N = 3, per seed, averaged: about
    # that of (20, 30, 50)
    slope = next(q for q in qs if q.name == "t_conv_slope").value
    assert slope == pytest.approx(np.polyfit([3, 4, 8], [20, 30, 50], 1)[0], abs=0.6)
    # convergence is faster with more experts and the largest M is the best: every
    # reading fails
    shrinks = _stats(
        experts,
        6,
        {1: 61, 2: 61, 3: 50, 4: 30, 8: 20},
        {1: 30, 2: 20, 3: 15, 4: 14, 8: 10},
    )
    (check,) = chapter.derive(p, shrinks, 3)[1]
    assert [r.outcome for r in check.readings] == ["fails", "fails"]
    assert check.verdict == "not reproduced"
    # slower with more experts but the largest M is the best: partly
    mixed = _stats(
        experts,
        6,
        {1: 61, 2: 61, 3: 20, 4: 30, 8: 50},
        {1: 30, 2: 20, 3: 15, 4: 14, 8: 10},
    )
    (check,) = chapter.derive(p, mixed, 3)[1]
    assert [r.outcome for r in check.readings] == [
        "holds",
        "fails",
    ] and check.verdict == "partly"


def test_small_run() -> None:
    p = chapter.Params(
        experts=(1, 3, 4),
        n_rounds=8,
        batch_size=20,
        max_test=30,
        seeds=(0, 1),
        t1_per_expert=1,
    )
    res = chapter.run(p, progress=False)
    names = [q.name for q in res.quantities]
    assert len(names) == len(set(names))
    assert {
        "G_T_M1",
        "t_conv_M3",
        "t_conv_slope",
        "dt_conv_M4_M3",
        "dG_T_max_best",
    } <= set(names)
    assert "F_T_router_M1" not in names  # one view for the single network
    assert all(1 <= v <= 9 for M in p.experts for v in res.stats[M]["t_conv"])
    assert [c.claim for c in res.checks] == ["dnn_more_experts"] and len(
        res.checks[0].readings
    ) == 2
    assert (
        res.configs["M=3"]["termination"] == "gap"
        and res.configs["M=1"]["n_experts"] == 1
    )
    assert "—" in res.table()
    assert Record.from_json(res.record.to_json()).verdicts() == res.record.verdicts()


def test_needs_two_expert_counts_at_least_n() -> None:
    with pytest.raises(ValueError, match="at least two M >= N"):
        chapter.run(chapter.Params(experts=(1, 2, 4)), progress=False)
