"""Router options of ExperimentConfig (tag [C]): load-balancing form (``lb_loss``),
locality form (``locality``) and routing-noise law (``route_noise``).

Each option is defined once in :mod:`moecl_lib.linear.routing`; here: validation and
records, the noise laws and the draws they leave alone, the gradient of every loss form
against finite differences and torch autograd (with a mutated coefficient that must
fail), the compiled twin against numpy, and engine = naive reference per option.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from moecl_lib.analysis.aux_only import simulate_aux_only
from moecl_lib.config import LATE_OPTIONS, ConfigError, ExperimentConfig
from moecl_lib.linear import kernel as kernels
from moecl_lib.linear import reference, routing
from moecl_lib.linear.engine import draw_rounds, simulate
from moecl_lib.linear.streams import make_streams, task_pool

OPTIONS = [
    dict(lb_loss="switch"),
    dict(lb_loss="entropy"),
    dict(lb_loss="entropy", aux_grad="no_decay"),
    dict(locality="l2sq"),
    dict(route_noise="gaussian"),
    dict(route_noise="gumbel"),
]
IDS = ["-".join(f"{k}={v}" for k, v in kw.items()) for kw in OPTIONS]


# ----------------------------------------------------------------------- configuration


@pytest.mark.parametrize("name", ["lb_loss", "locality", "route_noise"])
def test_unknown_option_is_a_one_line_config_error(name: str) -> None:
    with pytest.raises(ConfigError, match=name) as exc:
        ExperimentConfig(**{name: "bogus"})
    assert "\n" not in str(exc.value)


def test_defaults_are_left_out_of_the_record_and_round_trip() -> None:
    cfg = ExperimentConfig()
    assert not set(LATE_OPTIONS) & set(cfg.to_dict())
    other = cfg.replace(lb_loss="entropy", route_noise="gumbel")
    d = other.to_dict()
    assert d["lb_loss"] == "entropy" and d["route_noise"] == "gumbel"
    assert "locality" not in d
    assert ExperimentConfig(**d) == other and ExperimentConfig(**cfg.to_dict()) == cfg


def test_aux_only_emulation_refuses_other_forms() -> None:
    cfg = ExperimentConfig(n_experts=3, T=20, n_runs=1, termination="never")
    with pytest.raises(ConfigError, match="lb_loss"):
        simulate_aux_only(cfg.replace(lb_loss="switch"), None)


# ----------------------------------------------------------------------- routing noise


def test_noise_laws_share_the_uniform_scale() -> None:
    rng = np.random.default_rng(0)
    lam = 0.3
    u = rng.uniform(0.0, lam, size=400_000)
    assert routing.shape_route_noise(u, lam, "uniform") is u
    for law in ("gaussian", "gumbel"):
        x = routing.shape_route_noise(u, lam, law)
        assert np.all(np.isfinite(x))
        assert x.std() == pytest.approx(lam / np.sqrt(12), rel=0.01)
        # a monotone map of the same draws: the order of the experts' noise is kept
        assert np.array_equal(np.argsort(x[:1000]), np.argsort(u[:1000]))
    g = routing.shape_route_noise(u, lam, "gumbel")
    b = lam / (np.pi * np.sqrt(2))
    assert g.mean() == pytest.approx(np.euler_gamma * b, abs=3 * g.std() / 600)
    assert np.all(routing.shape_route_noise(np.zeros(3), 0.0, "gaussian") == 0.0)
    edge = routing.shape_route_noise(
        np.array([0.0, lam * (1 - 2.0**-53)]), lam, "gumbel"
    )
    assert np.all(np.isfinite(edge))


@pytest.mark.parametrize("streams", ["shared", "per_run"])
@pytest.mark.parametrize("law", ["gaussian", "gumbel"])
def test_noise_law_consumes_the_same_draws(streams: str, law: str) -> None:
    """Another law transforms the uniform draws: every other draw, and the state of
    the generator afterwards, are those of the default law."""
    base = ExperimentConfig(n_experts=4, T=30, n_runs=5, seed=4, streams=streams)
    out = {}
    for cfg in (base, base.replace(route_noise=law)):
        rng = make_streams(cfg)
        task_pool(cfg, rng)
        draws = draw_rounds(cfg, rng, cfg.T)
        after = rng.random() if streams == "shared" else rng.states.tobytes()
        out[cfg.route_noise] = (draws, after)
    (a, after_a), (b, after_b) = out["uniform"], out[law]
    for key in ("tasks", "noise", "beta", "pos"):
        np.testing.assert_array_equal(getattr(a, key), getattr(b, key))
    assert after_a == after_b
    np.testing.assert_array_equal(
        b.route_noise, routing.shape_route_noise(a.route_noise, base.lam, law)
    )


# ----------------------------------------------------------------------- gradients


def _case(seed: int = 3) -> dict:
    rng = np.random.default_rng(seed)
    M, d, t = 5, 7, 9
    counts = rng.integers(0, 4, size=M).astype(float)
    counts[2] += 1
    return dict(
        theta=rng.normal(size=(M, d)),
        xbar=rng.normal(size=d),
        chosen=2,
        dn=1.3,
        f=counts / t,
        past=rng.random(M) * (t - 1) / M,  # sum of earlier rounds' probabilities
        t=t,
        alpha=0.7,
    )


def _loss(theta, case, lb_loss, locality, aux_grad, lib):
    """The router loss of the module docstring of routing, written out (``lib`` = np
    or torch); only round t's probabilities depend on theta."""
    h = theta @ case["xbar"]
    e = lib.exp(h - h.max())
    pi = e / e.sum()
    M, t, m = theta.shape[0], case["t"], case["chosen"]
    weight = case["dn"] if locality == "l2" else case["dn"] ** 2
    P = (case["past"] + pi) / t
    if lb_loss == "paper":
        aux = case["alpha"] * M * (case["f"] * P).sum()
    elif lb_loss == "switch":
        aux = case["alpha"] * M * P[m]
    else:
        aux = case["alpha"] * (P * lib.log(P)).sum()
    if aux_grad == "no_decay":  # the current-round term without its factor 1/t
        aux = aux * t
    return pi[m] * weight + aux


