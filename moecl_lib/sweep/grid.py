"""The grid file: a base configuration, swept axes (Cartesian product), runs per cell and a seed.

Format (YAML, read with ``yaml.safe_load``; every value is data, nothing is evaluated)::

    name: phase-diagram          # optional, a label stored in the result
    base:                        # ExperimentConfig fields shared by every cell
      setting: calibrated        # optional: "recalled" | "calibrated" (moecl_lib.calibration)
      n_experts: 20
      T: 600
    axes:                        # swept fields, one list each; cells = product, in this order
      signal_scale: [1.0, 2.0, 3.0]
      eta: [0.25, 0.5, 1.0]
    runs: 64                     # runs per cell (ExperimentConfig.n_runs)
    seed: 0                      # the study's seed
    window: null                 # optional: diagnostics window (moecl_lib.diagnostics.specialisation)
    paired: [termination]        # optional: axes left out of the cell seed, so that cells differing
                                 # only in them share their random numbers (paired comparisons)

``n_runs`` and ``seed`` belong to the grid, not to ``base`` or ``axes``. Every cell's configuration is built
and validated by :func:`parse_grid`, so an unknown field, an invalid value or an empty grid is a one-line
:class:`GridError` before anything runs.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from moecl_lib.analysis.calibration import SETTINGS, setting_config
from moecl_lib.config import ConfigError, ExperimentConfig

#: Version of the cell-key and cell-seed derivation (part of both: a change makes old cells stale).
FORMAT_VERSION = 1
TOP_KEYS = ("name", "base", "axes", "runs", "seed", "window", "paired")
GRID_LEVEL = ("n_runs", "seed")
CONFIG_FIELDS = tuple(f.name for f in dataclasses.fields(ExperimentConfig))
FIELDS = CONFIG_FIELDS + ("setting",)


class GridError(ValueError):
    """A grid file is malformed (the message says where); raised before any cell runs."""


@dataclass(frozen=True)
class GridSpec:
    """A validated grid. ``axes`` keeps the file's order; values are plain scalars (int, float, str,
    bool, None)."""

    name: str
    base: dict[str, Any]
    axes: dict[str, tuple[Any, ...]]
    runs: int
    seed: int
    window: int | None = None
    paired: tuple[str, ...] = ()

    @property
    def shape(self) -> tuple[int, ...]:
        """Number of values per axis."""
        return tuple(len(v) for v in self.axes.values())

    @property
    def n_cells(self) -> int:
        return math.prod(self.shape)

    def cells(self) -> Iterator[dict[str, Any]]:
        """Each cell's swept values (``{axis: value}``), in row-major order of the axes."""
        names = list(self.axes)
        for values in itertools.product(*self.axes.values()):
            yield dict(zip(names, values))

    def params(self, cell: Mapping[str, Any]) -> dict[str, Any]:
        """Base values overridden by the cell's swept values."""
        return {**self.base, **cell}

    def config(self, cell: Mapping[str, Any]) -> ExperimentConfig:
        """The validated configuration of one cell (runs and the cell's own seed included)."""
        return build_config(self.params(cell), self.runs, cell_seed(self, cell))

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "base": dict(self.base),
            "axes": {k: list(v) for k, v in self.axes.items()},
            "runs": self.runs,
            "seed": self.seed,
            "window": self.window,
            "paired": list(self.paired),
        }


def build_config(params: Mapping[str, Any], runs: int, seed: int) -> ExperimentConfig:
    """``ExperimentConfig`` of ``params`` (a ``setting`` key selects a named setting, whose values the
    other keys override), with ``n_runs = runs`` and ``seed = seed``."""
    kw = dict(params)
    setting = kw.pop("setting", None)
    if setting is None:
        return ExperimentConfig(**kw, n_runs=runs, seed=seed)
    n_experts = kw.pop("n_experts", None)
    if n_experts is None:
        raise ConfigError("n_experts is required with a setting")
    return setting_config(setting, n_experts, **kw, n_runs=runs, seed=seed)


def canonical(params: Mapping[str, Any]) -> str:
    """Canonical JSON of a cell's parameters (sorted keys; ints and floats kept apart)."""
    return json.dumps(dict(params), sort_keys=True, separators=(",", ":"))


