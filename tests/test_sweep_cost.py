"""The cost model of a grid on many cores (moecl_lib.sweep.cost), by hand."""

from __future__ import annotations

import pytest

from moecl_lib.sweep.cost import Rates, cost_table, grid_cost
from moecl_lib.sweep.grid import parse_grid

RATES = Rates(
    cpu_per_run_round=2e-6,
    overhead_per_cell=0.01,
    startup=10.0,
    read_per_cell=0.005,
    bytes_per_cell=20e3,
    scheduler_per_task=1e-3,
)


def test_hand_computed_cost():
    # 450 cells x 64 runs x 800 rounds: a cell is 64*800*2e-6 + 0.01 = 0.1124 s
    c = grid_cost(450, 64, 800, RATES, 1000)
    assert c.compute == pytest.approx(0.1124)  # one wave
    assert c.scheduler == pytest.approx(0.45)
    assert c.assembly == pytest.approx(2.25)
    assert c.wall == pytest.approx(10.0 + 0.45 + 2.25)
    assert c.bottleneck == "start-up"
    assert c.core_hours == pytest.approx(450 * 0.1124 / 3600)
    assert c.storage_bytes == pytest.approx(9e6)
    # 2,500 cells on 1,000 cores: three waves
    assert grid_cost(2500, 64, 800, RATES, 1000).compute == pytest.approx(3 * 0.1124)


def test_bottleneck_moves_to_compute_with_long_cells():
    c = grid_cost(4500, 6400, 8000, RATES, 1000)  # 102.4 s per cell, 5 waves
    assert c.compute == pytest.approx(5 * (6400 * 8000 * 2e-6 + 0.01))
    assert c.bottleneck == "compute"


def test_bad_sizes_and_table():
    with pytest.raises(ValueError, match="cores"):
        grid_cost(10, 1, 1, RATES, 0)
    spec = parse_grid(
        {"name": "g", "base": {"T": 50}, "axes": {"eta": [0.1, 0.2]}, "runs": 4}
    )
    text = cost_table(spec, RATES, (1, 10), 1000)
    assert "grid g: 2 cells x 4 runs x T=50" in text
    assert text.splitlines()[-1].split()[:2] == ["20", "40"]  # 10x cells, 10x runs
