"""Chapter module dnn_moe_vs_single: a small run, the claim logic on hand-built seeds,
stored expectation."""

from __future__ import annotations

import numpy as np
import pytest

from moecl_lib.claims import dnn_moe_vs_single as chapter
from moecl_lib.claims.record import Record

SMALL = chapter.Params(
    n_rounds=8, batch_size=20, max_test=30, seeds=(0, 1), t1_per_expert=1
)


@pytest.fixture(scope="module")
def small() -> chapter.Result:
    return chapter.run(SMALL, progress=False)


def test_run_records_quantities_checks_and_configs(small: chapter.Result) -> None:
    names = [q.name for q in small.quantities]
    assert len(names) == len(set(names))
    for name in (
        "F_T_single",
        "F_T_moe",
        "F_T_router_moe",
        "F_T_few",
        "switches_moe",
        "T2_moe",
        "dF_T_single_moe",
        "dF_T_router_single_few",
        "dfinal_acc_router_moe_never",
    ):
        assert name in names, name
    # the single network has no router: no router-view duplicate, no switches, purity or
    # T2
    undefined = ("switches", "purity", "T2", "F_T_router")
    assert not any(
        n.endswith("_single") and n.split("_single")[0] in undefined for n in names
    )
    assert all(q.n == 2 and q.floor > 0 for q in small.quantities)
    checks = {(c.claim, c.setting): c for c in small.checks}
    assert set(checks) == {("dnn_forgetting", "-"), ("dnn_termination", "-")}
    assert len(checks["dnn_forgetting", "-"].readings) == 5
    assert len(checks["dnn_termination", "-"].readings) == 3  # no eta sweep
    assert small.configs["MoE M=4, termination"]["termination"] == "gap"
    assert small.configs["single network"]["n_experts"] == 1
    assert small.configs["MoE M=2, termination"]["n_experts"] == 2
    rec = small.record
    back = Record.from_json(rec.to_json())
    assert back.verdicts() == rec.verdicts() and back.params["seeds"] == [0, 1]
    # the terminated MoE froze after T1 = 4 in both seeds, so its routing did not change
    # afterwards
    assert (
        small.quantity("T2_moe").value >= 5.0
        and small.quantity("switches_moe").value == 0.0
    )
    assert "—" in small.summary_table()


def _stats(seeds: int, **shift: float) -> dict[str, dict[str, np.ndarray]]:
    """Hand-built per-seed statistics: every learner equal, then ``shift[learner_stat]``
    added."""
    rng = np.random.default_rng(0)
    keys = (
        "ACC",
        "BWT",
        "forgetting",
        "F_T",
        "G_T",
        "ACC_router",
        "F_T_router",
        "G_T_router",
        "final_acc_router",
        "purity",
        "switches",
        "load_entropy",
        "T2",
        "wall_time",
    )
    out = {}
    for learner in ("single", "moe", "never", "few"):
        st = {k: 10.0 + rng.normal(0, 1.0, seeds) for k in keys}
        st["switches"] = np.zeros(seeds)
        for k, v in shift.items():
            who, stat = k.split("__")
            if who == learner:
                st[stat] = st[stat] + v
        out[learner] = st
    return out


def test_claim_logic_on_hand_built_seeds() -> None:
    p = chapter.Params(seeds=tuple(range(8)))
    good = _stats(
        8,
        single__F_T=20.0,
        single__forgetting=20.0,
        never__switches=10.0,
        never__final_acc_router=-20.0,
    )
    good["single"]["F_T_router"] = good["single"]["F_T"]
    _, checks = chapter.derive(p, good, {})
    assert [c.verdict for c in checks] == ["reproduced", "reproduced"]
    # the single network forgets LESS (every F_T reading fails); termination does not
    # help
    bad = _stats(
        8,
        moe__F_T=20.0,
        moe__F_T_router=20.0,
        moe__forgetting=20.0,
        few__F_T=20.0,
        few__F_T_router=20.0,
        never__switches=10.0,
        never__final_acc_router=20.0,
    )
    _, checks = chapter.derive(p, bad, {})
    assert checks[0].verdict == "not reproduced"
    assert (
        checks[1].verdict == "partly"
    )  # stable and changing without termination hold, helps fails
    # a terminated router that keeps switching (not frozen) is not stable
    unstable = _stats(
        8, moe__switches=5.0, never__switches=10.0, never__final_acc_router=-20.0
    )
    _, checks = chapter.derive(p, unstable, {})
    first = checks[1].readings[0]
    assert first.outcome == "fails" and checks[1].verdict == "partly"


def test_eta_sweep_adds_one_reading_per_rate() -> None:
    p = chapter.Params(seeds=tuple(range(6)), eta_sweep=(0.03, 0.3))
    st = _stats(6, never__switches=10.0, never__final_acc_router=-20.0)
    sweep = {
        0.03: {"moe": st["moe"], "never": st["never"]},
        0.3: {"moe": st["never"], "never": st["moe"]},
    }
    qs, checks = chapter.derive(p, st, sweep)
    term = checks[1]
    assert len(term.readings) == 5
    assert term.readings[3].name == "dfinal_acc_router_moe_never_eta0p03"
    assert term.readings[3].outcome == "holds"
    assert term.readings[4].outcome == "fails" and term.verdict == "partly"
    assert "switches_never_eta0p3" in [q.name for q in qs]
    assert chapter.eta_key(0.03) == "eta0p03"


def test_params_accept_lists_and_reject_bad_expert_counts() -> None:
    p = chapter.Params(seeds=[0, 1], positives=[1, 4, 7], eta_sweep=[0.1])
    assert p.seeds == (0, 1) and p.eta_sweep == (0.1,)
    with pytest.raises(ValueError, match="n_experts_few"):
        chapter.run(chapter.Params(n_experts_few=3), progress=False)
