"""Tooling around the science: command line, notebook runner, book, benchmark, lock.

Owns the ``moecl`` command (``cli``), the papermill runner (``runner``), the book's
status page (``status``), the engine benchmark (``bench``), the portability variants
(``portability``) and the environment lock (``lockfile``, also run as a script by the
Makefile).

May import: every other package of ``moecl_lib``; nothing of ``moecl_lib`` imports
``tools``.
"""