def _coefficient_grad(case, lb_loss, locality, aux_grad, alpha=None):
    pi = routing.softmax(case["theta"] @ case["xbar"])
    c = routing.router_coefficients(
        np.array([case["dn"]]),
        pi[None],
        np.array([case["chosen"]]),
        case["f"][None],
        case["t"],
        case["alpha"] if alpha is None else alpha,
        aux_grad,
        lb_loss=lb_loss,
        locality=locality,
        pbar=((case["past"] + pi) / case["t"])[None],
    )[0]
    return c, c[:, None] * case["xbar"][None]


FORMS = [
    ("paper", "l2"),
    ("switch", "l2"),
    ("entropy", "l2"),
    ("paper", "l2sq"),
    ("entropy", "l2sq"),
]


def _finite_difference(case, lb_loss, locality, aux_grad, eps=1e-6):
    theta = case["theta"]
    grad = np.zeros_like(theta)
    for idx in np.ndindex(*theta.shape):
        hi, lo = theta.copy(), theta.copy()
        hi[idx] += eps
        lo[idx] -= eps
        grad[idx] = (
            _loss(hi, case, lb_loss, locality, aux_grad, np)
            - _loss(lo, case, lb_loss, locality, aux_grad, np)
        ) / (2 * eps)
    return grad


