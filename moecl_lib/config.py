"""Validated, frozen experiment configuration for the linear MoE-CL simulation.

Every uncertain element of the paper is a field here, with the SPEC's recommended
default (``spec/SPEC.md``; the provenance of each default is listed in the book's
fidelity ledger). Invalid values raise :class:`ConfigError` with one line naming the
parameter and the allowed range.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

Termination = Literal["gap", "freeze_at_T1", "never"]
AuxGrad = Literal["decay", "no_decay"]
Signal = Literal["aligned", "random", "orthonormal", "none"]
Beta = Literal["constant", "uniform"]
DType = Literal["float64", "float32"]
Backend = Literal["auto", "numba", "numpy"]
Streams = Literal["shared", "per_run"]
LBLoss = Literal["paper", "switch", "entropy"]
Locality = Literal["l2", "l2sq"]
RouteNoise = Literal["uniform", "gaussian", "gumbel"]
T_Config = TypeVar("T_Config")

TERMINATIONS: tuple[str, ...] = ("gap", "freeze_at_T1", "never")
AUX_GRADS: tuple[str, ...] = ("decay", "no_decay")
SIGNALS: tuple[str, ...] = ("aligned", "random", "orthonormal", "none")
BETAS: tuple[str, ...] = ("constant", "uniform")
DTYPES: tuple[str, ...] = ("float64", "float32")
BACKENDS: tuple[str, ...] = ("auto", "numba", "numpy")
STREAMS: tuple[str, ...] = ("shared", "per_run")
LB_LOSSES: tuple[str, ...] = ("paper", "switch", "entropy")
LOCALITIES: tuple[str, ...] = ("l2", "l2sq")
ROUTE_NOISES: tuple[str, ...] = ("uniform", "gaussian", "gumbel")
#: Options added after the book's records were made, with their defaults:
#: :meth:`ExperimentConfig.to_dict` lists them only where they differ from these, so
#: that every configuration that existed before reads (and is recorded) as before.
LATE_OPTIONS: dict[str, str] = {
    "lb_loss": "paper",
    "locality": "l2",
    "route_noise": "uniform",
}


class ConfigError(ValueError):
    """A configuration value is outside its allowed range (message names the
    parameter)."""


@dataclass(frozen=True)
class ExperimentConfig:
    """All knobs of one batched linear experiment (SPEC §2-§5, §7.2, §8).

    Attributes:
        n_tasks: N, number of tasks in the pool.
        n_experts: M, number of experts; ``M = 1`` is the single-expert baseline (no
            router).
        d: feature dimension (parameters per linear expert).
        s: samples per round; over-parameterised, so ``s < d`` is required.
        T: number of rounds.
        sigma0: scale of the ground-truth entries, ``w_n ~ N(0, sigma0^2 I)`` (SPEC
            §2.2).
        sigma_t: standard deviation of the Gaussian (non-signal) columns of ``X_t``.
        beta: feature-signal strength ``beta_t`` (constant, or the upper end C of
            ``Unif(0, C]``).
        beta_dist: ``"constant"`` (default, SPEC A2) or ``"uniform"`` on ``(0, beta]``.
        signal: direction of the feature signal ``v_n``: ``"aligned"``
            (``v_n = c w_n/||w_n||``, SPEC §2.3 (a)), ``"random"`` (random unit
            direction per cluster), ``"orthonormal"`` (one canonical basis vector per
            cluster, SPEC §2.3 (b)), or ``"none"`` (all ``s`` columns isotropic
            Gaussian: no signal; the setting where the isotropic closed forms are
            exact).
        signal_scale: c, the norm of ``v_n`` (SPEC A2 calibration knob).
        n_clusters: K clusters of tasks (SPEC A6); ``None`` means K = N (every task its
            own cluster).
        cluster_spread: std of the within-cluster perturbation; ``None`` means
            ``sigma0**1.5`` (SPEC A6).
        eta: router learning rate.
        alpha: weight of the load-balancing loss.
        lam: lambda, routing noise ``Unif[0, lambda]``.
        gamma: Gamma, termination threshold; ``None`` means ``sigma0**1.25`` (SPEC A15).
        T1: rounds before termination may start; ``None`` means
            ``ceil(M / (eta * sigma0**0.25))``.
        termination: ``"gap"`` (SPEC §4.6 recommended), ``"freeze_at_T1"`` or
            ``"never"``.
        aux_grad: ``"decay"`` (literal gradient, scaled by 1/t) or ``"no_decay"`` (SPEC
            A3).
        lb_loss: form of the load-balancing loss [C] (:mod:`moecl_lib.linear.routing`):
            ``"paper"`` (Eq. 7, ``alpha M sum_m f_t^(m) P_t^(m)``, ``f`` the fraction of
            rounds routed to ``m`` so far, ``P`` the mean router probability; default),
            ``"switch"`` (Switch Transformer's ``alpha M sum_m f_m P_m`` with ``f`` and
            ``P`` over one batch, the round: ``f = 1{m = m_t}``, ``P = pi(xbar_t)``,
            gradient through ``P`` only) or ``"entropy"`` (``-alpha H(P_t)``, the
            entropy of the mean router probability ``P_t``). ``aux_grad`` scales every
            form's gradient (``1/t`` or 1).
        locality: locality loss [C]: ``"l2"`` (Eq. 6, ``pi_{m_t} ||Delta_t||``,
            default) or ``"l2sq"`` (``pi_{m_t} ||Delta_t||^2``, SPEC A10).
        route_noise: law of the routing noise [C], all of standard deviation
            ``lam / sqrt(12)``: ``"uniform"`` (``Unif[0, lam]``, default),
            ``"gaussian"`` or ``"gumbel"``; the gap test's tie width stays ``lam``.
        shared_pool: if True all runs share one task pool (ground truths and signals);
            else each run draws its own.
        n_runs: R, independent runs simulated together (batched).
        seed: seed of the random streams (``streams``).
        streams: ``"per_run"`` (default; each run its own streams: its numbers depend
            only on the configuration, the seed and its run index) or ``"shared"`` (one
            generator drives the whole batch, the former default);
            :mod:`moecl_lib.linear.streams`.
        first_run: global index of the batch's first run (``streams="per_run"`` only):
            runs ``first_run .. first_run + n_runs - 1`` are simulated, so a study can
            be split in batches.
        dtype: floating type of the simulation (``"float64"`` default).
        backend: implementation of :func:`moecl_lib.linear.engine.simulate`: ``"numba"``
            (compiled kernel), ``"numpy"`` (vectorised over runs) or ``"auto"`` (numba
            when importable). Same random draws, so the same tasks, routing and
            termination; float outputs agree to rounding (``tests/test_kernels.py``).
        snapshot_every: rounds between snapshots of the gate values on the task signals
            (0 = only final).
    """

    n_tasks: int = 6
    n_experts: int = 10
    d: int = 10
    s: int = 6
    T: int = 2000
    sigma0: float = 0.4
    sigma_t: float = 0.1
    beta: float = 1.0
    beta_dist: Beta = "constant"
    signal: Signal = "aligned"
    signal_scale: float = 1.0
    n_clusters: int | None = None
    cluster_spread: float | None = None
    eta: float = 0.5
    alpha: float = 0.5
    lam: float = 0.3
    gamma: float | None = None
    T1: int | None = None
    termination: Termination = "gap"
    aux_grad: AuxGrad = "decay"
    lb_loss: LBLoss = "paper"
    locality: Locality = "l2"
    route_noise: RouteNoise = "uniform"
    shared_pool: bool = False
    n_runs: int = 50
    seed: int = 0
    dtype: DType = "float64"
    snapshot_every: int = 0
    backend: Backend = "auto"
    streams: Streams = "per_run"
    first_run: int = 0

    def __post_init__(self) -> None:
        check_int(self, "n_tasks", 1)
        check_int(self, "n_experts", 1)
        check_int(self, "d", 2)
        check_int(self, "s", 1)
        if self.s >= self.d:
            raise ConfigError(
                f"s={self.s} must be < d={self.d}: the over-parameterised regime (s < "
                "d) is required"
            )
        check_int(self, "T", 1)
        check_int(self, "n_runs", 1)
        check_int(self, "seed", 0)
        check_int(self, "snapshot_every", 0)
        for name in ("sigma0", "sigma_t", "beta", "signal_scale"):
            check_float(self, name, positive=True)
        for name in ("eta", "alpha", "lam"):
            check_float(self, name, positive=False)
        if self.gamma is not None:
            check_float(self, "gamma", positive=False)
        if self.cluster_spread is not None:
            check_float(self, "cluster_spread", positive=False)
        if self.T1 is not None:
            check_int(self, "T1", 0)
        if self.n_clusters is not None:
            check_int(self, "n_clusters", 1)
            if self.n_clusters > self.n_tasks:
                raise ConfigError(
                    f"n_clusters={self.n_clusters} must be <= n_tasks={self.n_tasks}"
                )
        check_choice(self, "termination", TERMINATIONS)
        check_choice(self, "aux_grad", AUX_GRADS)
        check_choice(self, "lb_loss", LB_LOSSES)
        check_choice(self, "locality", LOCALITIES)
        check_choice(self, "route_noise", ROUTE_NOISES)
        check_choice(self, "signal", SIGNALS)
        check_choice(self, "beta_dist", BETAS)
        check_choice(self, "dtype", DTYPES)
        check_choice(self, "backend", BACKENDS)
        check_choice(self, "streams", STREAMS)
        check_int(self, "first_run", 0)
        if self.first_run and self.streams != "per_run":
            raise ConfigError(
                f"first_run={self.first_run} needs streams='per_run' "
                "(a shared stream cannot be split)"
            )
        if not isinstance(self.shared_pool, bool):
            raise ConfigError(f"shared_pool={self.shared_pool!r} must be True or False")
        if self.signal == "orthonormal" and self.K > self.d:
            raise ConfigError(
                f"signal='orthonormal' needs n_clusters <= d (got K={self.K}, "
                f"d={self.d})"
            )

    # ----- derived constants ----------------------------------------------------------
    @property
    def K(self) -> int:
        """Number of task clusters (N when ``n_clusters`` is None)."""
        return self.n_tasks if self.n_clusters is None else self.n_clusters

    @property
    def r(self) -> float:
        """``r = 1 - s/d``: expected fraction of an isotropic error left by one update
        (SPEC §6.5)."""
        return 1.0 - self.s / self.d

    @property
    def gamma_value(self) -> float:
        """Termination threshold Gamma (``sigma0**1.25`` unless set, SPEC A15)."""
        return self.sigma0**1.25 if self.gamma is None else float(self.gamma)

    @property
    def T1_value(self) -> int:
        """Rounds before termination may start: ``ceil(M / (eta sigma0^0.25))`` unless
        set (SPEC A15)."""
        if self.T1 is not None:
            return int(self.T1)
        if self.eta == 0:
            return self.T
        return int(math.ceil(self.n_experts / (self.eta * self.sigma0**0.25)))

    @property
    def cluster_spread_value(self) -> float:
        """Std of the within-cluster perturbation of the ground truths (``sigma0**1.5``
        unless set)."""
        return (
            self.sigma0**1.5
            if self.cluster_spread is None
            else float(self.cluster_spread)
        )

    def replace(self, **changes: Any) -> ExperimentConfig:
        """Return a validated copy with some fields changed (unknown names raise
        ConfigError)."""
        return replace_fields(self, changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of the fields (for printing, records and CSV headers).

        The options of :data:`LATE_OPTIONS` appear only where they differ from their
        default, so a configuration that existed before them is recorded as before;
        ``ExperimentConfig(**cfg.to_dict()) == cfg`` either way.
        """
        out = dataclasses.asdict(self)
        for name, default in LATE_OPTIONS.items():
            if out[name] == default:
                del out[name]
        return out


