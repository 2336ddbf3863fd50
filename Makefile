# telugu-s2s: `make demo` and `make test` do all of the set-up on a fresh machine.
SHELL := /bin/bash
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PYTHON := $(BIN)/python
STAMP := $(VENV)/.installed-stamp
TORCH_VERSION ?= 2.13.0
PYTEST_ARGS ?=

.PHONY: install data train train-codec train-speaker train-s2s serve demo test bench lint clean

install: $(STAMP)

# torch goes first, pinned: an unpinned or newer torch pulls a multi-GB CUDA build.
$(STAMP): pyproject.toml
	@test -x $(PYTHON) || $(PY) -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --upgrade pip
	$(PYTHON) -m pip install --quiet torch==$(TORCH_VERSION)
	$(PYTHON) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

# Voice the embedded corpus (about 1 minute on 2 cores; cached).
data: install
	$(PYTHON) -m telugu_s2s.data.synth

train-codec: data
	$(PYTHON) train.py experiment=codec_tiny export_dir=$(CURDIR)/checkpoints/codec
train-speaker: data
	$(PYTHON) train.py experiment=speaker_tiny export_dir=$(CURDIR)/checkpoints/speaker
train-s2s: data
	$(PYTHON) train.py experiment=s2s_tiny export_dir=$(CURDIR)/checkpoints/s2s
# All three stages with the tiny CPU experiments, in dependency order.
train: train-codec train-speaker train-s2s

serve: install
	@if [ -f src/telugu_s2s/serve.py ]; then $(PYTHON) -m telugu_s2s.serve; \
	else echo "The streaming server lands with the serving issue; nothing to serve yet." >&2; exit 2; fi

demo: install data
	@if [ -f src/telugu_s2s/serve.py ]; then $(MAKE) serve; \
	else echo "The demo server and web UI land with the serving and web UI issues." >&2; exit 2; fi

test: install
	$(PYTHON) -m pytest $(PYTEST_ARGS)

bench: install
	@for b in benchmarks/*.py; do [ -e "$$b" ] || continue; echo "== $$b"; $(PYTHON) "$$b" || exit 1; done

lint: install
	$(BIN)/ruff check src tests benchmarks train.py
	$(BIN)/ruff format --check src tests benchmarks train.py

clean:
	rm -rf logs outputs multirun .pytest_cache
