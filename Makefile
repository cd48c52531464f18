VENV ?= .venv
STAMP := $(VENV)/.setup-done

.PHONY: setup demo test bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml scripts/setup.sh
	VENV=$(VENV) bash scripts/setup.sh
	touch $(STAMP)

demo: setup
	$(VENV)/bin/tagloop demo

test: setup
	$(VENV)/bin/python -m pytest -q tests

bench: setup
	$(VENV)/bin/pip install -q -e ".[dev,bench]"
	$(VENV)/bin/python -m benchmarks.run_all

clean:
	rm -rf .tagloop .pytest_cache