def replace_fields(obj: T_Config, changes: dict[str, Any]) -> T_Config:
    """Validated copy of the frozen dataclass ``obj`` with ``changes``; unknown names
    raise one ConfigError.

    Shared by every configuration class of the library (validation re-runs in
    ``__post_init__``).
    """
    names = {f.name for f in dataclasses.fields(obj)}
    unknown = sorted(set(changes) - names)
    if unknown:
        raise ConfigError(
            f"unknown parameter(s) {unknown} for {type(obj).__name__}; valid names: "
            f"{sorted(names)}"
        )
    return dataclasses.replace(obj, **changes)


def as_int(value: Any, name: str, minimum: int, *, optional: bool = False) -> Any:
    """The one integer rule of every configuration: ``value`` as an ``int``.

    An ``int``, a numpy integer or an integral float (``100.0``, as YAML or papermill
    may pass it) is accepted and returned as ``int``; ``bool``, strings, fractional
    numbers and values below ``minimum`` raise :class:`ConfigError`. ``optional``:
    ``None`` is accepted and returned.
    """
    if optional and value is None:
        return None
    if isinstance(value, bool) or not _is_integral(value) or int(value) < minimum:
        extra = " or None" if optional else ""
        raise ConfigError(f"{name}={value!r} must be an integer >= {minimum}{extra}")
    return int(value)


