"""What the Proposition 2 and 3 chapters (:mod:`moecl_lib.claims.prop2_no_termination`,
:mod:`moecl_lib.claims.prop3_termination`) share: their parameters, the base
configuration of a setting of :mod:`moecl_lib.analysis.calibration`, and the loop that
measures each setting, records its quantities and reads its claim check.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from moecl_lib.analysis.calibration import setting_config
from moecl_lib.claims.rule import ClaimCheck, Quantity
from moecl_lib.config import ExperimentConfig

SETTINGS: tuple[str, ...] = ("calibrated", "recalled")
"""The settings a chapter runs, in this order."""

D = TypeVar("D")


@dataclass(frozen=True)
class SettingParams:
    """The notebook's ``parameters`` cell (quick-profile defaults; ``out_dir`` is not a
    parameter of the computation and stays out)."""

    n_experts: int = 20
    T: int = 2000
    n_runs: int = 48
    seed: int = 0
    window: int = 100


def setting_base(setting: str, p: SettingParams) -> ExperimentConfig:
    """The setting's configuration with ``n_experts`` experts, ``T``, ``n_runs``,
    ``seed``, and a gate snapshot every ``window`` rounds."""
    return setting_config(
        setting,
        p.n_experts,
        T=p.T,
        n_runs=p.n_runs,
        seed=p.seed,
        snapshot_every=p.window,
    )


def run_settings(
    measure: Callable[[str], D],
    quantities_of: Callable[[D], dict[str, Quantity]],
    check_of: Callable[[D, dict[str, Quantity]], ClaimCheck],
    configs_of: Callable[[str, D], dict[str, Any]],
) -> tuple[dict[str, D], list[Quantity], list[ClaimCheck], dict[str, Any]]:
    """For every setting of :data:`SETTINGS`: measure it, record its quantities, read
    its check and name its configurations. Returns ``(data, quantities, checks,
    configs)``."""
    data: dict[str, D] = {}
    quantities: list[Quantity] = []
    checks: list[ClaimCheck] = []
    configs: dict[str, Any] = {}
    for setting in SETTINGS:
        sd = measure(setting)
        data[setting] = sd
        q = quantities_of(sd)
        quantities.extend(q.values())
        checks.append(check_of(sd, q))
        configs.update(configs_of(setting, sd))
    return data, quantities, checks, configs
