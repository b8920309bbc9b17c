# moecl companion: set-up, notebooks, book and tests in one place. `make help` lists the targets.
#
#   make book    set up, execute every notebook under the paper profile, build the HTML book   (THE main job)
#   make test    set up, unit + statistical tests, nbval on the stored notebooks, book -W from their stored outputs
#
#   make lab     JupyterLab on 127.0.0.1 in notebooks/, on the project's kernel (re-run a chapter interactively)
#
# The set-up is idempotent: the venv is created only when missing, the lock (lock/dev.txt) is installed again only
# when it or pyproject.toml changed (stamp file inside the venv), `npm ci` only when package*.json changed.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-print-directory

# uv (unlike pip) compiles no bytecode at install, and PYTHONDONTWRITEBYTECODE=1 (set on this project's machines)
# would then make every process compile every module it imports, every time: the targets below let Python write
# the .pyc of what they import, once. COMPILE_BYTECODE=1 compiles the whole venv at install instead (~60 s of CPU).
unexport PYTHONDONTWRITEBYTECODE
COMPILE_BYTECODE ?= 0

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PROFILE ?= paper
BOOK_PROFILE ?= paper
JOBS ?= 2
# make book: a chapter whose inputs (library, notebook, parameters, lock, data, machine) are those of a chapter run
# kept in ~/.cache/moecl/notebooks ($$MOECL_CACHE_DIR) is reused, not re-run; CACHE=refresh re-runs and keeps every
# chapter, CACHE=off re-runs every chapter and keeps none (moecl_lib/tools/notebook_cache.py).
CACHE ?= use
SETUP_STAMP := $(VENV)/.moecl-setup-stamp
# Python environment: lock/dev.txt pins every package (exact version + sha256) for CPython 3.11 on Linux x86-64;
# `make lock` writes it with `uv pip compile` from pyproject.toml (dependencies + [dev]) and lock/venv.in.
LOCK := lock/dev.txt
LAB_LOCK := lock/lab.txt
UV_LOCK := lock/uv.txt
# uv | pip. uv (pinned in lock/uv.txt, installed with pip into $(VENV)/.uv, outside the venv's packages) installs
# the lock in seconds from its cache; pip (`pip install --require-hashes --no-deps -r $(LOCK)`) is the fallback,
# used as well when uv cannot be installed.
INSTALLER ?= uv
UV_DIR := $(VENV)/.uv
UV := $(UV_DIR)/bin/uv
LOCKPY := moecl_lib/tools/lockfile.py
# uv does not read pip.conf: `$(LOCKPY) sources` turns pip's configured index / extra indexes / find-links (local
# folders only where they exist) into uv arguments, plus PyTorch's CPU index where no local source has the CPU torch.
# unsafe-best-match = pip's behaviour (every index searched for every package); safe here, as every file is hashed.
UV_INDEX_FLAGS := --index-strategy unsafe-best-match
LOCK_FLAGS := --python-version 3.11 --python-platform x86_64-manylinux_2_28 --generate-hashes $(UV_INDEX_FLAGS) \
              --custom-compile-command "make lock" --quiet
LAB_VENV ?= .venv-lab
LAB_BIN := $(LAB_VENV)/bin
LAB_STAMP := $(LAB_VENV)/.moecl-lab-stamp
LAB_KERNEL_PREFIX := $(LAB_VENV)/moecl-kernel
LAB_PORT ?= 8888
LAB_ARGS ?=
MATHJAX_SRC := node_modules/mathjax/es5/tex-svg-full.js
MATHJAX := book/_vendor/mathjax/tex-svg-full.js
DATA_DIR ?= /usr/share/datasets/fashion-mnist
NBVAL_SANITIZE := notebooks/nbval_sanitize.cfg
HTML := book/_build/html
SCREENSHOT_DIR ?= book/_build/screenshots
CHROMIUM ?= chromium

