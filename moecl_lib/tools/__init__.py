"""Tooling around the science: command line, notebook runner, book, benchmark, lock.

Owns the ``moecl`` command (``cli``), the papermill runner (``runner``; its inputs in
``notebook_profiles``, its failure reports in ``cell_failures``), the book build
(``book_build``) and the book's generated pages (``status``, ``glance``, ``questions``,
``claim_tables``), the engine benchmark (``bench``; ``bench_timing``,
``bench_report``), the sweep command (``sweep_cli``), the portability variants
(``portability``) and the environment lock (``lockfile``, also run as a script by the
Makefile).

May import: every other package of ``moecl_lib``; nothing of ``moecl_lib`` imports
``tools``.
"""