@pytest.mark.parametrize("aux_grad", ["decay", "no_decay"])
@pytest.mark.parametrize(("lb_loss", "locality"), FORMS)
def test_gradient_matches_finite_differences_and_autograd(
    lb_loss: str, locality: str, aux_grad: str
) -> None:
    case = _case()
    c, grad = _coefficient_grad(case, lb_loss, locality, aux_grad)
    fd = _finite_difference(case, lb_loss, locality, aux_grad)
    np.testing.assert_allclose(grad, fd, rtol=1e-6, atol=1e-8)
    th = torch.tensor(case["theta"], requires_grad=True, dtype=torch.float64)
    tcase = dict(case, xbar=torch.tensor(case["xbar"]), f=torch.tensor(case["f"]))
    tcase["past"] = torch.tensor(case["past"])
    _loss(th, tcase, lb_loss, locality, aux_grad, torch).backward()
    np.testing.assert_allclose(grad, th.grad.numpy(), rtol=1e-10, atol=1e-12)
    assert abs(c.sum()) < 1e-12  # zero-sum over experts, whatever the form


@pytest.mark.parametrize(("lb_loss", "locality"), FORMS[1:])
def test_gradient_check_catches_a_mutated_coefficient(
    lb_loss: str, locality: str
) -> None:
    """The check can fail: a 1 % change of the load-balancing weight (or, for the
    locality form, the other locality) is caught."""
    case = _case(5)
    fd = _finite_difference(case, lb_loss, locality, "decay")
    if locality == "l2sq" and lb_loss == "paper":
        grad = _coefficient_grad(case, lb_loss, "l2", "decay")[1]
    else:
        grad = _coefficient_grad(
            case, lb_loss, locality, "decay", case["alpha"] * 1.01
        )[1]
    with pytest.raises(AssertionError):
        np.testing.assert_allclose(grad, fd, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("lb_loss", ["paper", "switch", "entropy"])
def test_coefficient_twin_equals_numpy(lb_loss: str) -> None:
    rng = np.random.default_rng(7)
    M, t, m = 6, 11, 4
    h = rng.normal(size=M)
    counts = rng.integers(0, 5, size=M).astype(float)
    past = rng.random(M) * (t - 1) / M
    dn, scale = 0.8, routing.aux_scale(0.3, M, t, "decay", lb_loss)
    pi, f, c, pi_sum = np.empty(M), np.empty(M), np.empty(M), past.copy()
    code = routing.LB_CODES[lb_loss]
    routing.router_coefficients_run(h, m, counts, t, dn, scale, pi, f, c, code, pi_sum)
    pi_np = routing.softmax(h[:, None], axis=0)
    g = routing.balance_signal(
        (counts / t)[:, None],
        np.array([m]),
        ((past + pi_np[:, 0]) / t)[:, None],
        lb_loss,
    )
    c_np = routing.coefficients_runs_last(
        np.array([dn]), pi_np, np.array([m]), g, scale
    )
    np.testing.assert_allclose(c, c_np[:, 0], rtol=1e-12, atol=1e-15)
    if lb_loss == "entropy":
        np.testing.assert_allclose(pi_sum, past + pi_np[:, 0], rtol=1e-15)
    else:
        np.testing.assert_array_equal(pi_sum, past)  # left alone


# ----------------------------------------------------------------------- engine


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("kw", OPTIONS, ids=IDS)
def test_engine_equals_reference_per_option(kw: dict, backend: str) -> None:
    if backend == "numba" and not kernels.AVAILABLE:
        pytest.skip(kernels.IMPORT_ERROR)
    cfg = ExperimentConfig(
        n_tasks=4, n_experts=5, d=10, s=4, T=200, n_runs=3, seed=3,
        signal_scale=3.0, backend=backend, **kw,
    )  # fmt: skip
    errors = reference.check_reference(cfg)
    assert max(errors.values()) < reference.REFERENCE_RTOL
    default = simulate(cfg.replace(**{k: LATE_OPTIONS.get(k, "decay") for k in kw}))
    assert not np.array_equal(simulate(cfg).experts, default.experts)  # it acts


@pytest.mark.parametrize("kw", OPTIONS, ids=IDS)
def test_single_expert_ignores_router_options(kw: dict) -> None:
    cfg = ExperimentConfig(n_experts=1, T=60, n_runs=3, seed=2)
    a, b = simulate(cfg), simulate(cfg.replace(**kw))
    np.testing.assert_array_equal(a.G, b.G)
