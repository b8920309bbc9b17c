"""Deep MoE learner: autograd router gradient vs SPEC §4.5, termination rules,
determinism, stream runner."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from moecl_lib.config import ConfigError
from moecl_lib.deep.datasets import (
    class_split_tasks,
    load_sklearn_digits,
    one_vs_rest_tasks,
    standardise,
)
from moecl_lib.deep.learners import RoundLearner, run_stream, sample_stream
from moecl_lib.deep.moe import (
    CNNExpert,
    DeepMoE,
    DeepMoEConfig,
    set_determinism,
    single_network,
)
from moecl_lib.linear.routing import gap_test, router_coefficients

set_determinism()

TINY = dict(in_shape=(1, 8, 8), channels=(2, 3), hidden=(8, 4), epochs=1, minibatch=0)


@pytest.fixture(scope="module")
def digit_tasks():
    ds = standardise(load_sklearn_digits())
    return one_vs_rest_tasks(
        ds, (1, 4, 7), np.random.default_rng(0), max_train=120, max_test=60
    )


@pytest.mark.parametrize("aux_grad", ["decay", "no_decay"])
@pytest.mark.parametrize("task_loss", [False, True])
def test_router_gradient_matches_spec(aux_grad: str, task_loss: bool) -> None:
    """autograd on router_loss == c^(k) xbar with c from the explicit SPEC §4.5 formula
    (engine helper)."""
    M, t, alpha = 4, 7, 0.6
    moe = DeepMoE(
        DeepMoEConfig(
            n_experts=M, alpha=alpha, aux_grad=aux_grad, task_loss=task_loss, **TINY
        )
    )
    g = torch.Generator().manual_seed(1)
    theta = torch.randn(M, 64, generator=g, dtype=torch.float64) * 0.1
    xbar = torch.randn(64, generator=g, dtype=torch.float64)
    moe.t = t
    moe.counts = np.array([2, 1, 3, 1])
    moe.pi_sum = np.array([1.5, 1.2, 2.1, 1.2])
    m, delta, tl = 2, 0.83, 0.37
    th = theta.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(moe.router_loss(th, xbar, m, delta, tl), th)
    pi = torch.softmax(theta @ xbar, 0).numpy()[None]
    # the task-loss term pi_m * L^tsk has the same gradient shape as the locality term
    # (scalar L^tsk)
    eff = delta + (tl if task_loss else 0.0)
    c = router_coefficients(
        np.array([eff]), pi, np.array([m]), moe.counts[None] / t, t, alpha, aux_grad
    )[0]
    expected = c[:, None] * xbar.numpy()[None]
    np.testing.assert_allclose(grad.numpy(), expected, rtol=1e-10, atol=1e-12)
    assert abs(grad.sum(0)).max() < 1e-12  # zero-sum router update (SPEC §4.5 (i))


def test_expert_shapes_and_sigmoid_output() -> None:
    for shape in [(1, 8, 8), (1, 28, 28), (3, 32, 32)]:
        net = CNNExpert(shape, 2)
        x = torch.randn(5, *shape)
        z = net(x)
        assert z.shape == (5, 1)
        logits = net.logits(x)
        assert torch.equal(logits.argmax(1), (torch.sigmoid(z[:, 0]) > 0.5).long())
        assert len(list(net.children())) == 2
    net = CNNExpert((1, 8, 8), 3, downsample="maxpool")
    x, y = torch.randn(4, 1, 8, 8), torch.tensor([0, 2, 1, 2])
    z = net(x)
    assert z.shape == (4, 3)
    manual = torch.nn.functional.binary_cross_entropy(torch.sigmoid(z), torch.eye(3)[y])
    assert net.loss(x, y).item() == pytest.approx(manual.item(), rel=1e-5)
    n_layers = sum(
        isinstance(mod, (torch.nn.Conv2d, torch.nn.Linear)) for mod in net.modules()
    )
    assert n_layers == 5  # two conv + three fully connected


def test_config_errors() -> None:
    with pytest.raises(ConfigError, match="n_experts"):
        DeepMoEConfig(n_experts=0)
    with pytest.raises(ConfigError, match="termination"):
        DeepMoEConfig(termination="sometimes")
    with pytest.raises(ConfigError, match="aux_grad"):
        DeepMoEConfig(aux_grad="linear")
    with pytest.raises(ConfigError, match="eta"):
        DeepMoEConfig(eta=float("nan"))
    with pytest.raises(ConfigError, match="unknown parameter"):
        DeepMoEConfig().replace(etaa=1.0)
    assert DeepMoEConfig(n_experts=3, t1_per_expert=4).T1_value == 12
    assert DeepMoEConfig(lam=0.2).gamma_value == 0.2


def run(tasks, cfg: DeepMoEConfig, T: int = 12, seed: int = 0, single: bool = False):
    stream = sample_stream(tasks, T, 40, np.random.default_rng(seed))
    learner = single_network(cfg) if single else DeepMoE(cfg)
    return learner, run_stream(learner, tasks, stream)


@pytest.mark.parametrize("rule", ["freeze_at_T1", "gap", "never"])
def test_termination_rules(digit_tasks, rule: str) -> None:
    cfg = DeepMoEConfig(n_experts=3, termination=rule, T1=4, eta=0.5, lam=0.05, **TINY)
    moe, res = run(digit_tasks, cfg)
    T2 = res.info["T2"]
    if rule == "freeze_at_T1":
        assert T2 == 5
    elif rule == "never":
        assert T2 == -1
    gates = res.info[
        "gates"
    ]  # gate outputs h_t (theta_t before round t's step) on each round's input
    if rule == "gap":
        # T2 is the first round t > T1 whose gates pass the gap test (-1 if none)
        assert T2 == first_gap_round(gates, res.experts, cfg)
    if T2 > 0:
        # after the freeze the router no longer moves: recompute the gates with the
        # final theta
        assert moe.active is False
        theta_final = moe.theta.clone()
        moe2, _ = run(digit_tasks, cfg)
        assert torch.equal(theta_final, moe2.theta)
    assert gates.shape == (12, 3)
    assert isinstance(moe, RoundLearner)


def first_gap_round(gates: np.ndarray, experts: np.ndarray, cfg: DeepMoEConfig) -> int:
    """First round ``t > T1`` whose recorded gates pass :func:`gap_test` (-1: none)."""
    for t in range(cfg.T1_value + 1, len(gates) + 1):
        h, m = gates[t - 1][None], np.array([experts[t - 1]])
        if gap_test(h, m, cfg.lam, cfg.gamma_value)[0]:
            return t
    return -1


def test_gap_rule_fires_in_the_deep_learner(digit_tasks) -> None:
    """With Gamma = 0 a clear winner passes the test soon after T1: the router
    freezes."""
    cfg = DeepMoEConfig(
        n_experts=3, termination="gap", T1=4, eta=0.5, lam=0.05, gamma=0.0, **TINY
    )
    moe, res = run(digit_tasks, cfg)
    T2 = res.info["T2"]
    assert T2 > 4, "the gap rule never fired"
    assert T2 == first_gap_round(res.info["gates"], res.experts, cfg)
    assert moe.active is False


def test_frozen_router_does_not_move(digit_tasks) -> None:
    cfg = DeepMoEConfig(n_experts=3, termination="freeze_at_T1", T1=2, eta=0.5, **TINY)
    moe = DeepMoE(cfg)
    stream = sample_stream(digit_tasks, 6, 40, np.random.default_rng(0))
    thetas = []
    for t in range(6):
        n = stream.task_ids[t]
        idx = torch.from_numpy(stream.batch_idx[t])
        moe.observe(digit_tasks[n].x_train[idx], digit_tasks[n].y_train[idx])
        thetas.append(moe.theta.clone())
    assert not torch.equal(thetas[0], thetas[1])  # router trained during rounds 1..T1
    assert all(
        torch.equal(thetas[1], th) for th in thetas[2:]
    )  # frozen from round T1 + 1 = 3 on
    assert moe.T2 == 3


def test_determinism_and_seed_dependence(digit_tasks) -> None:
    cfg = DeepMoEConfig(n_experts=2, **TINY)
    _, a = run(digit_tasks, cfg)
    _, b = run(digit_tasks, cfg)
    np.testing.assert_array_equal(a.acc_expert, b.acc_expert)
    np.testing.assert_array_equal(a.experts, b.experts)
    _, c = run(digit_tasks, cfg.replace(seed=1))
    assert not np.array_equal(a.acc_expert, c.acc_expert)


def test_single_network(digit_tasks) -> None:
    cfg = DeepMoEConfig(n_experts=5, **TINY)
    net, res = run(digit_tasks, cfg, single=True)
    assert net.n_experts == 1 and net.name == "single network"
    assert (res.experts == 0).all() and res.info["T2"] == -1
    np.testing.assert_allclose(
        res.accuracy_matrix("learner"), res.accuracy_matrix("router"), equal_nan=True
    )


def test_stream_result_metrics(digit_tasks) -> None:
    cfg = DeepMoEConfig(n_experts=3, **TINY)
    _, res = run(digit_tasks, cfg, T=10)
    A = res.accuracy_matrix()
    assert A.shape == (10, 10)
    assert (
        np.isnan(A[np.triu_indices(10, 1)]).all()
        and not np.isnan(A[np.tril_indices(10)]).any()
    )
    # column tau of A is the accuracy of the expert that learned arrival tau on its task
    t, tau = 7, 3
    assert A[t, tau] == res.acc_expert[t, res.experts[tau], res.task_ids[tau]]
    F, G = res.curves()
    assert np.isnan(F[0])
    E = 100 - A
    assert G[t] == pytest.approx(np.mean(E[t, : t + 1]))
    assert F[t] == pytest.approx(np.mean(E[t, :t] - np.diag(E)[:t]))
    m = res.metrics()
    assert m["ACC"] == pytest.approx(100 - G[-1]) and m["F_T"] == pytest.approx(F[-1])
    assert m["forgetting"] >= 0
    assert res.loads().sum() == pytest.approx(1.0)
    assert res.routing_matrix().sum() == 10
    # router view evaluates the routed expert of each test chunk
    assert res.acc_routed.shape == (10, 3) and res.routed_expert.shape == (10, 3)


def test_incremental_eval_equals_full_eval(digit_tasks) -> None:
    """run_stream only re-evaluates the expert trained in a round; a full re-evaluation
    gives the same."""
    cfg = DeepMoEConfig(n_experts=3, **TINY)
    stream = sample_stream(digit_tasks, 8, 40, np.random.default_rng(2))
    fast = run_stream(DeepMoE(cfg), digit_tasks, stream)
    full_learner = DeepMoE(cfg)
    full_learner.changes_all_experts = True
    full = run_stream(full_learner, digit_tasks, stream)
    np.testing.assert_array_equal(fast.acc_expert, full.acc_expert)
    np.testing.assert_array_equal(fast.acc_routed, full.acc_routed)


def test_single_network_learns_a_task(digit_tasks) -> None:
    """A CNN expert trained on one digit task for a few rounds beats chance clearly (the
    learner works)."""
    cfg = DeepMoEConfig(in_shape=(1, 8, 8), lr=0.1, epochs=3, seed=0)
    stream = sample_stream(
        digit_tasks, 8, 60, np.random.default_rng(0), task_ids=[0] * 8
    )
    res = run_stream(single_network(cfg), digit_tasks, stream)
    assert res.acc_routed[-1, 0] > 85.0


def test_route_and_class_split_tasks() -> None:
    ds = standardise(load_sklearn_digits())
    tasks = class_split_tasks(
        ds, [(0, 1, 2), (3, 4, 5)], np.random.default_rng(0), max_test=30
    )
    moe = DeepMoE(DeepMoEConfig(n_experts=2, n_classes=3, **TINY))
    assert (
        moe.route(tasks[0].x_test) == 0
    )  # theta = 0: ties broken towards expert 0 (noise-free argmax)
    res = run_stream(moe, tasks, sample_stream(tasks, 4, 30, np.random.default_rng(0)))
    assert res.acc_expert.shape == (4, 2, 2)
    assert moe.predict(tasks[1].x_test).shape == (30, 3)