def cell_key(spec: GridSpec, cell: Mapping[str, Any]) -> str:
    """16-hex-digit name of a cell's result: a hash of its parameters, runs, the study seed and the
    window. Equal keys mean equal results, whatever grid the cell belongs to."""
    text = canonical(
        {
            "params": spec.params(cell),
            "runs": spec.runs,
            "seed": spec.seed,
            "window": spec.window,
            "paired": sorted(spec.paired),
            "format": FORMAT_VERSION,
        }
    )
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def cell_seed(spec: GridSpec, cell: Mapping[str, Any]) -> int:
    """The seed of one cell, in [0, 2^31): ``SeedSequence`` of the study seed and a hash of the cell's
    parameters, except the ``paired`` axes. It does not depend on the other cells, so cells can be added
    to a grid or run anywhere."""
    params = {k: v for k, v in spec.params(cell).items() if k not in spec.paired}
    digest = hashlib.sha256(canonical(params).encode()).digest()
    words = np.frombuffer(digest[:16], dtype="<u4").tolist()
    ss = np.random.SeedSequence([spec.seed, FORMAT_VERSION, *words])
    return int(ss.generate_state(1, dtype=np.uint32)[0] >> 1)


def _scalar(value: Any, where: str) -> Any:
    if isinstance(value, bool) or value is None or isinstance(value, (int, float, str)):
        return value
    raise GridError(f"{where}: {value!r} must be a number, a string, a boolean or null")


def _int(value: Any, where: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise GridError(f"{where}: {value!r} must be an integer >= {low}")
    return value


def parse_grid(data: Any, source: str = "grid") -> GridSpec:
    """Validate a grid given as parsed YAML data; every cell's configuration is built once."""
    if not isinstance(data, Mapping):
        raise GridError(f"{source}: must be a mapping with keys {list(TOP_KEYS)}")
    unknown = sorted(set(data) - set(TOP_KEYS))
    if unknown:
        raise GridError(
            f"{source}: unknown key(s) {unknown}; allowed: {list(TOP_KEYS)}"
        )
    base = data.get("base") or {}
    axes = data.get("axes")
    if not isinstance(base, Mapping):
        raise GridError(f"{source}: base must be a mapping of configuration fields")
    if not isinstance(axes, Mapping) or not axes:
        raise GridError(
            f"{source}: axes must map at least one field to a list of values"
        )
    for where, names in (("base", base), ("axes", axes)):
        for name in names:
            if name in GRID_LEVEL:
                raise GridError(
                    f"{source}: {where}.{name}: runs and seed are set at the top of the grid"
                )
            if name not in FIELDS:
                raise GridError(
                    f"{source}: {where}.{name}: unknown parameter; allowed: {list(FIELDS)}"
                )
    both = sorted(set(base) & set(axes))
    if both:
        raise GridError(f"{source}: {both} both in base and in axes")
    clean_axes: dict[str, tuple[Any, ...]] = {}
    for name, values in axes.items():
        if not isinstance(values, list) or not values:
            raise GridError(f"{source}: axes.{name} must be a non-empty list")
        vals = tuple(_scalar(v, f"{source}: axes.{name}") for v in values)
        if len(set(map(repr, vals))) != len(vals):
            raise GridError(f"{source}: axes.{name} repeats a value: {list(vals)}")
        clean_axes[str(name)] = vals
    setting = base.get("setting")
    if setting is not None and setting not in SETTINGS:
        raise GridError(f"{source}: base.setting={setting!r}: one of {list(SETTINGS)}")
    window = data.get("window")
    paired = data.get("paired") or []
    if not isinstance(paired, list) or any(p not in clean_axes for p in paired):
        raise GridError(f"{source}: paired must list axes of the grid, got {paired!r}")
    spec = GridSpec(
        name=str(data.get("name") or Path(source).stem),
        base={str(k): _scalar(v, f"{source}: base.{k}") for k, v in base.items()},
        axes=clean_axes,
        runs=_int(data.get("runs"), f"{source}: runs", 1),
        seed=_int(data.get("seed", 0), f"{source}: seed", 0),
        window=None if window is None else _int(window, f"{source}: window", 1),
        paired=tuple(str(p) for p in paired),
    )
    for cell in spec.cells():
        try:
            spec.config(cell)
        except (ConfigError, TypeError, ValueError) as exc:
            raise GridError(f"{source}: cell {cell}: {exc}") from None
    return spec


def load_grid(path: str | Path) -> GridSpec:
    """Read and validate a grid file (``yaml.safe_load``)."""
    p = Path(path)
    if not p.is_file():
        raise GridError(f"{p}: no such grid file")
    try:
        data = yaml.safe_load(p.read_text())
    except yaml.YAMLError as exc:
        raise GridError(f"{p}: not valid YAML ({exc.__class__.__name__})") from None
    return parse_grid(data, str(p))