def _is_integral(value: Any) -> bool:
    try:
        return float(value).is_integer() and not isinstance(value, str)
    except (TypeError, ValueError, OverflowError):
        return False


def as_float(
    value: Any,
    name: str,
    *,
    positive: bool = False,
    signed: bool = False,
    optional: bool = False,
) -> Any:
    """The one real-number rule: a finite number (not a bool or a string) as ``float``;
    ``>= 0`` unless ``signed``, ``> 0`` when ``positive``; ``optional`` accepts
    ``None``."""
    if optional and value is None:
        return None
    try:
        fval = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name}={value!r} must be a finite number") from None
    if isinstance(value, (bool, str)) or not math.isfinite(fval):
        raise ConfigError(f"{name}={value!r} must be a finite number")
    if positive and fval <= 0:
        raise ConfigError(f"{name}={value!r} must be a finite number > 0")
    if not positive and not signed and fval < 0:
        raise ConfigError(f"{name}={value!r} must be a finite number >= 0")
    return fval


def check_int(obj: Any, name: str, minimum: int, *, optional: bool = False) -> None:
    """Validate the integer field ``name`` of the frozen dataclass ``obj`` by
    :func:`as_int` and store it as ``int`` (every configuration class uses this)."""
    value = as_int(getattr(obj, name), name, minimum, optional=optional)
    object.__setattr__(obj, name, value)


def check_float(
    obj: Any,
    name: str,
    *,
    positive: bool = False,
    signed: bool = False,
    optional: bool = False,
) -> None:
    """Validate the real field ``name`` of ``obj`` by :func:`as_float`; store a
    ``float``."""
    value = as_float(
        getattr(obj, name), name, positive=positive, signed=signed, optional=optional
    )
    object.__setattr__(obj, name, value)


def check_choice(obj: Any, name: str, allowed: tuple[str, ...]) -> None:
    """Validate that the field ``name`` of ``obj`` is one of ``allowed``."""
    value = getattr(obj, name)
    if value not in allowed:
        raise ConfigError(f"{name}={value!r} must be one of {list(allowed)}")
