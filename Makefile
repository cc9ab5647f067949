# Two commands for a fresh machine: `make demo` and `make test`. Both create .venv and install
# everything first (torch/torchaudio pinned to the builds that install from local disk).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
OUT    ?= demo_out

.PHONY: setup demo test lint bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet torch==2.14.1 torchaudio==2.11.0
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(BIN)/audiofcn demo --out $(OUT)

test: setup
	$(BIN)/ruff check src tests recipes benchmarks data_manifests
	$(BIN)/pytest

lint: setup
	$(BIN)/ruff check src tests recipes benchmarks data_manifests

bench: setup
	$(BIN)/python benchmarks/frontend.py

clean:
	rm -rf $(VENV) $(OUT) build *.egg-info src/*.egg-info