# $(call run_pytest,ARGS,what): pytest, where exit status 5 ("no tests collected") is an explicit failure
define run_pytest
	@echo "== pytest $(1)"
	@rc=0; $(BIN)/python -m pytest $(1) || rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make: pytest collected NO tests for $(2): failing on purpose" >&2; exit 1; fi; \
	exit $$rc
endef

.PHONY: help setup lock lock-upgrade lab lab-check data notebooks book book-only test lint test-pytest test-unit test-nbval test-book check-html portability screenshot clean distclean

help:
	@echo "make setup                 venv ($(VENV)) = $(LOCK) (uv pip sync) + the project (-e, --no-deps), npm ci (MathJax), Fashion-MNIST if possible"
	@echo "make lock | lock-upgrade   refresh lock/*.txt from pyproject.toml (uv pip compile) | also move every pin to its newest version"
	@echo "make lab                   JupyterLab on http://127.0.0.1:$(LAB_PORT) in notebooks/, kernel = $(VENV) ($(LAB_LOCK) in $(LAB_VENV))"
	@echo "make lab-check             start make lab headless, run a chapter through its kernel API, stop it (not in CI)"
	@echo "make book                  setup + notebooks under the $(BOOK_PROFILE) profile + HTML book -> $(HTML)/index.html"
	@echo "                           (chapters with unchanged inputs reused from ~/.cache/moecl; CACHE=off re-runs all)"
	@echo "make test                  setup + pytest tests + nbval notebooks + book build -W (stored quick outputs)"
	@echo "make notebooks PROFILE=..  execute notebooks/*.ipynb into book/generated/ (PROFILE=paper|quick; JOBS=2 at once)"
	@echo "make portability           quick-profile chapter checks under other CPU kernels (VARIANTS=... to choose)"
	@echo "make book-only             rebuild the HTML from the existing book/generated/"
	@echo "make screenshot            headless-Chromium PNGs of every page, laptop and phone width -> $(SCREENSHOT_DIR)/ (not in CI)"
	@echo "make clean | distclean     remove build outputs | also the venv, node_modules and the MathJax copy"

# ---------------------------------------------------------------------------------------------- set-up

setup: $(SETUP_STAMP) $(MATHJAX) data

# --without-pip: pip comes from the lock (ensurepip would take ~10 s to install a pip that the lock then replaces)
$(BIN)/python:
	$(PYTHON) -m venv --without-pip $(VENV)

# $(call install_lock,PYTHON,LOCK): make the environment of PYTHON equal LOCK (uv pip sync: installs, upgrades and
# removes), with uv or, failing that, pip (which cannot remove what the lock does not list: check-venv reports it).
define install_lock
	@$(BIN)/python $(LOCKPY) check-python --python $(1)
	@if [ "$(INSTALLER)" = uv ] && $(MAKE) -s $(UV); then \
	  src="$$($(BIN)/python $(LOCKPY) sources --installer uv --pip-python $(PYTHON) $(2))"; \
	  echo "uv pip sync $(2) $$src"; \
	  $(UV) pip sync --python $(1) --require-hashes $(UV_INDEX_FLAGS) $(if $(filter 1,$(COMPILE_BYTECODE)),--compile-bytecode) \
	    $$src $(2); \
	else \
	  [ "$(INSTALLER)" = pip ] || echo "setup: uv unavailable, installing with pip (slower)"; \
	  $(1) -m pip --version >/dev/null 2>&1 || $(1) -m ensurepip --default-pip >/dev/null; \
	  src="$$($(BIN)/python $(LOCKPY) sources --installer pip --pip-python $(PYTHON) $(2))"; \
	  $(1) -m pip install --require-hashes --no-deps $$src -r $(2); \
	fi
endef

# with the pip of $(PYTHON) (it reads pip.conf), or, where $(PYTHON) has no pip, with the venv's own (ensurepip)
$(UV): $(UV_LOCK) | $(BIN)/python
	@pip="$(PYTHON) -m pip"; $$pip --version >/dev/null 2>&1 || { \
	  $(BIN)/python -m pip --version >/dev/null 2>&1 || $(BIN)/python -m ensurepip --default-pip >/dev/null; \
	  pip="$(BIN)/python -m pip"; }; \
	echo "$$pip install --require-hashes --no-deps --target $(UV_DIR) -r $(UV_LOCK)"; \
	$$pip install --quiet --require-hashes --no-deps --upgrade --target $(UV_DIR) -r $(UV_LOCK)
	@touch $@

