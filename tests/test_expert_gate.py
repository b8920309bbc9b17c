"""Expert Gate: hand-computed gate/relatedness/LwF values, autoencoder behaviour,
learner protocol."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from moecl_lib.config import ConfigError
from moecl_lib.deep.learners import RoundLearner, TaskData, run_stream, sample_stream
from moecl_lib.expert_gate.autoencoders import (
    GateAutoencoder,
    InputNormaliser,
    gate_probabilities,
    reconstruction_errors,
    relatedness,
)
from moecl_lib.expert_gate.experts import (
    as_class_logits,
    distillation_loss,
    head_outputs,
    lwf_loss,
    task_head,
)
from moecl_lib.expert_gate.gate import ExpertGate, ExpertGateConfig


# -------------------------------------------------------------------------- relatedness
def test_relatedness_hand_values() -> None:
    # Err_k (new AE) = 0.1, Err_a (old AE) = 0.12: 1 - 0.02/0.1 = 0.8
    assert relatedness(0.1, 0.12) == pytest.approx(0.8)
    # equal errors -> 1; old AE better than the new one -> above 1; Err_a = 3 Err_k ->
    # -1
    assert relatedness(0.2, 0.2) == pytest.approx(1.0)
    assert relatedness(0.2, 0.1) == pytest.approx(1.5)
    assert relatedness(0.1, 0.3) == pytest.approx(-1.0)
    np.testing.assert_allclose(relatedness(0.1, [0.12, 0.15, 0.1]), [0.8, 0.5, 1.0])


def test_relatedness_denominator_is_the_new_autoencoder() -> None:
    # swapping the arguments changes the value: (0.12, 0.1) -> 1 - (0.1 - 0.12)/0.12 =
    # 7/6
    assert relatedness(0.12, 0.1) == pytest.approx(7.0 / 6.0)
    assert relatedness(0.12, 0.1) != pytest.approx(relatedness(0.1, 0.12))


@pytest.mark.parametrize(
    "new,old",
    [(0.0, 0.1), (-0.1, 0.1), (float("nan"), 0.1), (0.1, -0.2), ([0.1, 0.2], 0.1)],
)
def test_relatedness_bad_input(new, old) -> None:
    with pytest.raises(ConfigError):
        relatedness(new, old)


# ------------------------------------------------------------------------- gate softmax
def test_gate_probabilities_temperature_two_hand_values() -> None:
    # exp(-0.05), exp(-0.15), exp(-0.10) normalised
    p = gate_probabilities([0.1, 0.3, 0.2], temperature=2.0)
    np.testing.assert_allclose(p, [0.350132, 0.316812, 0.333056], atol=1e-6)
    # batched rows, and a lower temperature sharpens without changing the argmax
    P = gate_probabilities([[0.1, 0.3, 0.2], [2.0, 0.0, 4.0]], temperature=2.0)
    np.testing.assert_allclose(P[0], p)
    e = np.exp([-1.0, 0.0, -2.0])
    np.testing.assert_allclose(P[1], e / e.sum(), rtol=1e-12)
    sharp = gate_probabilities([0.1, 0.3, 0.2], temperature=0.01)
    assert sharp.argmax() == p.argmax() == 0 and sharp[0] > 0.999


def test_gate_probabilities_bad_input() -> None:
    with pytest.raises(ConfigError):
        gate_probabilities([0.1, 0.2], temperature=0.0)
    with pytest.raises(ConfigError):
        gate_probabilities([0.1, float("inf")])
    with pytest.raises(ConfigError):
        gate_probabilities(np.zeros((2, 2, 2)))


# ----------------------------------------------------------------------------- LwF loss
def test_lwf_loss_hand_computation() -> None:
    new = torch.tensor([[2.0, 0.0]])
    y = torch.tensor([0])
    old_head = torch.tensor([[1.0, 0.0]])
    teacher = torch.tensor([[0.0, 1.0]])
    # CE = log(1 + e^-2) = 0.126928; q = softmax([0, .5]) = [0.377541, 0.622459];
    # log p = log_softmax([.5, 0]) = [-0.474077, -0.974077]; distillation = 0.785307
    assert float(distillation_loss(old_head, teacher, 2.0)) == pytest.approx(
        0.785307, abs=1e-6
    )
    assert float(lwf_loss(new, y, old_head, teacher, 2.0, 1.0)) == pytest.approx(
        0.912235, abs=1e-6
    )
    assert float(lwf_loss(new, y, old_head, teacher, 2.0, 0.5)) == pytest.approx(
        0.126928 + 0.392653, abs=1e-6
    )
    assert float(lwf_loss(new, y, old_head, teacher, 2.0, 0.0)) == pytest.approx(
        0.126928, abs=1e-6
    )


def test_distillation_minimised_by_teacher_and_sigmoid_unit_convention() -> None:
    teacher = torch.tensor([[0.3, -1.0, 2.0]])
    at_teacher = distillation_loss(teacher.clone(), teacher)
    assert float(
        distillation_loss(teacher + torch.tensor([[0.5, 0.0, 0.0]]), teacher)
    ) > float(at_teacher)
    # one sigmoid unit z: class logits [-z/2, z/2] have softmax [1 - sigmoid(z),
    # sigmoid(z)]
    z = torch.tensor([[1.3]])
    p = torch.softmax(as_class_logits(z), dim=1)
    assert float(p[0, 1]) == pytest.approx(float(torch.sigmoid(z)), rel=1e-6)
    with pytest.raises(ConfigError):
        distillation_loss(torch.zeros(2, 3), torch.zeros(2, 2))


# -------------------------------------------------------------------------- autoencoder
def _digit_tasks():
    from sklearn.datasets import load_digits

    X, Y = load_digits(return_X_y=True)
    X = torch.tensor(X / 16.0, dtype=torch.float32)
    Y = torch.tensor(Y)
    return X, Y


def test_autoencoder_learns_its_own_task_more_than_another() -> None:
    torch.manual_seed(0)
    X, Y = _digit_tasks()
    norm = InputNormaliser("feature").fit(X)
    za, zb = norm(X[Y == 0]), norm(X[Y == 7])
    ae = GateAutoencoder(64, 16)
    gen = torch.Generator().manual_seed(0)
    before = (
        reconstruction_errors([ae], za[100:]).mean(),
        reconstruction_errors([ae], zb).mean(),
    )
    ae.fit(za[:100], epochs=40, lr=5e-3, batch_size=50, generator=gen)
    after = (
        reconstruction_errors([ae], za[100:]).mean(),
        reconstruction_errors([ae], zb).mean(),
    )
    drop_own, drop_other = float(before[0] - after[0]), float(before[1] - after[1])
    assert drop_own > 0 and drop_own > drop_other
    assert float(after[0]) < float(
        after[1]
    )  # held-out samples of its own task are reconstructed better


def test_autoencoder_and_normaliser_validate() -> None:
    with pytest.raises(ConfigError):
        GateAutoencoder(10, 10)  # not undercomplete
    with pytest.raises(RuntimeError):
        InputNormaliser()(torch.zeros(2, 3))
    with pytest.raises(ConfigError):
        InputNormaliser().fit(torch.zeros(1, 3))
    z = InputNormaliser("global").fit(torch.randn(20, 5))(torch.randn(4, 5))
    assert z.shape == (4, 5) and float(z.min()) > 0 and float(z.max()) < 1
    with pytest.raises(ConfigError):
        reconstruction_errors([], z)


# ------------------------------------------------------------------------------- config
@pytest.mark.parametrize(
    "kw",
    [
        {"code_size": 0},
        {"temperature": 0},
        {"novelty_ratio": 1.0},
        {"val_fraction": 1.0},
        {"ae_loss": "l1"},
        {"max_experts": 0},
        {"normalisation": "minmax"},
        {"rel_threshold": float("nan")},
        {"expert_epochs": 0},
    ],
)
def test_config_rejects_bad_values(kw) -> None:
    with pytest.raises(ConfigError):
        ExpertGateConfig(**kw)


def test_config_replace_unknown_name() -> None:
    with pytest.raises(ConfigError, match="unknown"):
        ExpertGateConfig().replace(code_sise=3)


# ------------------------------------------------------------------------------ learner
def _tasks(pairs=((0, 1), (2, 3), (4, 5)), n_train: int = 150) -> list[TaskData]:
    X, Y = _digit_tasks()
    g = torch.Generator().manual_seed(0)
    perm = torch.randperm(X.shape[0], generator=g)
    X, Y = X[perm], Y[perm]
    tr, te = slice(0, 1300), slice(1300, None)
    out = []
    for a, b in pairs:

        def sub(sl, a=a, b=b):
            m = (Y[sl] == a) | (Y[sl] == b)
            return X[sl][m], (Y[sl][m] == b).to(torch.int64)

        (xtr, ytr), (xte, yte) = sub(tr), sub(te)
        xtr, ytr = xtr[:n_train], ytr[:n_train]
        out.append(TaskData(f"{a}/{b}", (a, b), xtr, ytr, xte, yte))
    return out


FAST = ExpertGateConfig(
    code_size=16,
    ae_epochs=30,
    ae_update_epochs=2,
    expert_epochs=8,
    batch_size=50,
    seed=0,
)


def test_classic_protocol_gate_and_expert_choice() -> None:
    tasks = _tasks()
    eg = ExpertGate((64,), 2, FAST)
    reports = [eg.fit_task(tk.x_train, tk.y_train) for tk in tasks]
    assert [r.mode for r in reports][0] == "scratch" and reports[0].source is None
    assert all(r.mode in ("finetune", "lwf") for r in reports[1:])
    for r in reports[1:]:
        assert r.source == int(np.argmax(r.relatedness))
        np.testing.assert_allclose(
            r.relatedness, 1 - (r.err_old - r.err_new) / r.err_new
        )
    assert eg.n_experts == 3
    for k, tk in enumerate(tasks):
        _, experts = eg.predict_samples(tk.x_test)
        assert (
            float((experts == k).float().mean()) > 0.8
        )  # the gate recognises the task
        acc = float((eg.predict(tk.x_test, k).argmax(1) == tk.y_test).float().mean())
        assert acc > 0.9
        probs = eg.gate_probabilities(tk.x_test[:5])
        torch.testing.assert_close(probs.sum(1), torch.ones(5))


def test_lwf_branch_is_taken_above_threshold_and_keeps_source_intact() -> None:
    tasks = _tasks(((0, 1), (2, 3)))
    eg = ExpertGate(
        (64,), 2, FAST.replace(rel_threshold=-1e9)
    )  # every relatedness exceeds it -> LwF
    eg.fit_task(tasks[0].x_train, tasks[0].y_train)
    before = [p.clone() for p in eg.experts[0].parameters()]
    rep = eg.fit_task(tasks[1].x_train, tasks[1].y_train)
    assert rep.mode == "lwf" and rep.source == 0
    for p, q in zip(before, eg.experts[0].parameters()):
        torch.testing.assert_close(p, q)  # the source expert is not modified
    acc = float(
        (eg.predict(tasks[1].x_test, 1).argmax(1) == tasks[1].y_test).float().mean()
    )
    assert acc > 0.9
    # the new expert's head was re-initialised, not copied
    assert not torch.equal(
        task_head(eg.experts[0]).weight, task_head(eg.experts[1]).weight
    )


def test_round_protocol_conformance_and_novelty() -> None:
    tasks = _tasks()
    eg = ExpertGate((64,), 2, FAST, name="EG")
    assert isinstance(eg, RoundLearner)
    stream = sample_stream(tasks, 10, 60, np.random.default_rng(1))
    res = run_stream(eg, tasks, stream, max_test=100)
    assert res.experts.dtype.kind == "i" and res.experts.shape == (10,)
    assert (
        3 <= eg.n_experts <= 4
    )  # every task discovered (a spurious extra expert is tolerated)
    # no two tasks merged into one expert (routing purity 1)
    assert res.routing_purity() == pytest.approx(1.0)
    assert np.nanmean(res.acc_routed[-1]) > 85
    x = tasks[0].x_test[:7]
    out = eg.predict(x)
    assert out.shape == (7, 2) and isinstance(eg.route(x), int)
    info = res.info
    assert (
        info["n_experts"] == 3
        and info["params_gate"] > 0
        and info["params_experts"] > 0
    )


def test_max_experts_cap() -> None:
    tasks = _tasks()
    eg = ExpertGate((64,), 2, FAST.replace(max_experts=2))
    for tk in tasks:
        for _ in range(2):
            eg.observe(tk.x_train[:40], tk.y_train[:40])
    assert eg.n_experts == 2


def test_learner_rejects_bad_input() -> None:
    eg = ExpertGate((64,), 2, FAST)
    with pytest.raises(ConfigError):
        eg.observe(torch.zeros(10, 63), torch.zeros(10, dtype=torch.int64))
    with pytest.raises(ConfigError):
        eg.observe(torch.zeros(10, 64), torch.full((10,), 2))
    with pytest.raises(ConfigError):
        eg.observe(torch.zeros(10, 64), torch.zeros(9, dtype=torch.int64))
    with pytest.raises(ConfigError):
        eg.observe(
            torch.full((10, 64), float("nan")), torch.zeros(10, dtype=torch.int64)
        )
    with pytest.raises(ConfigError):
        eg.observe(torch.zeros(10, 64), torch.zeros(10))  # float labels
    with pytest.raises(RuntimeError):
        eg.predict(torch.zeros(3, 64))
    with pytest.raises(ConfigError):
        ExpertGate((64,), 2, FAST.replace(code_size=64)).observe(
            torch.rand(10, 64), torch.zeros(10, dtype=torch.int64)
        )
    with pytest.raises(ConfigError):
        ExpertGate((64,), 1)


def test_expert_convention_sigmoid_unit_experts() -> None:
    """Experts with one sigmoid unit and their own loss/logits (as
    moecl_lib.deep.moe.CNNExpert) are supported."""

    class OneUnit(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = nn.Sequential(nn.Linear(64, 8), nn.ReLU())
            self.out = nn.Linear(8, 1)

        def forward(self, x):
            return self.out(self.body(x.reshape(x.shape[0], -1)))

        def logits(self, x):
            return as_class_logits(self(x))

        def loss(self, x, y):
            return nn.functional.binary_cross_entropy_with_logits(
                self(x)[:, 0], y.float()
            )

    tasks = _tasks(((0, 1), (2, 3)))
    eg = ExpertGate((64,), 2, FAST.replace(rel_threshold=-1e9), expert_factory=OneUnit)
    eg.fit_task(tasks[0].x_train, tasks[0].y_train)
    rep = eg.fit_task(tasks[1].x_train, tasks[1].y_train)
    assert rep.mode == "lwf"
    assert eg.predict(tasks[1].x_test, 1).shape == (tasks[1].x_test.shape[0], 2)
    assert head_outputs(eg.experts[0], tasks[0].x_test[:3]).shape == (3, 2)
    acc = float(
        (eg.predict(tasks[1].x_test, 1).argmax(1) == tasks[1].y_test).float().mean()
    )
    assert acc > 0.9
    with pytest.raises(ConfigError):
        task_head(nn.Sequential(nn.ReLU()))


def test_determinism_at_fixed_seed() -> None:
    tasks = _tasks(((0, 1), (2, 3)), n_train=60)
    outs = []
    for seed in (0, 0, 1):
        eg = ExpertGate((64,), 2, FAST.replace(seed=seed))
        for tk in tasks:
            eg.fit_task(tk.x_train, tk.y_train)
        outs.append(eg.predict(tasks[1].x_test[:5], 1))
    torch.testing.assert_close(outs[0], outs[1])  # same seed: same outputs
    assert math.isfinite(float(outs[0].sum()))
    # another seed: other initialisation and minibatch order, so other outputs (a
    # constant or seed-blind output would fail here)
    assert not torch.allclose(outs[0], outs[2])
    assert float(outs[0].std()) > 0


# ------------------------------------------------------------------------ linear stream
from moecl_lib.config import ExperimentConfig  # noqa: E402
from moecl_lib.expert_gate.linear import (  # noqa: E402
    merged_task_pairs,
    oracle_assignment,
    routing_accuracy,
    simulate_gate,
)
from moecl_lib.linear.engine import simulate  # noqa: E402

LIN = ExperimentConfig(
    n_tasks=4,
    n_experts=5,
    d=10,
    s=6,
    T=60,
    n_runs=3,
    signal="orthonormal",
    signal_scale=5.0,
    T1=20,
    seed=3,
)


def test_linear_streams_identical_to_engine_and_replay_reproduces_its_metrics() -> None:
    eng = simulate(LIN)
    rep = simulate_gate(LIN, "replay", experts=eng.experts)
    np.testing.assert_array_equal(
        rep.tasks, eng.tasks
    )  # same task sequence (same rng consumption)
    np.testing.assert_allclose(rep.F, eng.F, atol=1e-12, equal_nan=True)
    np.testing.assert_allclose(rep.G, eng.G, atol=1e-12)
    np.testing.assert_allclose(rep.err_new, eng.err_new, atol=1e-12)
    for router in ("oracle", "expert_gate"):
        np.testing.assert_array_equal(simulate_gate(LIN, router).tasks, eng.tasks)


def test_linear_expert_gate_finds_the_tasks_and_beats_a_single_expert() -> None:
    eg = simulate_gate(LIN.replace(T=120), "expert_gate")
    M = eg.final_w.shape[1]
    assert (
        eg.n_experts[:, -1] >= LIN.n_tasks
    ).all()  # every task got its own expert (capacity 5)
    assert merged_task_pairs(eg.experts, eg.tasks, M, LIN.n_tasks).max() == 0.0
    single = simulate(LIN.replace(T=120, n_experts=1))
    assert eg.G[:, -1].mean() < 0.1 * single.G[:, -1].mean()
    orc = simulate_gate(LIN.replace(T=120), "oracle")
    np.testing.assert_array_equal(orc.experts, orc.tasks)  # M >= N: task n -> expert n
    assert np.isnan(
        simulate_gate(LIN, "replay", experts=np.zeros((3, 60), int)).G_pool
    ).all()


def test_oracle_assignment_hand_cases() -> None:
    np.testing.assert_array_equal(oracle_assignment(np.array([0, 1, 2]), 5), [0, 1, 2])
    # N=6 in K=2 clusters, M=4: cluster 0 owns experts {0,1}, cluster 1 owns {2,3},
    # round-robin inside
    np.testing.assert_array_equal(
        oracle_assignment(np.array([0, 0, 0, 1, 1, 1]), 4), [0, 1, 0, 2, 3, 2]
    )
    np.testing.assert_array_equal(
        oracle_assignment(np.array([0, 1, 2, 3]), 2), [0, 1, 0, 1]
    )  # M < K


def test_routing_accuracy_and_merges_hand_case() -> None:
    experts = np.array([[0, 0, 1, 1, 0, 2]])
    tasks = np.array([[0, 0, 1, 0, 0, 1]])
    # owners: expert 0 -> task 0 (3 rounds), expert 1 -> tie(0,1) -> task 0, expert 2 ->
    # task 1
    np.testing.assert_allclose(
        routing_accuracy(experts, tasks, 3, 2, window=3), [[2 / 3, 1.0]]
    )
    np.testing.assert_allclose(
        routing_accuracy(experts, tasks, 3, 2, window=4), [[0.75, 1.0]]
    )
    # task 0's majority expert 0, task 1's: experts 1 and 2 tie -> 1; no shared majority
    assert merged_task_pairs(experts, tasks, 3, 2)[0] == 0.0
    assert merged_task_pairs(np.array([[0, 0]]), np.array([[0, 1]]), 1, 2)[0] == 1.0


@pytest.mark.parametrize(
    "kw",
    [
        {"router": "gate"},
        {"code_size": 10},
        {"novelty_ratio": 1.0},
        {"init": "copy"},
        {"router": "replay"},
        {"max_experts": 0},
    ],
)
def test_simulate_gate_rejects_bad_input(kw) -> None:
    with pytest.raises(ConfigError):
        simulate_gate(LIN, **kw)


# ------------------------------------------------------------------- experiments module
from moecl_lib.expert_gate.baselines import (  # noqa: E402
    MultiHeadNet,
    evaluate_gate,
    multihead_accuracy,
    train_joint,
    train_sequential,
)
from moecl_lib.expert_gate.experiments import domain_tasks, resize_images  # noqa: E402
from moecl_lib.expert_gate.round_stream import (  # noqa: E402
    OracleRouter,
    learner_parameters,
)


def test_multihead_baselines_and_gate_evaluation() -> None:
    tasks = _tasks(((0, 1), (2, 3)), n_train=80)
    from moecl_lib.expert_gate.gate import mlp_expert

    gen = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    net = MultiHeadNet(lambda: mlp_expert(64, 2, 16))
    for tk in tasks:
        train_sequential(net, tk, 8, 0.05, 32, gen, lwf=True, momentum=0.9)
    assert len(net.heads) == 2
    acc = multihead_accuracy(net, tasks)
    assert acc.shape == (2,) and (acc > 80).all()
    joint = MultiHeadNet(lambda: mlp_expert(64, 2, 16))
    train_joint(joint, tasks, 8, 0.05, 32, gen, momentum=0.9)
    assert (multihead_accuracy(joint, tasks) > 80).all()
    eg = ExpertGate((64,), 2, FAST)
    for tk in tasks:
        eg.fit_task(tk.x_train, tk.y_train)
    ev = evaluate_gate(eg, tasks)
    assert (ev.acc <= ev.gate_acc + 1e-9).all() and (
        ev.acc <= ev.oracle_acc + 1e-9
    ).all()


def test_oracle_router_votes_when_images_are_shared() -> None:
    x = torch.arange(12, dtype=torch.float32).reshape(6, 2)
    shared = x[:2]
    a = TaskData(
        "a",
        (0, 1),
        torch.cat([shared, x[2:4]]),
        torch.tensor([0, 0, 1, 1]),
        x[2:3],
        torch.tensor([1]),
    )
    b = TaskData(
        "b",
        (0, 1),
        torch.cat([shared, x[4:6]]),
        torch.tensor([0, 0, 1, 1]),
        x[4:5],
        torch.tensor([1]),
    )
    orc = OracleRouter(
        [a, b], lambda: nn.Sequential(nn.Linear(2, 2)), lr=0.1, epochs=1, minibatch=2
    )
    assert (
        orc.route(torch.cat([shared, x[4:6]])) == 1
    )  # shared images vote for both, positives decide
    assert orc.route(x[2:4]) == 0
    assert orc.observe(b.x_train, b.y_train) == 1
    assert orc.predict(x[4:6]).shape == (2, 2)
    assert learner_parameters(orc) == {"gate": 0, "experts": 12}
    with pytest.raises(ConfigError):
        orc.route(torch.full((1, 2), -5.0))


def test_domain_tasks_resize() -> None:
    tasks = _tasks(((0, 1),), n_train=20)
    img = TaskData(
        "digits",
        (0, 1),
        tasks[0].x_train.reshape(-1, 1, 8, 8),
        tasks[0].y_train,
        tasks[0].x_test.reshape(-1, 1, 8, 8),
        tasks[0].y_test,
    )
    out = domain_tasks([("d", [img])], size=(16, 16))
    assert out[0].name == "d: digits" and out[0].x_train.shape[1:] == (1, 16, 16)
    assert float(out[0].x_train.min()) >= 0 and float(out[0].x_train.max()) <= 1
    with pytest.raises(ConfigError):
        resize_images(torch.zeros(3, 8, 8), (16, 16))
