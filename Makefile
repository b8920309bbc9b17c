# moecl companion: set-up, notebooks, book and tests in one place. `make help` lists the targets.
#
#   make book    set up, execute every notebook under the paper profile, build the HTML book   (THE main job)
#   make test    set up, unit + statistical tests, nbval on the stored notebooks, book -W from their stored outputs
#
# The set-up is idempotent: the venv is created only when missing, `pip install -e '.[dev]'` reruns only when
# pyproject.toml changed (stamp file inside the venv), `npm ci` only when package*.json changed.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-print-directory

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PROFILE ?= paper
BOOK_PROFILE ?= paper
JOBS ?= 2
SETUP_STAMP := $(VENV)/.moecl-setup-stamp
MATHJAX_SRC := node_modules/mathjax/es5/tex-svg-full.js
MATHJAX := book/_vendor/mathjax/tex-svg-full.js
DATA_DIR ?= /usr/share/datasets/fashion-mnist
NBVAL_SANITIZE := notebooks/nbval_sanitize.cfg
HTML := book/_build/html
SCREENSHOT_DIR ?= book/_build/screenshots
SCREENSHOT_PAGES ?= intro setting fidelity status generated/prop4_single_expert
CHROMIUM ?= chromium

# $(call run_pytest,ARGS,what): pytest, where exit status 5 ("no tests collected") is an explicit failure
define run_pytest
	@echo "== pytest $(1)"
	@rc=0; $(BIN)/python -m pytest $(1) || rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make: pytest collected NO tests for $(2): failing on purpose" >&2; exit 1; fi; \
	exit $$rc
endef

.PHONY: help setup data notebooks book book-only test test-unit test-nbval test-book portability screenshot clean distclean

help:
	@echo "make setup                 venv ($(VENV)), pip install -e '.[dev]', npm ci (MathJax), Fashion-MNIST if possible"
	@echo "make book                  setup + notebooks under the $(BOOK_PROFILE) profile + HTML book -> $(HTML)/index.html"
	@echo "make test                  setup + pytest tests + nbval notebooks + book build -W (stored quick outputs)"
	@echo "make notebooks PROFILE=..  execute notebooks/*.ipynb into book/generated/ (PROFILE=paper|quick; JOBS=2 at once)"
	@echo "make portability           quick-profile chapter checks under other CPU kernels (VARIANTS=... to choose)"
	@echo "make book-only             rebuild the HTML from the existing book/generated/"
	@echo "make screenshot            headless-Chromium PNGs of a few pages -> $(SCREENSHOT_DIR)/ (not in CI)"
	@echo "make clean | distclean     remove build outputs | also the venv, node_modules and the MathJax copy"

# ---------------------------------------------------------------------------------------------- set-up

setup: $(SETUP_STAMP) $(MATHJAX) data

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(SETUP_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -e '.[dev]'
	@touch $@

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
	$(BIN)/moecl notebooks --profile $(BOOK_PROFILE) --jobs $(JOBS)
	$(BIN)/moecl book
	@echo "open $(HTML)/index.html"

book-only:
	$(BIN)/moecl book

# ---------------------------------------------------------------------------------------------- tests

test: setup
	@$(MAKE) test-unit
	@$(MAKE) test-nbval
	@$(MAKE) test-book

test-unit:
	$(call run_pytest,tests,tests/)

# nbval re-runs each committed notebook (kernel cwd = notebooks/) and compares the cells marked
# `# NBVAL_CHECK_OUTPUT`; $(NBVAL_SANITIZE) masks wall times and memory addresses in those cells.
test-nbval:
	$(call run_pytest,--nbval-lax --nbval-current-env --nbval-sanitize-with $(NBVAL_SANITIZE) notebooks/,notebooks/)

# The committed notebooks hold quick-profile outputs that test-nbval has just re-executed and compared, so the
# CI book renders them as they are instead of executing every notebook a second time.
test-book:
	@rm -rf book/generated && mkdir -p book/generated && cp notebooks/*.ipynb book/generated/
	$(BIN)/moecl book

# Every chapter compares its record with notebooks/expected/ at the tolerance of moecl_lib.claims.rule, under
# other torch / OpenBLAS / numba / numpy kernels (`.venv/bin/moecl portability --list` shows the variants).
VARIANTS ?=
portability: setup
	$(BIN)/moecl portability --jobs $(JOBS) $(if $(VARIANTS),--variants $(VARIANTS))

# ---------------------------------------------------------------------------------------------- reader's check

# Headless Chromium screenshots of the built book (math must be rendered: no raw \( \) left). Installs the
# Debian `chromium` package when missing and running as root. Optional; not part of CI.
screenshot:
	@test -f $(HTML)/index.html || { echo "no $(HTML)/index.html: run 'make book' first" >&2; exit 1; }
	@if ! command -v $(CHROMIUM) >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null; \
	  else echo "chromium not found: install it (apt-get install chromium) or set CHROMIUM=..." >&2; exit 1; fi; \
	fi
	@mkdir -p $(SCREENSHOT_DIR)
	@for page in $(SCREENSHOT_PAGES); do \
	  [ -f "$(HTML)/$$page.html" ] || { echo "skip $$page (not built)"; continue; }; \
	  profile=$$(mktemp -d); out="$(SCREENSHOT_DIR)/$$(basename $$page).png"; \
	  timeout 120 $(CHROMIUM) --headless --no-sandbox --disable-gpu --disable-quic --disable-background-networking \
	    --disable-component-update --disable-sync --no-first-run --user-data-dir="$$profile" \
	    --window-size=1280,1600 --hide-scrollbars --virtual-time-budget=10000 \
	    --screenshot="$$out" "file://$(CURDIR)/$(HTML)/$$page.html" >/dev/null 2>&1 || true; \
	  rm -rf "$$profile"; \
	  if [ -s "$$out" ]; then echo "screenshot: $$out"; else echo "screenshot FAILED: $$page" >&2; exit 1; fi; \
	done

# ---------------------------------------------------------------------------------------------- cleaning

clean:
	rm -rf book/_build book/generated results notebooks/results .pytest_cache tests/.pytest_cache

distclean: clean
	rm -rf $(VENV) node_modules book/_vendor
