"""MoE after specialisation: decay, pre-specialisation residual and cluster floors
(Theorems 1-2; SPEC §6.6-§6.7).

Everything here is **this project's derivation** (SPEC tag ``[D]``), not a quote of the
paper, whose exact Theorem 1/2 expressions were not available to us. Derivations: book
page ``derivations_moe``.

Setting ("specialised routing"): from round ``t0`` on, every round's task is uniform
over the pool (probability ``q_n = 1/N``) and is sent to an expert of its expert set,
each member with equal probability (Proposition 3), with the choice **independent of the
data of the round**. Expert ``m`` of set ``M_k`` (serving cluster ``k``, or the single
task ``n`` when clusters are singletons) is then updated in a round with probability
``p_m = (N_k/N) / |M_k|`` (``= 1/(N |M_n|)`` for single tasks), independently across
rounds.

One min-norm update on task ``n`` maps the error ``e = w - w_n`` to ``R e`` with
``R = I - P_t`` a uniformly random projector (exact Haar moments, see
:mod:`moecl_lib.theory.exact`):

* isotropic columns (``signal="none"``): ``E[R] = E[R^T R] = rho I`` with
  ``rho = r = (d-s)/d``;
* Definition 1 (one column ``beta v_n``): ``R`` lives in ``vhat_n^perp``,
  ``E[R] = E[R^T R] = rho Pi_n`` with ``rho = (d-s)/(d-1)`` and
  ``Pi_n = I - vhat_n vhat_n^T``: the first update removes the signal component of the
  error, every later one shrinks the rest by ``rho`` on average.

Hence (single-task expert, ``k = t - t0`` rounds, ``K ~ Bin(k, p)`` updates,
``delta = w_n - u`` for a fixed target ``u``, ``e0 = w_{t0} - w_n``)::

    E||w_t - u||^2 = (1-p)^k ||e0 + delta||^2
                     + [a^k - (1-p)^k] (||Pi e0||^2 + 2 (Pi e0).delta)
                     + [1 - (1-p)^k] ||delta||^2,
    a = 1 - p (1 - rho).

For isotropic columns (``Pi = I``) this is
``a^k ||w_{t0} - u||^2 + (1 - a^k) ||w_n - u||^2``: the geometric decay
``(1 - p_m(1 - r))^{t - t0}`` of SPEC §6.6. Which formula is exact for which generator
(isotropic columns, ``vhat=None`` | Definition 1, any ``vhat``):

* single-task decay / post-specialisation: exact (closed form) | exact (closed form
  above);
* clustered experts from a realised state: exact (scalar recursion) | not here: use
  ``moe_exact_given_routing``;
* ideal MoE from round 1 (:func:`oracle_moe_exact`): exact | exact (via
  ``single_expert_exact``);
* cluster floor, SPEC formula: exact | exact for G if the cluster shares one signal
  direction; otherwise approximate;
* cluster floors, :func:`cluster_floors_exact`: exact | exact.

"Exact" means: equal to the expectation over the data (and the random in-set routing)
for a fixed pool, given that the routing does not depend on the round's data. Algorithm
1's frozen router sees the Gaussian columns through ``X_t 1``, so for Algorithm-1 runs
these formulas are (very good) approximations.

Metric conventions are those of :mod:`moecl_lib.linear.engine` (SPEC §5.1): arrays of
length ``T``, index ``t-1`` = after round ``t``;
``G_t = (1/t) sum_{tau<=t} ||w_t^{(m_tau)} - w_{n_tau}||^2`` (arrival-averaged),
``F_t = (1/(t-1)) sum_{tau<t} (err_tau(t) - err_tau(tau))`` (NaN at ``t = 1``; may be
negative), so that ``(t-1) F_t = t G_t - sum_{tau<=t} err_tau(tau)``.
"""

from __future__ import annotations

from moecl_lib.theory.oracle import (
    OracleCurves,
    cluster_floor,
    cluster_floors_exact,
    convergence_round,
    oracle_moe_exact,
)
from moecl_lib.theory.post_specialisation import (
    PostSpecialisation,
    post_specialisation_curves,
    pre_specialisation_residual,
    state_at,
)
from moecl_lib.theory.specialised_routing import (
    balanced_expert_sets,
    selection_probabilities,
    specialised_decay_rate,
    specialised_error,
    update_factor,
)

__all__ = [
    "update_factor",
    "specialised_decay_rate",
    "balanced_expert_sets",
    "selection_probabilities",
    "specialised_error",
    "PostSpecialisation",
    "post_specialisation_curves",
    "pre_specialisation_residual",
    "cluster_floor",
    "cluster_floors_exact",
    "OracleCurves",
    "oracle_moe_exact",
    "convergence_round",
    "state_at",
]
