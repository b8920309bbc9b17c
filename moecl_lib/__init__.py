"""moecl_lib: companion of "Theory on Mixture-of-Experts in Continual Learning".

Subpackages by concept, each importing only the layers below it
(``tests/test_layout.py`` holds the order and checks that there is no import cycle):

====================  ============================================================
``config``            configurations and their validation (bottom layer)
``theory``            closed forms and exact expectations
``figures``           figure style, figure/CSV files, text tables
``linear``            the linear model: data, experts, router rules, engine, kernel
``analysis``          metrics, routing diagnostics, convergence, sweeps, settings
``deep``              CNN experts on Fashion-MNIST
``sweep``             study grids on Dask: cells, seeds, netCDF store
``expert_gate``       the Expert Gate baseline
``claims``            one module per chapter: readings, verdicts, records
``tools``             command line, notebook runner, book status, benchmark, lock
====================  ============================================================

The names in :data:`__all__` are the public API; they are imported on first use (so
that ``import moecl_lib`` stays light: torch is loaded only by the deep packages).
"""

from __future__ import annotations

import importlib
from typing import Any

_API = {
    "ConfigError": "moecl_lib.config",
    "ExperimentConfig": "moecl_lib.config",
    "TaskPool": "moecl_lib.linear.tasks",
    "make_task_pool": "moecl_lib.linear.tasks",
    "RunCurves": "moecl_lib.linear.results",
    "SimulationResult": "moecl_lib.linear.engine",
    "simulate": "moecl_lib.linear.engine",
    "gap_test": "moecl_lib.linear.routing",
    "router_coefficients": "moecl_lib.linear.routing",
    "reference_simulate": "moecl_lib.linear.reference",
    "mean_se": "moecl_lib.analysis.metrics",
    "load_entropy": "moecl_lib.analysis.metrics",
    "SETTINGS": "moecl_lib.analysis.calibration",
    "DeepMoE": "moecl_lib.deep.moe",
    "DeepMoEConfig": "moecl_lib.deep.moe",
    "ExpertGate": "moecl_lib.expert_gate.gate",
    "Record": "moecl_lib.claims.record",
    "text_table": "moecl_lib.figures.tables",
}

__all__ = sorted(_API)


def __getattr__(name: str) -> Any:
    """Import a public name (or a subpackage) on first use (PEP 562)."""
    if name in _API:
        value = getattr(importlib.import_module(_API[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'moecl_lib' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