# the lock, then the project itself (editable, --no-deps; built by the locked setuptools without isolation), then
# `pip freeze --all` must equal the lock and pyproject.toml must agree with it
$(SETUP_STAMP): $(LOCK) pyproject.toml | $(BIN)/python
	$(call install_lock,$(BIN)/python,$(LOCK))
	@if [ "$(INSTALLER)" = uv ] && [ -x $(UV) ]; then \
	  $(UV) pip install --python $(BIN)/python --quiet --offline --no-deps --no-build-isolation -e .; \
	else \
	  $(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .; \
	fi
	@$(BIN)/python $(LOCKPY) check-venv --python $(BIN)/python $(LOCK)
	@$(BIN)/python $(LOCKPY) check-pyproject
	@touch $@

# Refresh the locks from pyproject.toml (+ lock/venv.in, lock/uv.in), keeping the pinned versions that still fit;
# `make lock-upgrade` moves every package to its newest version. Then run `make setup` and commit lock/.
lock: $(UV)
	@src="$$($(BIN)/python $(LOCKPY) sources --installer uv --compile --pip-python $(PYTHON) $(LOCK))"; \
	echo "uv pip compile pyproject.toml --extra dev lock/venv.in -> $(LOCK)"; \
	$(UV) pip compile $(LOCK_FLAGS) $(LOCK_UPGRADE) $$src --extra dev pyproject.toml lock/venv.in -o $(LOCK); \
	echo "uv pip compile [lab] lock/venv.in, constrained by $(LOCK) -> $(LAB_LOCK)"; \
	$(BIN)/python $(LOCKPY) extra-requirements lab | \
	  $(UV) pip compile $(LOCK_FLAGS) $(LOCK_UPGRADE) $$src -c $(LOCK) - lock/venv.in -o $(LAB_LOCK); \
	echo "uv pip compile lock/uv.in -> $(UV_LOCK)"; \
	$(UV) pip compile $(LOCK_FLAGS) $(LOCK_UPGRADE) $$src lock/uv.in -o $(UV_LOCK)
	@if $(BIN)/python -c 'import packaging' 2>/dev/null; then $(BIN)/python $(LOCKPY) check-pyproject; \
	else echo "note: the pyproject/lock check needs the packaging module: make setup runs it"; fi
	@echo "$(LOCK) sha256 $$(sha256sum $(LOCK) | cut -c1-64)"

lock-upgrade:
	@$(MAKE) lock LOCK_UPGRADE=--upgrade

$(MATHJAX_SRC): package.json package-lock.json
	npm ci --no-audit --no-fund
	@touch $@

$(MATHJAX): $(MATHJAX_SRC)
	@mkdir -p $(@D)
	cp $< $@

# Fashion-MNIST (Debian package, offline-safe) for the deep-network chapters; best effort, never fails set-up.
data:
	@if [ -d "$(DATA_DIR)" ]; then \
	  echo "data: $(DATA_DIR) present"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "data: installing Debian package dataset-fashion-mnist (best effort)"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get install -y -qq --no-install-recommends dataset-fashion-mnist >/dev/null 2>&1 \
	  || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq --no-install-recommends dataset-fashion-mnist >/dev/null 2>&1; } \
	  || echo "data: NOTE: could not install dataset-fashion-mnist; chapters on Fashion-MNIST will not have their data"; \
	else \
	  echo "data: NOTE: $(DATA_DIR) is absent and this is not a root shell with apt-get;"; \
	  echo "      run 'sudo apt-get install dataset-fashion-mnist' for the Fashion-MNIST chapters"; \
	fi

# ---------------------------------------------------------------------------------------------- notebooks and book

