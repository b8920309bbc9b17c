"""Exact expected forgetting / generalisation error under the Definition-1 generator
(this project's derivation).

The isotropic closed forms of SPEC §6.5 (``moecl_lib.theory.isotropic``) assume that all
``s`` columns of ``X_t`` are isotropic Gaussian, so that ``E[P_t] = (s/d) I``. The
generator we simulate (Definition 1, SPEC §2.3) puts the task's feature signal
``beta * v_n`` in one column and ``s - 1`` isotropic Gaussian columns next to it. The
projector onto the column span is then

    P_t = vhat vhat^T + P_g,     vhat = v_{n_t} / ||v_{n_t}||,

with ``P_g`` a uniformly (Haar) distributed ``(s-1)``-dimensional orthogonal projector
inside ``vhat^perp`` (``beta`` and ``sigma_t`` drop out of the span). Equivalently
``R_t = I - P_t`` is a uniformly random ``(d-s)``-dimensional projector inside
``vhat^perp``. For isotropic columns (``signal="none"``) ``R_t`` is a uniformly random
``(d-s)``-dimensional projector in ``R^d``; both cases are handled by passing a unit
``vhat`` (signal) or the zero vector (no signal column) per task.

Haar moments used (``Q`` uniform rank-``k`` projector in a ``D``-dimensional space with
projector ``Pi``):

    E[Q] = (k/D) Pi,
    E[Q_ij Q_kl] = alpha Pi_ij Pi_kl + gamma (Pi_ik Pi_jl + Pi_il Pi_jk)
                   (in an orthonormal basis of the space),
    gamma = k (D-k) / (D (D-1) (D+2)),   alpha = k/D - (D+1) gamma,
    E[Q A Q] = alpha Pi A Pi + gamma Pi A^T Pi + gamma tr(Pi A) Pi,

so for symmetric ``A``: ``E[Q A Q] = a Pi A Pi + b tr(Pi A) Pi`` with
``a = alpha + gamma``, ``b = gamma``.

One min-norm update on task ``n`` maps the error ``e = w - w_n`` to ``R e``; hence, for
the mean ``m`` and the second moment ``S`` of ``w`` (expectation over the data of the
round, ``w`` independent of it),

    E[e'] = rho Pi (m - w_n),                    rho = (d-s)/D,
    E[e' e'^T] = a Pi C Pi + b tr(Pi C) Pi,
    C = S - m w_n^T - w_n m^T + w_n w_n^T,

and ``m' = w_n + E[e']``, ``S' = w_n w_n^T + w_n E[e']^T + E[e'] w_n^T + E[e' e'^T]``.
The map is linear in the homogeneous triple ``(omega, omega*m, omega*S)``, which lets
the code propagate *sums* of conditioned states (one per past arrival) at the cost of
one state per task: the arrival-averaged ``G_t`` and ``F_t`` of SPEC §5.1 cost
``O(T N^2 k^2)`` per curve, where ``k = dim span(W, vhat) <= 2N`` (exact reduction:
every second moment is ``B_U B B_U^T + c I``, see :func:`_reduced_pool`), whatever
``d``. Derivation: book page ``derivations_exact``.

Metric conventions (same as ``moecl_lib.linear.engine``; SPEC §5.1): arrays have length
``T`` with index ``t-1`` = after round ``t``; errors are squared Euclidean parameter
distances ``||w_t^{(m_tau)} - w_{n_tau}||^2``; ``G_t = (1/t) sum_{tau<=t}``,
``F_t = (1/(t-1)) sum_{tau<t} (err_tau(t) - err_tau(tau))`` (``F[..., 0]`` is NaN),
``G_t^pool = (1/N) sum_n ||w_t^{(mhat(n))} - w_n||^2``. Expectations are over the task
draws (single expert) and the data of every round, for a fixed pool ``(W, vhat)``; a
leading batch axis of pools is supported.
"""

from __future__ import annotations

from moecl_lib.theory.exact_moe import moe_exact_given_routing
from moecl_lib.theory.exact_single import (
    ExactCurves,
    ExactLimits,
    single_expert_exact,
    single_expert_exact_for_pool,
    single_expert_limits_exact,
    unit_signal_directions,
)
from moecl_lib.theory.exact_update import (
    expected_update,
    haar_projector_sandwich,
    projector_moment_coeffs,
    update_coefficients,
)

__all__ = [
    "ExactCurves",
    "projector_moment_coeffs",
    "haar_projector_sandwich",
    "update_coefficients",
    "expected_update",
    "single_expert_exact",
    "single_expert_exact_for_pool",
    "ExactLimits",
    "single_expert_limits_exact",
    "moe_exact_given_routing",
    "unit_signal_directions",
]
