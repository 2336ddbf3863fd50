# telugu-s2s: `make demo` and `make test` do all of the set-up on a fresh machine.
SHELL := /bin/bash
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PYTHON := $(BIN)/python
STAMP := $(VENV)/.installed-stamp
TORCH_VERSION ?= 2.13.0
PYTEST_ARGS ?=

.PHONY: install data train train-codec train-speaker train-s2s serve demo eval test bench lint clean

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

# The codec, then two decoder-only fine-tunes (pitch, then voice) that keep its codes.
train-codec: data
	$(PYTHON) train.py experiment=codec_tiny export_dir=$(CURDIR)/checkpoints/codec
	$(PYTHON) train.py experiment=codec_tiny_decoder export_dir=$(CURDIR)/checkpoints/codec
	$(PYTHON) train.py experiment=codec_tiny_voice export_dir=$(CURDIR)/checkpoints/codec
train-speaker: data
	$(PYTHON) train.py experiment=speaker_tiny export_dir=$(CURDIR)/checkpoints/speaker
train-s2s: data
	$(PYTHON) train.py experiment=s2s_tiny export_dir=$(CURDIR)/checkpoints/s2s
# All three stages with the tiny CPU experiments, in dependency order (the codec's voice
# fine-tune uses the speaker encoder).
train: train-speaker train-codec train-s2s

# The streaming server (ports 8000, then 8080, then 8010) on the checkpoints in checkpoints/.
serve: install
	$(PYTHON) -m telugu_s2s.serve

# Fresh clone -> the web page: install, build the data, train any missing tiny checkpoint
# (codec ~70 min, speaker ~20 min, s2s ~60 min on 2 cores), then serve.
demo: install data
	@for stage in speaker codec s2s; do \
	  if [ ! -f checkpoints/$$stage/model.safetensors ]; then \
	    echo "checkpoints/$$stage is missing: training the tiny $$stage model first (see README for times)"; \
	    $(MAKE) --no-print-directory train-$$stage || exit 1; \
	  fi; \
	done
	$(MAKE) --no-print-directory serve

# Evaluate the S2S checkpoints on the held-out test split (artifacts/eval/s2s.json).
eval: install
	$(PYTHON) -m telugu_s2s.eval stage=s2s

test: install data
	$(PYTHON) -m pytest $(PYTEST_ARGS)

bench: install
	@for b in benchmarks/*.py; do [ -e "$$b" ] || continue; echo "== $$b"; $(PYTHON) "$$b" || exit 1; done

lint: install
	$(BIN)/ruff check src tests benchmarks train.py
	$(BIN)/ruff format --check src tests benchmarks train.py

clean:
	rm -rf logs outputs multirun .pytest_cache