notebooks: setup
	$(BIN)/moecl notebooks --profile $(PROFILE) --jobs $(JOBS)

book: setup
	$(BIN)/moecl notebooks --profile $(BOOK_PROFILE) --jobs $(JOBS) --cache $(CACHE)
	$(BIN)/moecl book
	@echo "open $(HTML)/index.html"

book-only:
	$(BIN)/moecl book

# ---------------------------------------------------------------------------------------------- tests

test: setup
	@$(MAKE) lint
	@$(MAKE) test-pytest
	@$(MAKE) test-book
	@$(MAKE) check-html

# ruff (configured in pyproject.toml): formatting and lint of the library, tests, scripts and notebooks
LINT_PATHS := moecl_lib tests scripts notebooks
lint:
	$(BIN)/ruff format --check --quiet $(LINT_PATHS)
	$(BIN)/ruff check --quiet $(LINT_PATHS)

# test-unit and test-nbval in one pytest run on $(JOBS) workers (pytest-xdist); --dist loadfile keeps each
# notebook's cells on one worker, in order, on one kernel.
NBVAL_FLAGS = --nbval-lax --nbval-current-env --nbval-sanitize-with $(NBVAL_SANITIZE)
# (tests/test_book_html.py checks the built book: check-html runs it after test-book has built it)
test-pytest:
	$(call run_pytest,-n $(JOBS) --dist loadfile $(NBVAL_FLAGS) --ignore=tests/test_book_html.py tests notebooks/,tests/ and notebooks/)

test-unit:
	$(call run_pytest,tests,tests/)

# nbval re-runs each committed notebook (kernel cwd = notebooks/) and compares the cells marked
# `# NBVAL_CHECK_OUTPUT`; $(NBVAL_SANITIZE) masks wall times and memory addresses in those cells.
test-nbval:
	$(call run_pytest,$(NBVAL_FLAGS) notebooks/,notebooks/)

