# Two commands do all the set-up: `make demo` and `make test`. Each builds what it needs.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test check fmt lint types imports unit system-deps clean readme

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

system-deps:
	scripts/system-deps

demo: $(STAMP) system-deps
	PATH=$(CURDIR)/$(BIN):$$PATH scripts/demo

# Two workers, a test file each at a time (its module fixtures stay in one worker); the suite
# waits on hosts, servers and databases far more than it computes. A short temporary root of
# this checkout's own (emptied at each run): supervisord's socket path must fit 108 bytes.
TEST_TMP := /tmp/sy-$(shell printf '%s' '$(CURDIR)' | md5sum | cut -c1-8)
test: $(STAMP) system-deps
	$(BIN)/pytest -q -n 2 --dist loadfile --basetemp=$(TEST_TMP) --durations=15

unit: $(STAMP)
	$(BIN)/pytest -q tests/unit

fmt: $(STAMP)
	$(BIN)/ruff format src tests bench scripts/*.py examples
	$(BIN)/ruff check --fix src tests bench examples

lint: $(STAMP)
	$(BIN)/ruff format --check src tests bench examples
	$(BIN)/ruff check src tests bench examples

types: $(STAMP)
	$(BIN)/mypy src

imports: $(STAMP)
	$(BIN)/lint-imports

check: lint types imports test

clean:
	rm -rf $(VENV) .shipyard .pytest_cache .mypy_cache .ruff_cache

readme: $(STAMP)
	$(BIN)/python scripts/update-readme
