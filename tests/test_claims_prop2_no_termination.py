"""Chapter prop2_no_termination as data: quantities, the eight readings of claim prop2,
the comparison."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import numpy as np
import pytest

from moecl_lib.analysis.calibration import ClaimThresholds, setting_config
from moecl_lib.claims import Quantity
from moecl_lib.claims import prop2_no_termination as chapter
from moecl_lib.claims.rule import verdict_of
from moecl_lib.linear.engine import simulate

SMALL = chapter.Params(n_experts=4, T=400, n_runs=8, seed=3, window=50)
READINGS = [
    "ratio",
    "difference",
    "load_balancing",
    "separated_at_T1",
    "margin_erased",
    "churn",
    "gates_equal",
    "routing_random",
]


@pytest.fixture(scope="module")
def small() -> chapter.Result:
    return chapter.run(SMALL)


def test_run_records_quantities_checks_and_configs(small: chapter.Result) -> None:
    rec = small.record
    assert rec.chapter == "prop2_no_termination"
    assert rec.params == {
        "n_experts": 4,
        "T": 400,
        "n_runs": 8,
        "seed": 3,
        "window": 50,
    }
    names = [q.name for q in rec.quantities]
    assert len(names) == len(set(names))
    for s in ("calibrated", "recalled"):
        for key in (
            "G_T_gap",
            "G_T_never",
            "ratio_never_gap",
            "ratio_never_gap_alpha0",
            "excess_load_balancing",
            "churn_excess",
            "margin_T1",
            "margin_drop_never",
            "spread_T_never",
            "purity_normalised_never",
        ):
            assert f"{key}_{s}" in names
    assert (
        "ratio_never_gap_decay_calibrated" in names
        and "ratio_never_gap_decay_recalled" not in names
    )
    assert [(c.claim, c.setting) for c in rec.checks] == [
        ("prop2", "calibrated"),
        ("prop2", "recalled"),
    ]
    for c in rec.checks:
        assert [r.name for r in c.readings] == READINGS
        assert c.verdict == verdict_of(r.outcome for r in c.readings)
    # n_runs, seed and T go straight into the configuration
    cfg = rec.configs["calibrated|base|gap"]
    assert (cfg["n_runs"], cfg["seed"], cfg["T"], cfg["n_experts"]) == (8, 3, 400, 4)
    assert rec.configs["calibrated|alpha0|never"]["alpha"] == 0.0
    assert rec.configs["calibrated|decay|gap"]["aux_grad"] == "decay"
    assert json.loads(rec.to_json())["chapter"] == "prop2_no_termination"


def test_same_config_and_seed_give_the_same_numbers(small: chapter.Result) -> None:
    cfg = setting_config(
        "calibrated", 4, T=400, n_runs=8, seed=3, snapshot_every=50, termination="gap"
    )
    res = simulate(cfg)
    assert small.quantity("G_T_gap_calibrated").value == pytest.approx(
        float(res.G[:, -1].mean()), rel=1e-12
    )
    ratio = small.quantity("ratio_never_gap_calibrated")
    assert ratio.value == pytest.approx(
        small.quantity("G_T_never_calibrated").value
        / small.quantity("G_T_gap_calibrated").value
    )


def test_paired_ratio_delta_method() -> None:
    q = chapter.paired_ratio("r", [2.0, 4.0, 6.0], [1.0, 2.0, 3.0])
    assert (q.value, q.se, q.n) == (2.0, 0.0, 3)  # exactly proportional: no spread
    num, den = np.array([1.0, 3.0, 2.0, 5.0]), np.array([1.0, 1.0, 2.0, 2.0])
    q = chapter.paired_ratio("r", num, den)
    r = num.mean() / den.mean()
    z = (num - r * den) / den.mean()
    assert q.value == pytest.approx(r)
    assert q.se == pytest.approx(z.std(ddof=1) / 2.0)
    qi = chapter.independent_ratio("r", [2.0, 4.0], [1.0, 1.0])
    assert qi.value == pytest.approx(3.0) and qi.se == pytest.approx(3.0 * (1.0 / 3.0))


def test_shuffled_purity_is_below_a_perfect_routing() -> None:
    rng = np.random.default_rng(0)
    tasks = rng.integers(0, 4, size=(3, 300))
    res = SimpleNamespace(
        config=SimpleNamespace(T=300, n_runs=3, n_experts=4, n_tasks=4),
        experts=tasks,
        tasks=tasks,
    )
    p0 = chapter.shuffled_purity(res, window=100, n_last=3, seed=1)  # type: ignore[arg-type]
    assert p0.shape == (3,)
    assert np.all(p0 < 0.5) and np.all(
        p0 > 0.25
    )  # 4 tasks: random routing ~ 1/4 + bias
    assert np.array_equal(
        p0, chapter.shuffled_purity(res, window=100, n_last=3, seed=1)
    )  # type: ignore[arg-type]


def _quantities(**values: tuple[float, float]) -> dict[str, Quantity]:
    return {k: Quantity(k, v, se, 48) for k, (v, se) in values.items()}


def test_claim_logic_on_hand_built_quantities() -> None:
    sd = SimpleNamespace(setting="calibrated", lam=0.3)
    # as observed: errors stop converging, sets erased, but no collapse -> partly
    q = _quantities(
        ratio=(2.0, 0.1),
        excess=(0.4, 0.05),
        excess_lb=(0.2, 0.05),
        margin_T1=(2.9, 0.2),
        margin_drop=(5.5, 0.3),
        churn_excess=(0.15, 0.02),
        spread_T_never=(12.0, 0.5),
        purity_norm=(0.86, 0.03),
    )
    check = chapter.setting_check(sd, q, ClaimThresholds())  # type: ignore[arg-type]
    out = {r.name: r.outcome for r in check.readings}
    assert (
        out["ratio"] == "holds"
        and out["gates_equal"] == "fails"
        and out["routing_random"] == "fails"
    )
    assert check.verdict == "partly"
    # the full collapse of the statement -> reproduced
    q.update(_quantities(spread_T_never=(0.1, 0.01), purity_norm=(0.05, 0.02)))
    assert chapter.setting_check(sd, q, ClaimThresholds()).verdict == ("reproduced")  # type: ignore[arg-type]
    # a ratio within 2 s.e. of 1.25 cannot decide
    q.update(_quantities(ratio=(1.3, 0.1)))
    check = chapter.setting_check(sd, q, ClaimThresholds())  # type: ignore[arg-type]
    assert (
        check.readings[0].outcome == "inconclusive" and check.verdict == "inconclusive"
    )
    # nothing to erase and no excess -> not reproduced
    q = _quantities(
        ratio=(1.0, 0.02),
        excess=(-0.2, 0.05),
        excess_lb=(-0.3, 0.05),
        margin_T1=(0.0, 0.01),
        margin_drop=(0.0, 0.01),
        churn_excess=(-0.1, 0.02),
        spread_T_never=(5.0, 0.1),
        purity_norm=(0.9, 0.01),
    )
    assert chapter.setting_check(sd, q, ClaimThresholds()).verdict == ("not reproduced")  # type: ignore[arg-type]


def test_missing_data_gives_an_inconclusive_reading() -> None:
    q = chapter.estimate_or_nan("x", [math.nan, math.nan])
    assert math.isnan(q.value) and q.n == 0
    r = chapter.reading_of("x", "statement", q, 0.3)
    assert r.outcome == "inconclusive" and r.statement.endswith("[no data]")


def test_regime_texts_follow_t2_and_T1(small: chapter.Result) -> None:
    """t2 = ceil(M / (eta sigma0^0.75)) against the simulated T1, per setting."""
    import math

    texts = chapter.regime_texts(small)
    for setting, sd in small.data.items():
        cfg = sd.runs["base"]["gap"].config
        t2 = math.ceil(cfg.n_experts / (cfg.eta * cfg.sigma0**0.75))
        assert texts[f"t2_{setting}"] == str(t2)
        assert texts[f"T1_{setting}"] == str(sd.T1)
        assumed = texts[f"regime_{setting}"].startswith("as the proposition assumes")
        assert assumed == (sd.T1 < t2)
