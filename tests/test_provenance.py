"""Source digests: what each one covers, and that the code computing a grid's cells
imports nothing the compute digest leaves out."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from moecl_lib import provenance as pv


def _package(tmp_path: Path) -> Path:
    pkg = tmp_path / "moecl_lib"
    for sub in ("linear", "claims", "figures", "tools"):
        (pkg / sub).mkdir(parents=True)
        (pkg / sub / "m.py").write_text(f"NAME = {sub!r}\n")
    (pkg / "config.py").write_text("X = 1\n")
    return pkg


def test_digests_cover_what_they_say(tmp_path):
    pkg = _package(tmp_path)
    lib, comp = pv.library_digest(pkg), pv.compute_digest.__wrapped__(pkg)
    assert len(lib) == 64 and lib != comp

    def after(path: Path, text: str) -> tuple[str, str]:
        old = path.read_text()
        path.write_text(text)
        try:
            return pv.library_digest(pkg), pv.compute_digest.__wrapped__(pkg)
        finally:
            path.write_text(old)

    new_lib, new_comp = after(pkg / "linear" / "m.py", "NAME = 'engine v2'\n")
    assert new_lib != lib and new_comp != comp  # the engine: both
    new_lib, new_comp = after(pkg / "claims" / "m.py", "NAME = 'chapter v2'\n")
    assert new_lib != lib and new_comp == comp  # a chapter: the book's, not the grid's
    new_lib, new_comp = after(pkg / "tools" / "m.py", "NAME = 'runner v2'\n")
    assert (new_lib, new_comp) == (lib, comp)  # the tooling: neither
    (pkg / "linear" / "__pycache__").mkdir()
    (pkg / "linear" / "__pycache__" / "m.cpython-311.pyc").write_bytes(b"\0")
    assert pv.library_digest(pkg) == lib


def test_a_grid_cell_imports_nothing_the_compute_digest_leaves_out():
    code = (
        "import sys\n"
        "from moecl_lib.sweep import execute\n"
        "execute.run_cell({'n_tasks': 3, 'd': 6, 's': 3, 'T': 20, 'n_experts': 3},"
        " 2, 0, 5)\n"
        "left_out = ('claims', 'figures', 'tools')\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[:2][-1] in left_out"
        " and m.startswith('moecl_lib.'))\n"
        "print(bad)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"
