#!/usr/bin/env bash
# The staged S2S recipe (docs/training_s2s.md) at base size on one GPU, bounded by a wall
# clock, from a token bundle rather than a dataset build:
#   python -m telugu_s2s.data.token_bundle pack --out BUNDLE --eval-dialogs 40   (here)
#   bash recipes/gpu_s2s_base.sh BUNDLE WORK [SECONDS]                           (there)
# The text stage and the ear train side by side (the GPU is far from full), then
# listen-and-speak, then duplex. Every stage stops on its share of SECONDS (default 500) and
# its learning rate follows the clock (lit/s2s_module.warmup_cosine); no validation runs,
# each stage is tested on the bundle's test dialogs with its final weights. The exports land
# in WORK/stages/{text,hearing,listen_speak,duplex}; each stage's log in WORK/<stage>.log.
# The duplex export is also written to WORK/export in files of at most 15 MiB (what a lease
# brings back): `cat model.safetensors.part* > model.safetensors` beside its config.json.
# A lease is short: runs are not resumable (no checkpoints are written). With DUPLEX_FROM=<an
# S2S export> only the duplex stage runs, from that export, for the whole budget. DRY_RUN=1
# prints each stage's `train.py` overrides instead of running anything (the tests compose them).
set -euo pipefail
BUNDLE=$1 WORK=$2 TOTAL=${3:-500}
PY=${PYTHON:-python3}
ACCELERATOR=${ACCELERATOR:-gpu}
WORKERS=${WORKERS:-12}
LAYERS=${LAYERS:-6}     # the base model: 6 temporal layers, the tiny one has 4
# The text stage bounds what every later stage says (benchmarks/text_replies.py: given the
# user's exact words, the CPU text stage's replies sit at a CER of 0.70 from the nearest
# valid reply). Its share of SECONDS (percent, beside the ear) and its batch are knobs.
TEXT_SHARE=${TEXT_SHARE:-20} TEXT_BATCH=${TEXT_BATCH:-32} TEXT_LR=${TEXT_LR:-1e-3}
# COPY=1: the copy head (models/copy_head.py) in every S2S stage, over the ear's characters
# and the memory's turns; COPY=0 leaves it out.
copy=()
[ "${COPY:-1}" = 0 ] || copy=(model.net.cfg.copy_head=true model.net.cfg.copy_memory=true)
start=$(date +%s)
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
mkdir -p "$WORK"

source "$(dirname "$0")/train_stage.sh"
left() { echo $((TOTAL - ($(date +%s) - start))); }
clock() { printf '00:00:%02d:%02d' $(($1 / 60)) $(($1 % 60)); }
stage() {  # stage NAME SECONDS OVERRIDES...
  local name=$1 seconds=$(($2 > 30 ? $2 : 30))
  shift 2
  local overrides=("$@" ++trainer.max_time="$(clock "$seconds")" export_dir="$WORK/stages/$name"
    paths.dataset_dir="$WORK/build/dataset" paths.log_dir="$WORK/logs" hydra.run.dir="$WORK/logs/$name"
    trainer.accelerator="$ACCELERATOR" matmul_precision=high num_threads=null
    trainer.max_steps=-1 trainer.min_epochs=0 trainer.max_epochs=1000 ++trainer.limit_val_batches=0
    ++trainer.enable_checkpointing=false '~callbacks.model_checkpoint' '~callbacks.last_checkpoint'
    optimized_metric=null trainer.enable_progress_bar=false logger=csv)
  train_stage "$name" "${seconds}s" "$WORK/$name.log" "${overrides[@]}" || return 1
  [ -n "${DRY_RUN:-}" ] || grep -o "metrics: .*" "$WORK/$name.log" | tail -1 || true
}

[ -n "${DRY_RUN:-}" ] || $PY -m telugu_s2s.data.token_bundle unpack "$BUNDLE" --root "$WORK/build"
echo "unpacked in $(($(date +%s) - start))s"
split_export() {
  [ -z "${DRY_RUN:-}" ] || return 0
  mkdir -p "$WORK/export"
  split -b 15M -d "$WORK/stages/duplex/model.safetensors" "$WORK/export/model.safetensors.part"
  cp "$WORK/stages/duplex/config.json" "$WORK/export/"
  echo "done in $(($(date +%s) - start))s: $(ls "$WORK/export" | tr '\n' ' ')"
}
if [ -n "${DUPLEX_FROM:-}" ]; then  # more duplex steps for an S2S export (the bundle needs no variants)
  stage duplex $(($(left) - 45)) experiment=s2s_duplex_tiny model.net.cfg.num_layers="$LAYERS" \
    model.init_from="$DUPLEX_FROM" data.batch_size=16 data.num_workers="$WORKERS" "${copy[@]}"
  split_export
  exit
fi
first=$((TOTAL * TEXT_SHARE / 100))
stage text "$first" experiment=s2s_text_tiny model.net.cfg.num_layers="$LAYERS" \
  data.batch_size="$TEXT_BATCH" model.lr="$TEXT_LR" data.num_workers=$((WORKERS / 3)) "${copy[@]}" &
text=$!
stage hearing "$first" experiment=s2s_hear_tiny data.batch_size=128 \
  data.num_workers=$((WORKERS / 2)) &
hearing=$!
wait $text
wait $hearing
stage listen_speak $((TOTAL * 22 / 100)) experiment=s2s_listen_speak_tiny \
  model.net.cfg.num_layers="$LAYERS" model.init_from="$WORK/stages/text" \
  model.hearing_from="$WORK/stages/hearing" data.batch_size=64 data.num_workers="$WORKERS" \
  "${copy[@]}"
# duplex gets what is left, less the time its start, test and export take
stage duplex $(($(left) - 45)) experiment=s2s_duplex_tiny model.net.cfg.num_layers="$LAYERS" \
  model.init_from="$WORK/stages/listen_speak" data.batch_size=16 data.num_workers="$WORKERS" \
  "${copy[@]}"
split_export
