# telugu-s2s: `make demo` and `make test` do all of the set-up on a fresh machine.
SHELL := /bin/bash
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PYTHON := $(BIN)/python
STAMP := $(VENV)/.installed-stamp
TORCH_VERSION ?= 2.13.0
# Where torch comes from. Empty: pip's configured index (here: the local CPU wheel). A CPU-only
# machine elsewhere: TORCH_INDEX=https://download.pytorch.org/whl/cpu (else pip pulls the
# multi-GB CUDA build); a CUDA 12.8 machine: TORCH_INDEX=https://download.pytorch.org/whl/cu128.
TORCH_INDEX ?=
TORCH_INDEX_ARG := $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX),)
PYTEST_ARGS ?=

.PHONY: install data data-small train train-codec train-speaker train-asr train-topics train-planner train-s2s bundle serve demo eval test bench lint clean

install: $(STAMP)

# torch goes first, pinned: an unpinned or newer torch pulls a multi-GB CUDA build.
$(STAMP): pyproject.toml
	@test -x $(PYTHON) || $(PY) -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --upgrade pip
	$(PYTHON) -m pip install --quiet $(TORCH_INDEX_ARG) torch==$(TORCH_VERSION)
	$(PYTHON) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

# Generate 6,000 dialogs and voice them with the 80 hand-written ones (cached; figures in README).
data: install
	$(PYTHON) -m telugu_s2s.data.synth
# The small build that `make test` (and so CI) uses: 300 generated dialogs, 10 hand-written.
data-small: install
	$(PYTHON) -m telugu_s2s.data.synth generated.dialogs=300 dialogs_per_topic=1 output_dir=data/build/dataset_small

# The judge (recognizer), on the training rows and 24,000 more in 300 random espeak-ng voices
# (data/voice_variety.py, about 2 minutes). With a codec in checkpoints/ it also hears that codec's round trips;
# without one (a fresh start) it trains on clean and channel-augmented speech only.
train-asr: data
	@test -f data/build/voice_variety/rows/dataset_info.json || \
	  $(PYTHON) -m telugu_s2s.data.voice_variety --count 24000 --voices 300
	$(PYTHON) train.py experiment=asr_tiny export_dir=$(CURDIR)/checkpoints/asr \
	  data.voice_variety_dir=$(CURDIR)/data/build/voice_variety \
	  $(if $(wildcard checkpoints/codec/model.safetensors),,model.codec_round_trip_prob=0)
# Codec v2, the served codec: the judge distils the words into its first codebook.
train-codec: data
	@test -f checkpoints/asr/model.safetensors || $(MAKE) --no-print-directory train-asr
	$(PYTHON) train.py experiment=codec_v2_tiny export_dir=$(CURDIR)/checkpoints/codec \
	  model.semantic_weight=1.0 \
	  +model.semantic_teacher._target_=telugu_s2s.modules.semantic.recognizer_teacher \
	  +model.semantic_teacher.directory=$(CURDIR)/checkpoints/asr
train-speaker: data
	$(PYTHON) train.py experiment=speaker_tiny export_dir=$(CURDIR)/checkpoints/speaker
# The text topic model that names the session's topic from the final transcripts (seconds).
train-topics: data
	$(PYTHON) -m telugu_s2s.text_topics train --out $(CURDIR)/checkpoints/text_topics
# The reply planner that chooses what the replies say from the judge's transcripts (seconds).
train-planner: data
	$(PYTHON) -m telugu_s2s.reply_planner train --out $(CURDIR)/checkpoints/reply_planner
# The staged S2S recipe (docs/training_s2s.md) on the codec's tokens: text, the ear (on
# clean codes and their voice-and-channel variants), then listening and speaking, then
# duplex dialog; each stage starts from the previous ones' exports.
train-s2s: data
	$(PYTHON) train.py experiment=s2s_text_tiny
	$(PYTHON) -m telugu_s2s.data.token_variants --count 15000
	$(PYTHON) train.py experiment=s2s_hear_tiny
	$(PYTHON) train.py experiment=s2s_listen_speak_tiny
	$(PYTHON) train.py experiment=s2s_duplex_tiny export_dir=$(CURDIR)/checkpoints/s2s
# The S2S stages' inputs without audio (about 31 MB), for a GPU machine that has no dataset
# build: recipes/gpu_s2s_base.sh trains the base model from it (docs/training_s2s.md).
bundle: data
	$(PYTHON) -m telugu_s2s.data.tokens --splits validation test train
	$(PYTHON) -m telugu_s2s.data.token_bundle pack --out data/build/bundle --eval-dialogs 40
# Every stage with the tiny CPU experiments, in dependency order: the codec learns from the
# judge, and the S2S model speaks the codec's tokens with the speaker bank's voices.
train: train-speaker train-asr train-topics train-planner train-codec train-s2s

# The streaming server (ports 8000, then 8080, then 8010) on the checkpoints in checkpoints/.
serve: install
	$(PYTHON) -m telugu_s2s.serve

# Fresh clone -> the web page: install and serve the committed checkpoints (no dataset is
# built); a missing checkpoint is trained first, which builds the data (see README for times).
demo: install
	@for stage in speaker codec s2s; do \
	  if [ ! -f checkpoints/$$stage/model.safetensors ]; then \
	    echo "checkpoints/$$stage is missing: training the tiny $$stage model first (see README for times)"; \
	    $(MAKE) --no-print-directory train-$$stage || exit 1; \
	  fi; \
	done
	@test -f checkpoints/text_topics/text_topics.json.gz || $(MAKE) --no-print-directory train-topics
	@test -f checkpoints/reply_planner/reply_planner.json.gz || $(MAKE) --no-print-directory train-planner
	$(MAKE) --no-print-directory serve

# Evaluate the S2S checkpoints on the held-out test split (artifacts/eval/s2s.json).
eval: install
	$(PYTHON) -m telugu_s2s.eval stage=s2s

test: install data-small
	$(PYTHON) -m pytest $(PYTEST_ARGS)

# Serving and training performance (about 10 min on 2 cores): JSON + PNG in benchmarks/results,
# then docs/performance.md. codec.py, codec_voices.py, s2s_seeds.py, session.py run on their own.
BENCHMARKS ?= latency bargein capacity training
bench: install
	@for b in $(BENCHMARKS); do echo "== benchmarks/$$b.py"; $(PYTHON) benchmarks/$$b.py || exit 1; done
	$(PYTHON) benchmarks/report.py

lint: install
	$(BIN)/ruff check src tests benchmarks train.py
	$(BIN)/ruff format --check src tests benchmarks train.py

clean:
	rm -rf logs outputs multirun .pytest_cache
