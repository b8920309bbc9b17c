"""Validation of ExperimentConfig: one clear ConfigError naming the parameter."""

import math

import pytest

from moecl_lib.config import ConfigError, ExperimentConfig


@pytest.mark.parametrize(
    ("changes", "name"),
    [
        ({"s": 10, "d": 10}, "s=10"),
        ({"s": 12, "d": 10}, "s=12"),
        ({"n_experts": 0}, "n_experts"),
        ({"n_tasks": -1}, "n_tasks"),
        ({"sigma0": float("nan")}, "sigma0"),
        ({"eta": math.inf}, "eta"),
        ({"lam": -0.1}, "lam"),
        ({"sigma_t": 0.0}, "sigma_t"),
        ({"termination": "sometimes"}, "termination"),
        ({"aux_grad": "fast"}, "aux_grad"),
        ({"signal": "bogus"}, "signal"),
        ({"n_clusters": 7, "n_tasks": 6}, "n_clusters"),
        ({"T": 2.5}, "T"),
        ({"n_runs": True}, "n_runs"),
        ({"signal": "orthonormal", "d": 4, "s": 2, "n_tasks": 6}, "orthonormal"),
    ],
)
def test_invalid_values_raise_one_line_error_naming_parameter(changes, name):
    with pytest.raises(ConfigError) as exc:
        ExperimentConfig(**changes)
    msg = str(exc.value)
    assert name in msg
    assert "\n" not in msg


def test_replace_rejects_unknown_names_and_revalidates():
    cfg = ExperimentConfig()
    with pytest.raises(ConfigError, match="unknown parameter"):
        cfg.replace(n_expert=3)
    with pytest.raises(ConfigError, match="s=10"):
        cfg.replace(s=10)
    assert cfg.replace(n_experts=3).n_experts == 3


def test_derived_constants_follow_spec_a15():
    cfg = ExperimentConfig(n_experts=10, eta=0.5, sigma0=0.4, d=20, s=6)
    assert cfg.r == pytest.approx(0.7)
    assert cfg.gamma_value == pytest.approx(0.4**1.25)
    assert cfg.T1_value == math.ceil(10 / (0.5 * 0.4**0.25))  # = 26
    assert cfg.T1_value == 26
    assert cfg.cluster_spread_value == pytest.approx(0.4**1.5)
    assert cfg.replace(T1=7, gamma=0.1).T1_value == 7
    assert cfg.K == cfg.n_tasks


def test_integral_floats_are_accepted_as_ints():
    cfg = ExperimentConfig(T=100.0, n_runs=3.0)
    assert cfg.T == 100 and isinstance(cfg.T, int)


# ------------------------------------------------- one validation rule for every config
def test_every_config_class_follows_one_integer_rule() -> None:
    """Integral floats are accepted and stored as int; bools and fractions are
    refused."""
    from moecl_lib.deep.moe import DeepMoEConfig
    from moecl_lib.expert_gate.gate import ExpertGateConfig

    cases = [
        (ExperimentConfig, "T"),
        (DeepMoEConfig, "epochs"),
        (ExpertGateConfig, "ae_epochs"),
    ]
    for cls, name in cases:
        cfg = cls(**{name: 100.0})
        assert getattr(cfg, name) == 100 and type(getattr(cfg, name)) is int
        for bad in (2.5, True, "3"):
            with pytest.raises(ConfigError, match=name):
                cls(**{name: bad})
