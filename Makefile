VENV ?= .venv
STAMP := $(VENV)/.setup-done
TOOLS_STAMP := $(VENV)/.test-tools-done

.PHONY: setup test-tools demo test test-fast lint bench clean labelstudio

setup: $(STAMP)

$(STAMP): pyproject.toml scripts/setup.sh
	VENV=$(VENV) bash scripts/setup.sh
	touch $(STAMP)

test-tools: $(TOOLS_STAMP)   # Tesseract + Chromium: for the tests and benchmarks only, not `make demo`

$(TOOLS_STAMP): $(STAMP)
	TEST_TOOLS=1 APT_ONLY=1 VENV=$(VENV) bash scripts/setup.sh
	touch $(TOOLS_STAMP)

labelstudio:               # Label Studio in its own venv (.venv-labelstudio) for labeling sprints and their e2e test
	bash scripts/setup-labelstudio.sh

demo: setup
	$(VENV)/bin/tagloop demo

# the suite runs in TEST_WORKERS processes (pytest-xdist), a test module stays in one process (its fixtures are
# built once); 2 workers on 2 cores: 566 s instead of 858-951 s in one process (2026-12-07, Intel Xeon)
TEST_WORKERS ?= 2
PYTEST = $(VENV)/bin/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile

test: lint
	$(PYTEST) tests

test-fast: lint             # unit tests only: skips the tests marked slow (end to end, training, subprocesses)
	$(PYTEST) -m "not slow" tests

lint: setup test-tools
	$(VENV)/bin/ruff check .

bench: setup test-tools
	$(VENV)/bin/pip install -q -e ".[full,dev,bench]"
	$(VENV)/bin/python -m benchmarks.run_all

clean:
	rm -rf .tagloop .pytest_cache
