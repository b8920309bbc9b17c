"""The portability matrix's variants (moecl_lib.tools.portability)."""

from __future__ import annotations

import pytest

from moecl_lib.tools import portability
from moecl_lib.tools.cli import main


def test_variants_cover_each_kernel_family(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(portability, "cpu_flags", lambda: {"avx", "avx2", "fma"})
    table = portability.variants()
    assert table["as-is"] == {} and table["aten-default"] == {
        "ATEN_CPU_CAPABILITY": "default"
    }
    assert table["openblas-haswell"] == {"OPENBLAS_CORETYPE": "Haswell"}
    assert table["openblas-sandybridge"] == {"OPENBLAS_CORETYPE": "Sandybridge"}
    assert table["numba-generic"] == {"NUMBA_CPU_NAME": "generic"}
    assert "aten-avx512" not in table and "numpy-no-avx512" not in table, (
        "a CPU without AVX-512 gets no such variant"
    )
    assert table["other-machine"]["ATEN_CPU_CAPABILITY"] == "default"


def test_unsupported_variant_is_a_one_line_error(capsys: pytest.CaptureFixture[str]):
    assert main(["portability", "--variants", "no-such-kernel"]) == 2
    err = capsys.readouterr().err
    assert (
        "unknown or unsupported variant(s) ['no-such-kernel']" in err
        and "Traceback" not in err
    )