# The committed notebooks hold quick-profile outputs that test-nbval has just re-executed and compared, so the
# CI book renders them as they are instead of executing every notebook a second time.
test-book:
	@rm -rf book/generated && mkdir -p book/generated && cp notebooks/*.ipynb book/generated/
	$(BIN)/moecl book

# What a reader sees in the built HTML: no test leftovers, every figure captioned, well-formed external links, no
# words about how the companion was built, and every chapter opening with its claim, verdict and key figure.
check-html:
	@test -f $(HTML)/index.html || { echo "no $(HTML)/index.html: run 'make test-book' first" >&2; exit 1; }
	$(call run_pytest,-q tests/test_book_html.py,tests/test_book_html.py)

# Every chapter compares its record with notebooks/expected/ at the tolerance of moecl_lib.claims.rule, under
# other torch / OpenBLAS / numba / numpy kernels (`.venv/bin/moecl portability --list` shows the variants).
VARIANTS ?=
portability: setup
	$(BIN)/moecl portability --jobs $(JOBS) $(if $(VARIANTS),--variants $(VARIANTS))

# ---------------------------------------------------------------------------------------------- interactive

# JupyterLab (lock/lab.txt, in its own venv: CI never installs it) on 127.0.0.1 only, serving notebooks/ so that a
# notebook's kernel runs in notebooks/ as under nbval. Its `python3` kernel is this project's venv: the kernelspec
# written by `ipykernel install --prefix $(LAB_KERNEL_PREFIX)` comes first on JUPYTER_PATH. Token: printed in the
# URL, or set JUPYTER_TOKEN. LAB_PORT=... for another port, LAB_ARGS=... for more jupyter-lab options.
$(LAB_BIN)/python:
	$(PYTHON) -m venv --without-pip $(LAB_VENV)

$(LAB_STAMP): $(LAB_LOCK) | $(LAB_BIN)/python $(SETUP_STAMP)
	$(call install_lock,$(LAB_BIN)/python,$(LAB_LOCK))
	@$(BIN)/python $(LOCKPY) check-venv --python $(LAB_BIN)/python $(LAB_LOCK)
	@touch $@

lab: setup $(LAB_STAMP)
	@$(BIN)/python -m ipykernel install --prefix $(CURDIR)/$(LAB_KERNEL_PREFIX) --name python3 \
	  --display-name "Python 3 (moecl, $(VENV))" >/dev/null
	@echo "make lab: JupyterLab on http://127.0.0.1:$(LAB_PORT)/lab, folder notebooks/, kernel python3 = $(BIN)/python; Ctrl-C stops it"
	JUPYTER_PATH=$(CURDIR)/$(LAB_KERNEL_PREFIX)/share/jupyter exec $(LAB_BIN)/jupyter lab --no-browser \
	  --ServerApp.ip=127.0.0.1 --ServerApp.port=$(LAB_PORT) --ServerApp.port_retries=0 \
	  --ServerApp.root_dir=$(CURDIR)/notebooks $(if $(filter 0,$(shell id -u)),--allow-root) $(LAB_ARGS)

# Headless check of `make lab`: start it on a free port with a token, check it listens on 127.0.0.1 only, run
# notebooks/$(LAB_CHECK_NOTEBOOK).ipynb cell by cell on the server's kernel (REST + websocket API), compare the
# checked cells with the stored outputs, stop the server.
LAB_CHECK_NOTEBOOK ?= prop4_single_expert
lab-check: setup $(LAB_STAMP)
	$(LAB_BIN)/python scripts/lab_check.py --notebook $(LAB_CHECK_NOTEBOOK) --make "$(MAKE)"

# ---------------------------------------------------------------------------------------------- reader's check

# Headless Chromium screenshots of every page of the built book, at 1400 x 900 (the first screen on a laptop) and
# 390 x 844 (a phone), to look at them as a reader would (math must be rendered: no raw \( \) left). Installs the
# Debian `chromium` package when missing and running as root. Optional; not part of CI. SCREENSHOT_PAGES=... for
# a few pages (paths under $(HTML) without .html), SCREENSHOT_SIZES=... for other window sizes.
SCREENSHOT_PAGES ?= $(patsubst $(HTML)/%.html,%,$(filter-out $(HTML)/genindex.html $(HTML)/search.html,$(wildcard $(HTML)/*.html $(HTML)/generated/*.html)))
SCREENSHOT_SIZES ?= 1400,900 390,844
screenshot:
	@test -f $(HTML)/index.html || { echo "no $(HTML)/index.html: run 'make book' first" >&2; exit 1; }
	@if ! command -v $(CHROMIUM) >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null; \
	  else echo "chromium not found: install it (apt-get install chromium) or set CHROMIUM=..." >&2; exit 1; fi; \
	fi
	@mkdir -p $(SCREENSHOT_DIR)
	@for page in $(SCREENSHOT_PAGES); do for size in $(SCREENSHOT_SIZES); do \
	  [ -f "$(HTML)/$$page.html" ] || { echo "skip $$page (not built)"; continue; }; \
	  profile=$$(mktemp -d); out="$(SCREENSHOT_DIR)/$$(basename $$page)-$${size%%,*}.png"; \
	  timeout 120 $(CHROMIUM) --headless --no-sandbox --disable-gpu --disable-quic --disable-background-networking \
	    --disable-component-update --disable-sync --no-first-run --user-data-dir="$$profile" \
	    --window-size=$$size --hide-scrollbars --virtual-time-budget=10000 \
	    --screenshot="$$out" "file://$(CURDIR)/$(HTML)/$$page.html" >/dev/null 2>&1 || true; \
	  rm -rf "$$profile"; \
	  if [ -s "$$out" ]; then echo "screenshot: $$out"; else echo "screenshot FAILED: $$page" >&2; exit 1; fi; \
	done; done

# ---------------------------------------------------------------------------------------------- cleaning

clean:
	rm -rf book/_build book/generated results notebooks/results .pytest_cache tests/.pytest_cache

distclean: clean
	rm -rf $(VENV) $(LAB_VENV) node_modules book/_vendor
